// Tamper: every single-bit flip inside the authenticated region of a sample packet of each suite is dropped, with
// `auth` unless the flip breaks a header first — then with exactly the reason that header's check gives.
// Bits of fields RFC 4302 zeroes for the ICV (outer TOS, flags, TTL; the SKIP reserved nibble) are not
// authenticated: those flips must still be delivered.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Op,
  Reason,
  Verdict,
  reasonName,
  type Engine,
  type MacAlg,
  type ReasonName,
  type EspSuite,
} from '../../src/engine/index.js';
import { SkipAlg } from '../../src/engine/types.js';
import { AH_BYTES } from '../../src/wire/ah.js';
import { IPV4_HEADER_BYTES, setIpv4Checksum } from '../../src/wire/ipv4.js';
import { decodeSkipHeader } from '../../src/wire/skip.js';
import {
  ADDR,
  ESP_SUITES,
  IMPLS,
  MAC_ALGS,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  runMany,
  runOne,
  type SaPair,
} from './fixtures.js';

type Expect = ReasonName | 'deliver';
const KNOWN_CRYPT = new Set([0, ...Object.values(SkipAlg.crypt)]);
const KNOWN_MAC = new Set([0, ...Object.values(SkipAlg.mac)]);
/** Sender sequence numbers with several bits set: no single flip makes them 0 (that would be `replay`). */
const SEQ = 0x00a5_5a00;

interface Sample {
  packet: Uint8Array;
  receiver: SaPair['in'][];
  local: string[];
  /** Flipped ranges and the reason each bit flip must give. */
  expect(byte: number, bit: number, flipped: Uint8Array): Expect;
  /** First byte of the authenticated region. */
  from: number;
  /** End (exclusive) of the authenticated region. */
  to: number;
  deliveredSa: number;
  inner: Uint8Array;
}

/** Expected reason for a flip in the outer IPv4 header (checksum fixed up afterwards, except for its own bytes). */
function outerIpExpect(
  byte: number,
  bit: number,
  flipped: Uint8Array,
  srcNamesKey: boolean,
  firstCut: (totalLength: number) => Expect,
): Expect {
  const mask = 1 << bit;
  if (byte === 0) {
    if (mask & 0xf0) return 'bad_ip_version';
    const ihl = (flipped[0] & 0x0f) * 4;
    return ihl < IPV4_HEADER_BYTES ? 'bad_ihl' : 'bad_ip_checksum'; // a longer header sums bytes the checksum did not cover
  }
  if (byte === 1 || byte === 8) return 'deliver'; // TOS, TTL: mutable, zeroed in the ICV
  if (byte === 2 || byte === 3) {
    const total = (flipped[2] << 8) | flipped[3];
    if (total < IPV4_HEADER_BYTES) return 'bad_ihl';
    if (total > flipped.length) return 'bad_total_length';
    return firstCut(total);
  }
  if (byte === 4 || byte === 5) return 'auth';
  if (byte === 6 || byte === 7) return byte === 6 && mask & 0xc0 ? 'deliver' : 'fragment'; // reserved/DF vs MF/offset
  if (byte === 9) return 'not_ipsec'; // 57 with one bit flipped is never 4, 50 or 51
  if (byte === 10 || byte === 11) return 'bad_ip_checksum';
  if (byte < 16) return srcNamesKey ? 'unknown_key' : 'auth';
  return 'auth';
}

/** Expected reason for a flip in a layer's SKIP header at [0, length). */
function skipExpect(off: number, bit: number, flipped: Uint8Array, at: number, hasAh: boolean): Expect {
  const mask = 1 << bit;
  const v = flipped[at + off];
  if (off === 0) return mask & 0xf0 ? 'bad_skip' : 'deliver'; // low nibble reserved, zeroed in the ICV
  if (off === 1) return mask === 1 ? 'unknown_key' : 'unknown_nsid';
  if (off === 2) return mask === 1 ? 'bad_dst_mkid' : 'unknown_nsid';
  if (off === 3) return v === (hasAh ? 50 : 51) ? 'sa_mismatch' : 'bad_skip';
  if (off < 8) return 'unknown_key'; // n
  if (off === 8 || off === 11) return 'unknown_alg';
  if (off === 9) return KNOWN_CRYPT.has(v) ? 'sa_mismatch' : 'unknown_alg';
  if (off === 10) return KNOWN_MAC.has(v) ? 'sa_mismatch' : 'unknown_alg';
  if (off < 52) return 'unknown_key'; // wrapped Kp
  const h = decodeSkipHeader(flipped, at);
  if (!h.ok) throw new Error('unreachable: MKID bytes do not affect parsing');
  // MKIDs: the source one (if any) names the key; the destination one must be the SA's.
  const srcMkidBytes = h.header.srcNsid === 1 ? 4 : 0;
  return off < 52 + srcMkidBytes ? 'unknown_key' : 'bad_dst_mkid';
}

