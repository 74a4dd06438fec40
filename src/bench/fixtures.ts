// The benchmark's cast: a sender A, a relaying gateway G1 and an end gateway G2, with deterministic keys.
// End-End traffic is plain ESP AES-128-GCM in SPI mode (what `openssl speed` compares with); next-hop
// layers are SKIP (NSID 0) + AH, as the draft relays them.
import { KEY_BYTES, SkipAlg, type Coverage, type MacAlg, type SaDesc } from '../engine/types.js';
import { ipToU32 } from '../wire/addr.js';
import { IPV4_FLAG_DF, IpProto, buildIpv4 } from '../wire/ipv4.js';
import { NSID_NONE, SKIP_SPI, encodeSkipHeader } from '../wire/skip.js';

export const SENDER = '198.18.1.1';
export const RELAY_GW = '198.18.2.1';
export const END_GW = '198.18.3.1';
const INNER_SRC = '10.1.0.100';
const INNER_DST = '10.2.0.20';

/** Deterministic, never-uniform bytes (xorshift32). */
export function seededBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** An IPv4/UDP datagram of exactly `size` bytes; `seed` varies the payload. */
export function innerDatagram(size: number, seed: number): Uint8Array {
  if (!Number.isInteger(size) || size < 28)
    throw new RangeError(`inner packet size must be at least 28 bytes (IPv4 + UDP), got ${size}`);
  const udpLength = size - 20;
  const udp = seededBytes(udpLength, seed + 1);
  udp.set([0x30, 0x39, 0x01, 0xbb, udpLength >> 8, udpLength & 0xff, 0, 0], 0);
  return buildIpv4(
    {
      src: ipToU32(INNER_SRC),
      dst: ipToU32(INNER_DST),
      tos: 0,
      identification: seed & 0xffff,
      flagsFragment: IPV4_FLAG_DF,
      ttl: 64,
      protocol: IpProto.UDP,
    },
    udp,
  );
}

export interface SaPair {
  out: SaDesc;
  in: SaDesc;
}

/** End-End ESP AES-128-GCM, SPI mode, A → G2: out id 1, in id 2. */
export function endPair(): SaPair {
  const base = {
    role: 'end',
    mode: 'spi',
    src: SENDER,
    dst: END_GW,
    esp: { suite: 'aes128gcm', key: seededBytes(KEY_BYTES.aes128gcm, 1), spi: 0x1000 },
  } as const;
  return { out: { ...base, id: 1, direction: 'out' }, in: { ...base, id: 2, direction: 'in' } };
}

/** A next-hop SKIP + AH layer from src to dst; out id `id`, in id `id + 1`. */
export function nexthopPair(id: number, alg: MacAlg, coverage: Coverage, src: string, dst: string): SaPair {
  const skipHeader = encodeSkipHeader({
    srcNsid: NSID_NONE,
    dstNsid: NSID_NONE,
    nextHeader: IpProto.AH,
    n: 0x4320 + id,
    kijAlg: SkipAlg.kij['aes256-kw'],
    cryptAlg: 0,
    macAlg: SkipAlg.mac[alg],
    compAlg: 0,
    wrappedKp: seededBytes(40, id + 100),
  });
  const base = {
    role: 'nexthop',
    mode: 'skip',
    src,
    dst,
    skipHeader,
    ah: { alg, key: seededBytes(KEY_BYTES[alg], id + 200), spi: SKIP_SPI, coverage },
  } as const;
  return { out: { ...base, id, direction: 'out' }, in: { ...base, id: id + 1, direction: 'in' } };
}
