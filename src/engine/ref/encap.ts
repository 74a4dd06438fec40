// ENCAP: inner IPv4 → IPv4 / [SKIP] / [AH(end, next header 50)] / ESP / inner, per docs/engine.md §6.
import {
  ESP_HEADER_BYTES,
  ESP_ICV_BYTES,
  ESP_IV_BYTES,
  espPadLength,
  writeEspHeader,
  writeEspTrailer,
} from '../../wire/esp.js';
import { IpProto, MAX_IP_TOTAL, type Ipv4Header } from '../../wire/ipv4.js';
import { aeadSeal, ivFromSeq } from './crypto.js';
import { signAh, writeOutboundAh } from './icv.js';
import { forward, rekeyDue, reject, type Outcome, type Slot } from './outcome.js';
import { hasSeqLeft, outerHeadersLength, outerLayout, writeOuterHeaders } from './outer.js';
import { countSealed, type SaState } from './sa.js';

/**
 * Encapsulates the parsed datagram at buf[offset, offset + length) (length = its total length).
 * Order of checks: head- and tailroom or a result over 65535 bytes (no_room), sequence numbers (seq_exhausted).
 */
export function encapsulate(slot: Slot, offset: number, length: number, inner: Ipv4Header, sa: SaState): Outcome {
  const esp = sa.esp!;
  const ah = sa.ah;
  const buf = slot.buf;
  const espAt = offset - ESP_HEADER_BYTES - ESP_IV_BYTES;
  const ahAt = ah ? espAt - ah.length : espAt;
  const start = ahAt - outerHeadersLength(sa);
  const padLength = espPadLength(length);
  const plaintextEnd = offset + length + padLength + 2;
  const end = plaintextEnd + ESP_ICV_BYTES;
  if (start < slot.start || end > slot.end || end - start > MAX_IP_TOTAL)
    return reject('no_room', offset, length, sa.id);
  if (!hasSeqLeft(sa)) return reject('seq_exhausted', offset, length, sa.id);
  const espSeq = ++esp.seq;
  const ahSeq = ah ? ++ah.seq : 0;

  writeEspTrailer(buf, offset + length, padLength, IpProto.IPIP);
  writeEspHeader(buf, espAt, esp.spi, espSeq);
  const iv = ivFromSeq(espSeq);
  buf.set(iv, espAt + ESP_HEADER_BYTES);
  const sealed = aeadSeal(
    esp.suite,
    esp.key,
    iv,
    buf.subarray(espAt, espAt + ESP_HEADER_BYTES),
    buf.subarray(offset, plaintextEnd),
  );
  buf.set(sealed.ciphertext, offset);
  buf.set(sealed.tag, plaintextEnd);

  writeOuterHeaders(buf, start, sa, inner, end - start, ah ? ahSeq : espSeq);
  if (ah) {
    writeOutboundAh(buf, ahAt, ah, IpProto.ESP, ahSeq);
    signAh(buf, ah, outerLayout(sa, start, end));
  }
  const due = countSealed(sa, length);
  return (due ? rekeyDue : forward)(start, end - start, sa.id, sa.dst);
}
