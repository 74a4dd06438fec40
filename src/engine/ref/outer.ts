// The outer IPv4 header ENCAP, WRAP and a relay write (docs/engine.md §6), and the sequence numbers it needs.
import { IPV4_FLAG_DF, IPV4_HEADER_BYTES, IpProto, writeIpv4Header, type Ipv4Header } from '../../wire/ipv4.js';
import { IPPROTO_SKIP } from '../../wire/skip.js';
import type { AhLayout } from './icv.js';
import { MAX_SEQ, type SaState } from './sa.js';

/**
 * Writes IPv4 header + SKIP header (skip mode) at `at`: TOS and DF copied from the protected datagram,
 * identification = low 16 bits of `firstSeq`, TTL from the SA, protocol 57 or the first header's (51/50).
 * Returns the offset right after them.
 */
export function writeOuterHeaders(
  buf: Uint8Array,
  at: number,
  sa: SaState,
  inner: Ipv4Header,
  totalLength: number,
  firstSeq: number,
): number {
  writeIpv4Header(buf, at, {
    tos: inner.tos,
    totalLength,
    identification: firstSeq & 0xffff,
    flagsFragment: inner.flagsFragment & IPV4_FLAG_DF,
    ttl: sa.ttl,
    protocol: sa.skipBytes ? IPPROTO_SKIP : sa.ah ? IpProto.AH : IpProto.ESP,
    src: sa.src,
    dst: sa.dst,
  });
  if (!sa.skipBytes) return at + IPV4_HEADER_BYTES;
  buf.set(sa.skipBytes, at + IPV4_HEADER_BYTES);
  return at + IPV4_HEADER_BYTES + sa.skipBytes.length;
}

/** Bytes of IPv4 + SKIP header in front of the SA's first IPsec header. */
export function outerHeadersLength(sa: SaState): number {
  return IPV4_HEADER_BYTES + (sa.skipBytes?.length ?? 0);
}

/** True when every header of the out SA can take one more sequence number. */
export function hasSeqLeft(sa: SaState): boolean {
  return (sa.ah === undefined || sa.ah.seq < MAX_SEQ) && (sa.esp === undefined || sa.esp.seq < MAX_SEQ);
}

/** Where the outer headers written at `start` put things, for the ICV. */
export function outerLayout(sa: SaState, start: number, coveredEnd: number): AhLayout {
  return { ipOffset: start, ipHeaderLength: IPV4_HEADER_BYTES, skipLength: sa.skipBytes?.length ?? 0, coveredEnd };
}
