// IPIP_ENCAP / IPIP_DECAP ops (RFC 2003; docs/engine.md §2, §6), and OUTBOUND `tunnel`, which ends in IPIP_ENCAP
// (§4.2).
import { isIpipLoop, parseIpip, writeIpipHeader } from '../../wire/ipip.js';
import { IPV4_HEADER_BYTES, MAX_IP_TOTAL, parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import type { PolicyEntry } from '../policy.js';
import { deliver, forward, reject, type Outcome, type Slot } from './outcome.js';
import { decrementTtl } from './ttl.js';

/** Order of checks: inner datagram parse (fragments allowed), loop (inner source = tunnel exit), headroom. */
export function ipipEncap(slot: Slot, offset: number, length: number, src: number, dst: number): Outcome {
  const inner = parseIpv4(slot.buf, offset, offset + length, { allowFragments: true });
  if (!inner.ok) return reject(inner.reason, offset, length);
  length = inner.header.totalLength;
  if (isIpipLoop(inner.header, dst)) return reject('loop', offset, length);
  const start = offset - IPV4_HEADER_BYTES;
  if (start < slot.start || length + IPV4_HEADER_BYTES > MAX_IP_TOTAL) return reject('no_room', offset, length);
  writeIpipHeader(slot.buf, start, inner.header, src, dst);
  return forward(start, length + IPV4_HEADER_BYTES, 0, dst);
}

/** OUTBOUND `tunnel` on the datagram at `offset` (header `ip`): loop, TTL, TTL − 1, then IPIP_ENCAP. */
export function policyTunnel(slot: Slot, offset: number, length: number, ip: Ipv4Header, policy: PolicyEntry): Outcome {
  // RFC 2003 §3.2 first (what comes from the tunnel exit never goes back into it), then §3.1: the home agent forwards
  // the datagram into the tunnel, so its TTL drops by one (≤ 1: the control plane's, unchanged).
  const ends = policy.tunnel!;
  if (isIpipLoop(ip, ends.dst)) return reject('loop', offset, length);
  if (ip.ttl <= 1) return reject('ttl_exceeded', offset, length);
  decrementTtl(slot.buf, offset, ip.ttl);
  return ipipEncap(slot, offset, length, ends.src, ends.dst);
}

export function ipipDecap(slot: Slot, offset: number, length: number): Outcome {
  const parsed = parseIpip(slot.buf, offset, offset + length);
  if (!parsed.ok) return reject(parsed.reason, offset, length);
  return deliver(parsed.innerOffset, parsed.inner.totalLength, 0);
}
