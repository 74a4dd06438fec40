// IPIP_ENCAP / IPIP_DECAP ops (RFC 2003; docs/engine.md §2, §6).
import { isIpipLoop, parseIpip, writeIpipHeader } from '../../wire/ipip.js';
import { IPV4_HEADER_BYTES, MAX_IP_TOTAL, parseIpv4 } from '../../wire/ipv4.js';
import { deliver, forward, reject, type Outcome, type Slot } from './outcome.js';

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

export function ipipDecap(slot: Slot, offset: number, length: number): Outcome {
  const parsed = parseIpip(slot.buf, offset, offset + length);
  if (!parsed.ok) return reject(parsed.reason, offset, length);
  return deliver(parsed.innerOffset, parsed.inner.totalLength, 0);
}
