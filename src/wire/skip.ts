// SKIP header (IP protocol 57): spec/wire-formats.md §4, algorithm numbers in docs/engine.md §6.
import { SkipAlg } from './algorithms.js';
import { readIp, writeIp } from './addr.js';

export const IPPROTO_SKIP = 57;
export const SKIP_VERSION = 1;
export const SKIP_SPI = 1;
export const SKIP_FIXED_BYTES = 12;
/** NSID 0: no MKID, the IP address names the key. NSID 1: MKID is an IPv4 address. */
export const NSID_NONE = 0;
export const NSID_IPV4 = 1;

/** Wrapped Kp length per Kij algorithm (a 32-byte Kp under AES key wrap → 40 bytes). */
export const WRAPPED_KP_BYTES: Readonly<Record<number, number>> = { [SkipAlg.kij['aes256-kw']]: 40 };
const MKID_BYTES: Readonly<Record<number, number>> = { [NSID_NONE]: 0, [NSID_IPV4]: 4 };
const CRYPT_ALGS = new Set<number>([0, ...Object.values(SkipAlg.crypt)]);
const MAC_ALGS = new Set<number>([0, ...Object.values(SkipAlg.mac)]);

export interface SkipHeader {
  srcNsid: number;
  dstNsid: number;
  nextHeader: number;
  /** Hours since 1995-01-01 00:00 UTC. */
  n: number;
  kijAlg: number;
  cryptAlg: number;
  macAlg: number;
  compAlg: number;
  wrappedKp: Uint8Array;
  /** IPv4 MKIDs as u32 (NSID 1); undefined when the NSID is 0. */
  srcMkid?: number;
  dstMkid?: number;
}

export type SkipParse =
  | { ok: true; header: SkipHeader; length: number }
  | { ok: false; reason: 'truncated' | 'bad_skip' | 'unknown_nsid' | 'unknown_alg' };

export function skipHeaderLength(h: Pick<SkipHeader, 'srcNsid' | 'dstNsid' | 'kijAlg'>): number {
  return (
    SKIP_FIXED_BYTES + (WRAPPED_KP_BYTES[h.kijAlg] ?? 0) + (MKID_BYTES[h.srcNsid] ?? 0) + (MKID_BYTES[h.dstNsid] ?? 0)
  );
}

export function encodeSkipHeader(h: SkipHeader): Uint8Array {
  const kpLen = WRAPPED_KP_BYTES[h.kijAlg];
  if (kpLen === undefined)
    throw new RangeError(`SKIP kijAlg ${h.kijAlg} is not supported (use ${SkipAlg.kij['aes256-kw']})`);
  if (h.wrappedKp.length !== kpLen)
    throw new RangeError(`SKIP wrappedKp must be ${kpLen} bytes, got ${h.wrappedKp.length}`);
  for (const [field, nsid, mkid] of [
    ['src', h.srcNsid, h.srcMkid],
    ['dst', h.dstNsid, h.dstMkid],
  ] as const) {
    if (!(nsid in MKID_BYTES)) throw new RangeError(`SKIP ${field}Nsid ${nsid} is not supported (0 or 1)`);
    if (nsid === NSID_IPV4 && mkid === undefined) throw new RangeError(`SKIP ${field}Nsid 1 needs ${field}Mkid`);
  }
  const out = new Uint8Array(skipHeaderLength(h));
  const view = new DataView(out.buffer);
  out[0] = SKIP_VERSION << 4;
  out[1] = h.srcNsid;
  out[2] = h.dstNsid;
  out[3] = h.nextHeader;
  view.setUint32(4, h.n >>> 0);
  out[8] = h.kijAlg;
  out[9] = h.cryptAlg;
  out[10] = h.macAlg;
  out[11] = h.compAlg;
  out.set(h.wrappedKp, SKIP_FIXED_BYTES);
  let at = SKIP_FIXED_BYTES + kpLen;
  if (h.srcNsid === NSID_IPV4) {
    writeIp(out, at, h.srcMkid!);
    at += 4;
  }
  if (h.dstNsid === NSID_IPV4) writeIp(out, at, h.dstMkid!);
  return out;
}

/** Parses a SKIP header at `offset`; never reads past `end` (default: the buffer's end). */
export function decodeSkipHeader(buf: Uint8Array, offset: number, end = buf.length): SkipParse {
  if (end - offset < SKIP_FIXED_BYTES) return { ok: false, reason: 'truncated' };
  if (buf[offset] >> 4 !== SKIP_VERSION) return { ok: false, reason: 'bad_skip' };
  const srcNsid = buf[offset + 1];
  const dstNsid = buf[offset + 2];
  if (!(srcNsid in MKID_BYTES) || !(dstNsid in MKID_BYTES)) return { ok: false, reason: 'unknown_nsid' };
  const kijAlg = buf[offset + 8];
  const cryptAlg = buf[offset + 9];
  const macAlg = buf[offset + 10];
  const compAlg = buf[offset + 11];
  const kpLen = WRAPPED_KP_BYTES[kijAlg];
  if (kpLen === undefined || !CRYPT_ALGS.has(cryptAlg) || !MAC_ALGS.has(macAlg) || compAlg !== 0)
    return { ok: false, reason: 'unknown_alg' };
  const length = skipHeaderLength({ srcNsid, dstNsid, kijAlg });
  if (end - offset < length) return { ok: false, reason: 'truncated' };
  let at = offset + SKIP_FIXED_BYTES + kpLen;
  const header: SkipHeader = {
    srcNsid,
    dstNsid,
    nextHeader: buf[offset + 3],
    n: ((buf[offset + 4] << 24) | (buf[offset + 5] << 16) | (buf[offset + 6] << 8) | buf[offset + 7]) >>> 0,
    kijAlg,
    cryptAlg,
    macAlg,
    compAlg,
    wrappedKp: buf.slice(offset + SKIP_FIXED_BYTES, offset + SKIP_FIXED_BYTES + kpLen),
  };
  if (srcNsid === NSID_IPV4) {
    header.srcMkid = readIp(buf, at);
    at += 4;
  }
  if (dstNsid === NSID_IPV4) header.dstMkid = readIp(buf, at);
  return { ok: true, header, length };
}