/** Expected reason for a flip in an AH of `ahLength` bytes whose next header is `next`. */
function ahExpect(off: number): Expect {
  if (off === 0) return 'bad_next_header';
  if (off < 4) return 'bad_ah'; // payload length, reserved
  if (off < 8) return 'bad_spi'; // SKIP mode: SPI must be 1
  return 'auth'; // sequence number, GMAC IV, tag
}

/**
 * `headers` coverage walks the protected datagram's headers; a flip there can change the walk.
 * d = start of the datagram, skipLength/ahLength = its SKIP and end-AH sizes.
 */
function walkExpect(
  flipped: Uint8Array,
  d: number,
  dEnd: number,
  byte: number,
  bit: number,
  skipLength: number,
  ahLength: number,
): Expect {
  const off = byte - d;
  if (off < IPV4_HEADER_BYTES) {
    if (off === 0 && !((1 << bit) & 0xf0)) {
      const ihl = (flipped[d] & 0x0f) * 4;
      if (ihl < IPV4_HEADER_BYTES) return 'truncated';
      const skip = decodeSkipHeader(flipped, d + ihl, dEnd);
      return skip.ok ? 'auth' : skip.reason;
    }
    return 'auth';
  }
  const s = off - IPV4_HEADER_BYTES;
  if (s < skipLength) {
    const v = flipped[byte];
    if (s === 0) return (1 << bit) & 0xf0 ? 'bad_skip' : 'auth';
    if (s === 1 || s === 2) return v <= 1 ? 'auth' : 'unknown_nsid';
    if (s === 8 || s === 11) return 'unknown_alg';
    if (s === 9) return KNOWN_CRYPT.has(v) ? 'auth' : 'unknown_alg';
    if (s === 10) return KNOWN_MAC.has(v) ? 'auth' : 'unknown_alg';
    return 'auth';
  }
  const a = s - skipLength;
  if (a === 1) {
    const ahAt = d + IPV4_HEADER_BYTES + skipLength;
    const newLength = (flipped[ahAt + 1] + 2) * 4;
    return ahAt + newLength + 16 > dEnd ? 'truncated' : 'auth';
  }
  void ahLength;
  return 'auth';
}

function endSample(suite: EspSuite, ah: MacAlg | undefined): Sample {
  // With AH: SGW0 → SGW1 (NSID 0/0: the outer source names the key). Without: SMN → SGW0 (NSID 1 source).
  const pair = ah
    ? endSaPair({ suite, ah, mode: 'skip', id: 51, src: ADDR.sgw0, dst: ADDR.sgw1, seq: SEQ })
    : endSaPair({
        suite,
        mode: 'skip',
        id: 52,
        src: ADDR.smnCoa,
        dst: ADDR.sgw0,
        mkid: { src: ADDR.smnHome },
        seq: SEQ,
      });
  const tx = engineWith('ts', [pair.out]);
  const inner = datagram(61);
  const sealed = runOne(tx, Op.ENCAP, inner, pair.out.id).packet;
  tx.close();
  const skipLength = pair.out.skipHeader!.length;
  const skipAt = IPV4_HEADER_BYTES;
  const ahAt = skipAt + skipLength;
  const espAt = ahAt + (ah ? AH_BYTES[ah] : 0);
  return {
    packet: sealed,
    receiver: [pair.in],
    local: [],
    inner,
    deliveredSa: pair.in.id,
    from: ah ? 0 : espAt,
    to: sealed.length,
    expect(byte, bit, flipped) {
      if (byte < IPV4_HEADER_BYTES) {
        return outerIpExpect(byte, bit, flipped, true, (total) =>
          total < ahAt + AH_BYTES[ah!] ? 'truncated' : 'auth',
        );
      }
      if (byte < ahAt) return skipExpect(byte - skipAt, bit, flipped, skipAt, ah !== undefined);
      if (byte < espAt) return ahExpect(byte - ahAt);
      if (!ah && byte < espAt + 4) return 'bad_spi';
      return 'auth';
    },
  };
}

