// Sending and reading ICMP Security Failures (type 40, RFC 2521) the way the roles use them.
import type { Host } from '../../net/types.js';
import { ipToU32, readIp } from '../../wire/addr.js';
import { buildSecurityFailurePacket, parseSecurityFailure, type Icmp40CodeValue } from '../../wire/icmp40.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';
import type { Tally } from './counters.js';
import type { RateLimiter } from './ratelimit.js';

/**
 * Sends a failure message about `original` from `from` to `to` within the rate limits (per destination, global); counts
 * what it did.
 */
export function sendFailure(
  host: Host,
  limiter: RateLimiter,
  tally: Tally,
  from: string,
  to: string,
  code: number,
  original: Uint8Array,
): void {
  const verdict = limiter.take(to);
  if (verdict !== 'allowed') {
    tally.add(`icmp40_${verdict}`);
    return;
  }
  let packet: Uint8Array;
  try {
    packet = buildSecurityFailurePacket(ipToU32(from), ipToU32(to), code as Icmp40CodeValue, original);
  } catch {
    tally.add('icmp40_unquotable');
    return;
  }
  tally.add(`icmp40_sent_code${code}`);
  host.send(packet, { bypassHooks: true });
}

export interface ReceivedFailure {
  /** The node that sent the message (the SGW that refused the packet). */
  from: number;
  code: number;
  /** Destination of the quoted datagram: which of our flows was refused. */
  quotedDst: number;
  quotedSrc: number;
  /** The quoted datagram's first bytes (a view into the message): to match against what was really sent. */
  quote: Uint8Array;
}

/** A failure message inside an IPv4 datagram, or undefined if the datagram is anything else. */
export function readFailure(datagram: Uint8Array): ReceivedFailure | undefined {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok || ip.header.protocol !== IpProto.ICMP) return undefined;
  const icmp = parseSecurityFailure(datagram, ip.header.headerLength, ip.header.totalLength);
  if (!icmp.ok) return undefined;
  // The quote is clipped after the offending headers, so only the quoted addresses are read (the parser checked 20
  // bytes).
  const quote = icmp.message.original;
  if (quote[0] >> 4 !== 4) return undefined;
  return {
    from: ip.header.src,
    code: icmp.message.code,
    quotedSrc: readIp(quote, 12),
    quotedDst: readIp(quote, 16),
    quote,
  };
}
