// WRAP and the relay's new layer: IPv4 / SKIP / AH(next-hop, next header 4) in front of a datagram.
import { IpProto, MAX_IP_TOTAL, type Ipv4Header } from '../../wire/ipv4.js';
import { coverageEnd, signAh, writeOutboundAh } from './icv.js';
import { forward, rekeyDue, reject, type Outcome, type Slot } from './outcome.js';
import { hasSeqLeft, outerHeadersLength, outerLayout, writeOuterHeaders } from './outer.js';
import { countSealed, type SaState } from './sa.js';

/**
 * Prepends `sa`'s next-hop layer to the datagram `d` at buf[offset, offset + length) so that the layer ends where
 * the datagram starts. Order of checks: headroom or a result over 65535 bytes (no_room), coverage walk, sequence
 * numbers (seq_exhausted); a failure names `sa`. A FORWARD names `forwardSa` (a relay: the SA that authenticated).
 */
export function prependNexthopLayer(
  slot: Slot,
  offset: number,
  length: number,
  d: Ipv4Header,
  sa: SaState,
  forwardSa = sa.id,
): Outcome {
  const ah = sa.ah!;
  const buf = slot.buf;
  const start = offset - outerHeadersLength(sa) - ah.length;
  if (start < slot.start || offset + length - start > MAX_IP_TOTAL) return reject('no_room', offset, length, sa.id);
  const covered = coverageEnd(ah.coverage, buf, offset, offset + length);
  if (!covered.ok) return reject(covered.reason, offset, length, sa.id);
  if (!hasSeqLeft(sa)) return reject('seq_exhausted', offset, length, sa.id);
  const seq = ++ah.seq;
  const total = offset + length - start;
  const ahAt = writeOuterHeaders(buf, start, sa, d, total, seq);
  writeOutboundAh(buf, ahAt, ah, IpProto.IPIP, seq);
  signAh(buf, ah, outerLayout(sa, start, covered.end));
  // A FORWARD names forwardSa, unless this SA reached its soft limit: then it names this SA.
  if (countSealed(sa, length)) return rekeyDue(start, total, sa.id, sa.dst);
  return forward(start, total, forwardSa, sa.dst);
}