function nexthopSample(alg: MacAlg, coverage: 'full' | 'headers'): Sample {
  const end = endSaPair({
    suite: 'aes128gcm',
    ah: 'gmac-aes128',
    mode: 'skip',
    id: 61,
    src: ADDR.smnCoa,
    dst: ADDR.sgw0,
    mkid: { src: ADDR.smnHome },
    seq: SEQ,
  });
  const hop = nexthopSaPair({
    alg,
    coverage,
    mode: 'skip',
    id: 62,
    src: ADDR.smnCoa,
    dst: ADDR.sgw0,
    mkid: { src: ADDR.smnHome },
    seq: SEQ,
  });
  const tx = engineWith('ts', [end.out, hop.out]);
  const inner = datagram(100);
  const sealed = runOne(tx, Op.ENCAP, inner, end.out.id).packet;
  const wrapped = runOne(tx, Op.WRAP, sealed, hop.out.id).packet;
  tx.close();
  const skipLength = hop.out.skipHeader!.length;
  const ahAt = IPV4_HEADER_BYTES + skipLength;
  const d = ahAt + AH_BYTES[alg];
  const dSkipLength = end.out.skipHeader!.length;
  const dCoveredEnd = d + IPV4_HEADER_BYTES + dSkipLength + AH_BYTES['gmac-aes128'] + 16;
  return {
    packet: wrapped,
    receiver: [hop.in, end.in],
    local: [ADDR.sgw0],
    inner,
    deliveredSa: end.in.id,
    from: 0,
    to: coverage === 'full' ? wrapped.length : dCoveredEnd,
    expect(byte, bit, flipped) {
      if (byte < IPV4_HEADER_BYTES) {
        return outerIpExpect(byte, bit, flipped, false, (total) => {
          if (total < d) return 'truncated';
          return coverage === 'headers' && total < dCoveredEnd ? 'truncated' : 'auth';
        });
      }
      if (byte < ahAt) return skipExpect(byte - IPV4_HEADER_BYTES, bit, flipped, IPV4_HEADER_BYTES, true);
      if (byte < d) return ahExpect(byte - ahAt);
      if (coverage === 'full') return 'auth';
      return walkExpect(flipped, d, flipped.length, byte, bit, dSkipLength, AH_BYTES['gmac-aes128']);
    },
  };
}

const SAMPLES: [string, () => Sample][] = [
  ...ESP_SUITES.map((s) => [`ESP ${s}`, () => endSample(s, undefined)] as [string, () => Sample]),
  ...MAC_ALGS.map((m) => [`end AH ${m} + ESP aes128gcm`, () => endSample('aes128gcm', m)] as [string, () => Sample]),
  ...MAC_ALGS.flatMap((m) =>
    (['full', 'headers'] as const).map(
      (c) => [`next-hop ${m} ${c}`, () => nexthopSample(m, c)] as [string, () => Sample],
    ),
  ),
];

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

describe.each(IMPLS)('[%s] tamper', (impl) => {
  it.each(SAMPLES)('%s: every bit flip in the authenticated region is dropped with its exact reason', (_name, make) => {
    const sample = make();
    const rx = engineWith(impl, sample.receiver, { local: sample.local });
    opened.push(rx);
    const flips: Uint8Array[] = [];
    const want: Expect[] = [];
    for (let byte = sample.from; byte < sample.to; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = Uint8Array.from(sample.packet);
        flipped[byte] ^= 1 << bit;
        // Outer header fields other than the checksum itself: fix the checksum so the flip reaches the ICV.
        if (byte < IPV4_HEADER_BYTES && byte !== 10 && byte !== 11) setIpv4Checksum(flipped);
        flips.push(flipped);
        want.push(sample.expect(byte, bit, flipped));
      }
    }
    expect(flips.length).toBeGreaterThan(100);
    // Flips of fields the ICV does not cover are delivered; each gets a fresh receiver (a delivery commits its
    // sequence number). Every other flip goes through one receiver, in one batch.
    const forged = flips.filter((_, i) => want[i] !== 'deliver');
    const forgedWant = want.filter((w) => w !== 'deliver');
    for (const [i, flipped] of flips.entries()) {
      if (want[i] !== 'deliver') continue;
      const fresh = engineWith(impl, sample.receiver, { local: sample.local });
      opened.push(fresh);
      const r = runOne(fresh, Op.INBOUND, flipped);
      expect({ byte: sample.from + (i >> 3), bit: i & 7, verdict: r.verdict, sa: r.sa, packet: hex(r.packet) }).toEqual(
        {
          byte: sample.from + (i >> 3),
          bit: i & 7,
          verdict: Verdict.DELIVER,
          sa: sample.deliveredSa,
          packet: hex(sample.inner),
        },
      );
    }
    const at = flips.flatMap((_, i) => (want[i] === 'deliver' ? [] : [`byte ${sample.from + (i >> 3)} bit ${i & 7}`]));
    const before = Array.from(rx.counters(), Number);
    const results = runMany(rx, Op.INBOUND, forged);
    const got = results.map((r) => (r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason]));
    const mismatches = got.flatMap((g, i) =>
      g === forgedWant[i] ? [] : [`${at[i]}: got ${g}, want ${forgedWant[i]}`],
    );
    expect(mismatches).toEqual([]);
    // The counters grew by exactly these drops and punts, per reason.
    const after = rx.counters();
    const tally = new Map<number, number>();
    for (const w of forgedWant) tally.set(Reason[w as ReasonName], (tally.get(Reason[w as ReasonName]) ?? 0) + 1);
    for (const [reason, n] of tally) expect(Number(after[reason]) - before[reason], reasonName[reason]).toBe(n);
    expect(tally.get(Reason.auth) ?? 0).toBeGreaterThan(0);
    // No forgery moved the window: the original still opens.
    const original = runOne(rx, Op.INBOUND, sample.packet);
    expect({ verdict: original.verdict, sa: original.sa, packet: hex(original.packet) }).toEqual({
      verdict: Verdict.DELIVER,
      sa: sample.deliveredSa,
      packet: hex(sample.inner),
    });
  });
});
