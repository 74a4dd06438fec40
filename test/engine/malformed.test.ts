// Hostile input: truncations at every length, wrong header fields, 100 stacked layers, bad descriptors.
// Each is a counted drop (or punt) with its exact reason; counters() matches the tally at the end of every test.
// Slots are pre-filled with 0xa5 so a read past a packet would see garbage, not zeros.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Batch,
  DESC_WORDS,
  Desc,
  Op,
  Reason,
  VERDICT_COUNTER_BASE,
  Verdict,
  reasonName,
  type Engine,
  type OpCode,
  type ReasonName,
  type SaDesc,
} from '../../src/engine/index.js';
import { KEY_BYTES } from '../../src/engine/types.js';
import { aeadSeal, ivFromSeq, keyMaterial } from '../../src/engine/ref/crypto.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { AH_BYTES } from '../../src/wire/ah.js';
import { IPV4_HEADER_BYTES, IpProto, buildIpv4, setIpv4Checksum } from '../../src/wire/ipv4.js';
import { ADDR, IMPLS, bytes, datagram, endSaPair, engineWith, hex, nexthopSaPair, runOne } from './fixtures.js';

type Want = ReasonName | 'deliver' | 'forward';
const PUNTS: readonly Want[] = [
  'unknown_key',
  'no_route',
  'not_ipsec',
  'nexthop_plain',
  'relay_denied',
  'policy_punt',
  'ttl_exceeded',
  'deliver_local',
  'rekey',
];

/** An engine plus the counters it must show: every expectation adds to the tally. */
class Checked {
  readonly tally = new Map<number, bigint>();
  constructor(readonly engine: Engine) {}

  private count(slot: number): void {
    this.tally.set(slot, (this.tally.get(slot) ?? 0n) + 1n);
  }

  /** Runs packets through `op` in one batch and checks each outcome. */
  expectAll(
    op: OpCode,
    packets: Uint8Array[],
    want: Want[],
    arg0 = 0,
    arg1 = 0,
    options?: { slotSize?: number; headroom?: number },
  ): Uint8Array[] {
    const batch = new Batch({ capacity: Math.max(1, packets.length), ...options });
    batch.buffer.fill(0xa5);
    for (const p of packets) batch.push(op, p, arg0, arg1);
    this.engine.process(batch);
    const got: string[] = [];
    const out: Uint8Array[] = [];
    for (let i = 0; i < packets.length; i++) {
      const r = batch.result(i);
      got.push(
        r.verdict === Verdict.DELIVER ? 'deliver' : r.verdict === Verdict.FORWARD ? 'forward' : reasonName[r.reason],
      );
      out.push(Uint8Array.from(r.packet));
      const w = want[i];
      const failed = PUNTS.includes(w) ? Verdict.PUNT : Verdict.DROP;
      const verdict = w === 'deliver' ? Verdict.DELIVER : w === 'forward' ? Verdict.FORWARD : failed;
      this.count(VERDICT_COUNTER_BASE + verdict);
      if (w !== 'deliver' && w !== 'forward') {
        this.count(Reason[w]);
        expect(r.verdict, `packet ${i} (${w})`).toBe(verdict);
      }
    }
    const mismatches = got.flatMap((g, i) =>
      g === want[i] ? [] : [`#${i} (${packets[i].length} B): got ${g}, want ${want[i]}`],
    );
    expect(mismatches).toEqual([]);
    return out;
  }

  expectOne(
    op: OpCode,
    packet: Uint8Array,
    want: Want,
    arg0 = 0,
    arg1 = 0,
    options?: { slotSize?: number; headroom?: number },
  ): Uint8Array {
    return this.expectAll(op, [packet], [want], arg0, arg1, options)[0];
  }

  expectCounters(): void {
    const counters = this.engine.counters();
    const shown = new Map<string, bigint>();
    const wanted = new Map<string, bigint>();
    for (let i = 1; i < counters.length; i++) {
      const name = i >= VERDICT_COUNTER_BASE ? `verdict ${i - VERDICT_COUNTER_BASE}` : reasonName[i];
      if (counters[i] !== 0n) shown.set(name, counters[i]);
      const t = this.tally.get(i);
      if (t) wanted.set(name, t);
    }
    expect(Object.fromEntries(shown)).toEqual(Object.fromEntries(wanted));
  }
}

const checked: Checked[] = [];
afterEach(() => {
  for (const c of checked.splice(0)) {
    c.expectCounters();
    c.engine.close();
  }
});

function checkedEngine(
  impl: 'ts' | 'native',
  sas: readonly SaDesc[],
  setup?: Parameters<typeof engineWith>[2],
): Checked {
  const c = new Checked(engineWith(impl, sas, setup));
  checked.push(c);
  return c;
}

/** The first `length` bytes with total length and header checksum rewritten to match (when a header is left). */
function cut(packet: Uint8Array, length: number): Uint8Array {
  const out = Uint8Array.from(packet.subarray(0, length));
  if (length >= IPV4_HEADER_BYTES)
    patchHeader(out, (h) => {
      h[2] = length >> 8;
      h[3] = length & 0xff;
    });
  return out;
}

/** Applies `change` to a copy's outer IPv4 header, then recomputes its checksum over the first 20 bytes. */
function patchHeader(packet: Uint8Array, change: (h: Uint8Array) => void): Uint8Array {
  change(packet);
  setIpv4Checksum(packet);
  return packet;
}

function patched(packet: Uint8Array, change: (h: Uint8Array) => void): Uint8Array {
  return patchHeader(Uint8Array.from(packet), change);
}

function withByte(packet: Uint8Array, at: number, value: number): Uint8Array {
  const out = Uint8Array.from(packet);
  out[at] = value;
  return out;
}

function lengths(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Raw truncation leaves the header claiming the full length: < 20 bytes is truncated, else bad_total_length. */
function rawTruncationWant(length: number): Want {
  return length < IPV4_HEADER_BYTES ? 'truncated' : 'bad_total_length';
}

/** `inner` protected by a TS sender for `sa` whose headers carry sequence number `seq`. */
function seal(sa: SaDesc, inner: Uint8Array, seq = 1): Uint8Array {
  const at = { seq: seq - 1 };
  const tx = engineWith('ts', [{ ...sa, ah: sa.ah && { ...sa.ah, ...at }, esp: sa.esp && { ...sa.esp, ...at } }]);
  const p = runOne(tx, sa.role === 'end' ? Op.ENCAP : Op.WRAP, inner, sa.id).packet;
  tx.close();
  return p;
}

describe.each(IMPLS)('[%s] malformed input', (impl) => {
  it('end layer, ESP only (SKIP NSID 1): every truncation length', () => {
    const pair = endSaPair({
      suite: 'aes128gcm',
      mode: 'skip',
      id: 81,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const rx = checkedEngine(impl, [pair.in]);
    const p = seal(pair.out, datagram(64));
    const skipEnd = IPV4_HEADER_BYTES + pair.out.skipHeader!.length;
    const all = lengths(p.length);
    rx.expectAll(
      Op.INBOUND,
      all.map((l) => p.subarray(0, l)),
      all.map(rawTruncationWant),
    );
    rx.expectAll(
      Op.INBOUND,
      all.map((l) => cut(p, l)),
      all.map((l): Want => (l < skipEnd + 8 ? 'truncated' : l < skipEnd + 34 ? 'bad_esp' : 'auth')),
    );
    rx.expectOne(Op.INBOUND, p, 'deliver');
  });

  it('end layer with AH (SKIP NSID 0/0) and SPI mode: every truncation length', () => {
    const skip = endSaPair({
      suite: 'chacha20poly1305',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 82,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
    });
    const spi = endSaPair({ suite: 'aes256gcm', mode: 'spi', id: 83, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const rx = checkedEngine(impl, [skip.in, spi.in]);
    const p = seal(skip.out, datagram(40));
    const ahEnd = IPV4_HEADER_BYTES + skip.out.skipHeader!.length + AH_BYTES['gmac-aes128'];
    rx.expectAll(
      Op.INBOUND,
      lengths(p.length).map((l) => cut(p, l)),
      lengths(p.length).map((l): Want => (l < ahEnd ? 'truncated' : 'auth')),
    );
    const q = seal(spi.out, datagram(40));
    rx.expectAll(
      Op.INBOUND,
      lengths(q.length).map((l) => cut(q, l)),
      lengths(q.length).map(
        (l): Want => (l < IPV4_HEADER_BYTES + 8 ? 'truncated' : l < IPV4_HEADER_BYTES + 34 ? 'bad_esp' : 'auth'),
      ),
    );
    rx.expectOne(Op.INBOUND, p, 'deliver');
    rx.expectOne(Op.INBOUND, q, 'deliver');
  });

  it.each(['full', 'headers'] as const)('next-hop layer (%s coverage): every truncation length', (coverage) => {
    const end = endSaPair({
      suite: 'aes128gcm',
      ah: 'hmac-sha256-128',
      mode: 'skip',
      id: 84,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const hop = nexthopSaPair({
      alg: 'hmac-sha256-128',
      coverage,
      mode: 'skip',
      id: 85,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const rx = checkedEngine(impl, [end.in, hop.in], { local: [ADDR.sgw0] });
    const sealed = seal(end.out, datagram(90));
    const p = seal(hop.out, sealed);
    const d = IPV4_HEADER_BYTES + hop.out.skipHeader!.length + AH_BYTES['hmac-sha256-128'];
    const dCovered = d + IPV4_HEADER_BYTES + end.out.skipHeader!.length + AH_BYTES['hmac-sha256-128'] + 16;
    rx.expectAll(
      Op.INBOUND,
      lengths(p.length).map((l) => p.subarray(0, l)),
      lengths(p.length).map(rawTruncationWant),
    );
    rx.expectAll(
      Op.INBOUND,
      lengths(p.length).map((l) => cut(p, l)),
      lengths(p.length).map((l): Want => (l < d || (coverage === 'headers' && l < dCovered) ? 'truncated' : 'auth')),
    );
    rx.expectOne(Op.INBOUND, p, 'deliver');
  });

  it('IP-in-IP: every truncation length through INBOUND and IPIP_DECAP; ENCAP of truncated datagrams', () => {
    const pair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 86, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const rx = checkedEngine(impl, [pair.out]);
    const inner = datagram(50, { src: ADDR.ch0, dst: ADDR.smnHome });
    const p = buildIpv4({ src: ipToU32(ADDR.ha), dst: ipToU32(ADDR.smnCoa), protocol: IpProto.IPIP }, inner);
    const all = lengths(p.length);
    const innerWant = (l: number): Want =>
      l < IPV4_HEADER_BYTES + IPV4_HEADER_BYTES ? 'truncated' : 'bad_total_length';
    rx.expectAll(
      Op.INBOUND,
      all.map((l) => cut(p, l)),
      all.map(innerWant),
    );
    rx.expectAll(
      Op.IPIP_DECAP,
      all.map((l) => cut(p, l)),
      all.map(innerWant),
    );
    rx.expectAll(
      Op.IPIP_DECAP,
      all.map((l) => p.subarray(0, l)),
      all.map(rawTruncationWant),
    );
    rx.expectAll(
      Op.ENCAP,
      lengths(inner.length).map((l) => inner.subarray(0, l)),
      lengths(inner.length).map(rawTruncationWant),
      pair.out.id,
    );
    rx.expectAll(Op.WRAP, [inner], ['no_sa'], pair.out.id);
    rx.expectAll(
      Op.IPIP_ENCAP,
      lengths(inner.length).map((l) => inner.subarray(0, l)),
      lengths(inner.length).map(rawTruncationWant),
      1,
      2,
    );
    expect(hex(rx.expectOne(Op.IPIP_DECAP, p, 'deliver'))).toBe(hex(inner));
  });

  it('wrong IPv4 fields: version, IHL, total length, checksum, fragments', () => {
    const pair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 87, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const rx = checkedEngine(impl, [pair.in, pair.out]);
    const p = seal(pair.out, datagram(60));
    const cases: [Uint8Array, Want][] = [
      ...[0, 1, 5, 6, 15].map(
        (v) =>
          [
            patched(p, (h) => {
              h[0] = (v << 4) | 5;
            }),
            'bad_ip_version',
          ] as [Uint8Array, Want],
      ),
      ...[0, 1, 4].map(
        (ihl) =>
          [
            patched(p, (h) => {
              h[0] = 0x40 | ihl;
            }),
            'bad_ihl',
          ] as [Uint8Array, Want],
      ),
      [
        patched(p.subarray(0, 40), (h) => {
          h[0] = 0x4f;
          h[2] = 0;
          h[3] = 40;
        }),
        'bad_ihl',
      ], // 60-byte header in a 40-byte datagram
      ...[0, 19].map(
        (t) =>
          [
            patched(p, (h) => {
              h[2] = 0;
              h[3] = t;
            }),
            'bad_ihl',
          ] as [Uint8Array, Want],
      ),
      ...[p.length + 1, 0xffff].map(
        (t) =>
          [
            patched(p, (h) => {
              h[2] = t >> 8;
              h[3] = t & 0xff;
            }),
            'bad_total_length',
          ] as [Uint8Array, Want],
      ),
      [withByte(p, 10, p[10] ^ 0x40), 'bad_ip_checksum'],
      [withByte(p, 11, p[11] ^ 0x01), 'bad_ip_checksum'],
      [
        patched(p, (h) => {
          h[6] |= 0x20;
        }),
        'fragment',
      ],
      [
        patched(p, (h) => {
          h[7] |= 0x01;
        }),
        'fragment',
      ],
      [
        patched(p, (h) => {
          h[6] = 0x1f;
          h[7] = 0xff;
        }),
        'fragment',
      ],
      [
        patched(p, (h) => {
          h[9] = IpProto.UDP;
        }),
        'not_ipsec',
      ],
      [
        patched(p, (h) => {
          h[9] = IpProto.AH;
        }),
        'bad_spi',
      ], // the ESP SPI read as an AH SPI names no SA
      [p, 'deliver'],
    ];
    rx.expectAll(
      Op.INBOUND,
      cases.map((c) => c[0]),
      cases.map((c) => c[1]),
    );
    // Trailing bytes beyond the total length are cut off, not fatal.
    const padded = new Uint8Array(p.length + 13).fill(0x5a);
    padded.set(seal(pair.out, datagram(60), 2));
    rx.expectOne(Op.INBOUND, padded, 'deliver');
  });

  it('wrong SKIP, AH and ESP fields', () => {
    const end = endSaPair({
      suite: 'aes128gcm',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 88,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const hop = nexthopSaPair({
      alg: 'hmac-sha256-128',
      mode: 'skip',
      id: 89,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const spi = endSaPair({
      suite: 'aes128gcm',
      ah: 'hmac-sha256-128',
      mode: 'spi',
      id: 90,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
    });
    const rx = checkedEngine(impl, [end.in, hop.in, spi.in], { local: [ADDR.sgw0] });
    const p = seal(end.out, datagram(70));
    const w = seal(hop.out, datagram(70, { dst: ADDR.sgw0 }));
    const q = seal(spi.out, datagram(70));
    const s = IPV4_HEADER_BYTES; // SKIP header offset
    const ah = s + end.out.skipHeader!.length; // end AH offset
    const cases: [Uint8Array, Want][] = [
      ...[0x00, 0x20, 0xf0].map((b) => [withByte(p, s, b), 'bad_skip'] as [Uint8Array, Want]),
      [withByte(seal(end.out, datagram(70), 2), s, 0x1f), 'deliver'], // reserved nibble: ignored and zeroed in the ICV
      ...[2, 3, 7, 255].map((n) => [withByte(p, s + 1, n), 'unknown_nsid'] as [Uint8Array, Want]),
      ...[2, 255].map((n) => [withByte(p, s + 2, n), 'unknown_nsid'] as [Uint8Array, Want]),
      [withByte(p, s + 2, 1), 'bad_dst_mkid'], // NSID 1: the next 4 bytes become a destination MKID that is not ours
      ...[6, 17, 4, 0].map((n) => [withByte(p, s + 3, n), 'bad_skip'] as [Uint8Array, Want]),
      [withByte(p, s + 3, IpProto.ESP), 'sa_mismatch'], // the SA has an AH
      [withByte(p, s + 8, 1), 'unknown_alg'],
      [withByte(p, s + 9, 253), 'unknown_alg'],
      [withByte(p, s + 9, 251), 'sa_mismatch'],
      [withByte(p, s + 10, 252), 'unknown_alg'],
      [withByte(p, s + 10, 0), 'sa_mismatch'],
      [withByte(p, s + 11, 1), 'unknown_alg'],
      [withByte(p, s + 4, p[s + 4] ^ 1), 'unknown_key'], // another n: another key
      [withByte(p, s + 20, p[s + 20] ^ 1), 'unknown_key'], // another wrapped Kp
      [withByte(p, ah, IpProto.UDP), 'bad_next_header'],
      [withByte(p, ah + 1, 5), 'bad_ah'], // HMAC's length where the SA has GMAC
      [withByte(p, ah + 2, 1), 'bad_ah'],
      [withByte(p, ah + 7, 2), 'bad_spi'], // behind SKIP the SPI must be 1
      [withByte(w, ah, IpProto.ESP), 'bad_next_header'], // a next-hop AH must carry IPv4
      [withByte(q, s + 7, q[s + 7] ^ 1), 'bad_spi'], // SPI mode: unknown SPI
      [seal({ ...spi.out, esp: { ...spi.out.esp!, spi: 0x7777 } }, datagram(70), 2), 'bad_spi'], // the ESP SPI behind a good AH is not the SA's
      [p, 'deliver'],
      [w, 'nexthop_plain'], // a plain datagram under a next-hop layer only: for the policy (docs/engine.md §5)
      [q, 'deliver'],
    ];
    rx.expectAll(
      Op.INBOUND,
      cases.map((c) => c[0]),
      cases.map((c) => c[1]),
    );
  });

  it('ESP trailer: next header 59 is a dummy, other next headers and bad padding are dropped after the tag verified', () => {
    const key = bytes(KEY_BYTES.aes128gcm, 91);
    const sa: SaDesc = {
      id: 91,
      direction: 'in',
      role: 'end',
      mode: 'spi',
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
      esp: { suite: 'aes128gcm', key, spi: 0x9100 },
    };
    const rx = checkedEngine(impl, [sa]);
    const inner = datagram(41);
    const esp = (seq: number, plaintext: Uint8Array): Uint8Array => {
      const head = new Uint8Array(16);
      new DataView(head.buffer).setUint32(0, 0x9100);
      new DataView(head.buffer).setUint32(4, seq);
      head.set(ivFromSeq(seq), 8);
      const sealed = aeadSeal('aes128gcm', keyMaterial(key, true), head.subarray(8), head.subarray(0, 8), plaintext);
      return buildIpv4(
        { src: ipToU32(ADDR.sgw1), dst: ipToU32(ADDR.sgw0), protocol: IpProto.ESP },
        Buffer.concat([head, sealed.ciphertext, sealed.tag]),
      );
    };
    const trailer = (padding: number[], next: number) => Uint8Array.from([...inner, ...padding, padding.length, next]);
    const cases: [Uint8Array, Want][] = [
      [esp(1, trailer([1], 59)), 'dummy'],
      [esp(2, trailer([1], 17)), 'bad_next_header'],
      [esp(3, trailer([2], 4)), 'bad_esp'], // padding must be 1, 2, 3 …
      [esp(4, trailer([1, 2, 3, 4, 6], 4)), 'bad_esp'],
      [esp(5, Uint8Array.from([...inner.subarray(0, 10), 200, 4])), 'bad_esp'], // pad length beyond the plaintext
      [esp(6, trailer([1, 2, 3, 4, 5], 4)), 'deliver'], // more padding than needed is still well-formed
      [esp(7, trailer([1], 4)), 'deliver'],
    ];
    const out = rx.expectAll(
      Op.INBOUND,
      cases.map((c) => c[0]),
      cases.map((c) => c[1]),
    );
    expect(hex(out[5])).toBe(hex(inner));
    // The windows were committed before the trailer was judged: the dummy's sequence number is used up.
    rx.expectOne(Op.INBOUND, esp(1, trailer([1], 4)), 'replay');
  });

  it('IP-in-IP: loop, inner TTL 0, not IP-in-IP; INBOUND punts what is not IPsec', () => {
    const rx = checkedEngine(impl, []);
    const inner = datagram(30, { src: ADDR.ch0, ttl: 0 });
    const tunnel = buildIpv4({ src: ipToU32(ADDR.ha), dst: ipToU32(ADDR.smnCoa), protocol: IpProto.IPIP }, inner);
    rx.expectOne(Op.IPIP_ENCAP, datagram(30, { src: ADDR.smnCoa }), 'loop', ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa));
    rx.expectOne(Op.IPIP_DECAP, tunnel, 'ttl_expired');
    rx.expectOne(Op.INBOUND, tunnel, 'ttl_expired');
    rx.expectOne(Op.IPIP_DECAP, datagram(30), 'bad_next_header');
    rx.expectOne(Op.INBOUND, datagram(30), 'not_ipsec');
  });

  it('SA, route and room failures: no_sa, no_room, seq_exhausted, no_route, unknown_key', () => {
    const end = endSaPair({
      suite: 'aes128gcm',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 92,
      src: ADDR.sgw0,
      dst: ADDR.sgw1,
      seq: 0xffffffff,
    });
    const fresh = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 93, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const hop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 94, src: ADDR.sgw2, dst: ADDR.sgw0 });
    const rx = checkedEngine(impl, [end.out, fresh.out, hop.in, fresh.in], {
      local: [ADDR.sgw0],
      routes: [{ prefix: '10.9.0.0/16', sa: fresh.out.id }],
    });
    const d = datagram(100);
    rx.expectOne(Op.ENCAP, d, 'no_sa', 4242);
    rx.expectOne(Op.ENCAP, d, 'no_sa', fresh.in.id); // an inbound SA
    rx.expectOne(Op.WRAP, d, 'no_sa', fresh.out.id); // role end, not nexthop
    rx.expectOne(Op.ENCAP, d, 'no_sa', 0);
    rx.expectOne(Op.ENCAP, d, 'seq_exhausted', end.out.id);
    rx.expectOne(Op.ENCAP, d, 'no_room', fresh.out.id, 0, { headroom: 0 });
    rx.expectOne(Op.IPIP_ENCAP, d, 'no_room', 1, 2, { headroom: 0 });
    rx.expectOne(Op.ENCAP, datagram(2048 - 256 - 10), 'no_room', fresh.out.id); // no tailroom for the trailer
    rx.expectOne(Op.ENCAP, d, 'forward', fresh.out.id);
    // Unwrapped layers for elsewhere: no route → punt D; a route whose SA is not an out nexthop SA → no_sa.
    const espTo = (dst: string) =>
      buildIpv4({ src: ipToU32(ADDR.sgw2), dst: ipToU32(dst), protocol: IpProto.ESP }, bytes(60, 94));
    const punted = rx.expectOne(Op.INBOUND, seal(hop.out, espTo('10.8.0.1'), 1), 'no_route');
    expect(hex(punted)).toBe(hex(espTo('10.8.0.1')));
    rx.expectOne(Op.INBOUND, seal(hop.out, espTo('10.9.0.1'), 2), 'no_sa');
    // SKIP with a key tuple (here: another wrapped Kp) that no SA has: the control plane must derive it.
    const stranger = endSaPair({
      suite: 'aes128gcm',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 95,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
    });
    rx.expectOne(Op.INBOUND, seal(stranger.out, d), 'unknown_key');
  });

  it('100 stacked IP-in-IP layers → too_many_layers; 8 peel (the datagram is punted not_ipsec), 9 do not; 9 next-hop layers too (8 reach the plain datagram)', () => {
    const hop = nexthopSaPair({ alg: 'hmac-sha256-128', mode: 'spi', id: 96, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const rx = checkedEngine(impl, [hop.in], { local: [ADDR.sgw0] });
    const nest = (n: number) => {
      let p = datagram(40, { dst: ADDR.sgw0 });
      for (let i = 0; i < n; i++)
        p = buildIpv4({ src: ipToU32(ADDR.sgw1), dst: ipToU32(ADDR.sgw0), protocol: IpProto.IPIP }, p);
      return p;
    };
    const peeled = rx.expectAll(
      Op.INBOUND,
      [nest(100), nest(9), nest(8)],
      ['too_many_layers', 'too_many_layers', 'not_ipsec'],
      0,
      0,
      { slotSize: 4096 },
    );
    expect(hex(peeled[2])).toBe(hex(datagram(40, { dst: ADDR.sgw0 })));
    // Next-hop layers all addressed to this gateway; fresh sequence numbers per stack (peeling commits them).
    const stack = (n: number, firstSeq: number) => {
      let p = datagram(40, { dst: ADDR.sgw0 });
      for (let i = 0; i < n; i++) p = seal(hop.out, p, firstSeq + i);
      return p;
    };
    rx.expectAll(Op.INBOUND, [stack(8, 1), stack(9, 100)], ['nexthop_plain', 'too_many_layers']);
  });

  it('bad descriptors: offset or length outside the slot, unknown ops', () => {
    const c = checkedEngine(impl, []);
    const batch = new Batch({ capacity: 8, slotSize: 256, headroom: 64 });
    batch.buffer.fill(0xa5);
    const d = datagram(40);
    for (let i = 0; i < 8; i++) batch.push(Op.IPIP_DECAP, d);
    const set = (i: number, word: number, value: number) => {
      batch.desc[i * DESC_WORDS + word] = value >>> 0;
    };
    set(0, Desc.offset, 0 * 256 + 250); // runs past the slot end
    set(1, Desc.offset, 0); // in slot 0, not slot 1
    set(2, Desc.length, 256); // 64 + 256 > slot
    set(3, Desc.length, 0xffffffff);
    set(4, Desc.offset, 0xffffffff);
    set(5, Desc.op, 0);
    set(6, Desc.op, Math.max(...Object.values(Op)) + 1); // the first op number not in use
    set(7, Desc.op, 255);
    const before = Array.from({ length: 8 }, (_, i) => [
      batch.desc[i * DESC_WORDS + Desc.offset],
      batch.desc[i * DESC_WORDS + Desc.length],
    ]);
    c.engine.process(batch);
    for (let i = 0; i < 8; i++) {
      const r = batch.result(i);
      expect({ i, verdict: r.verdict, reason: r.reason, sa: r.sa, nexthop: r.nexthop }).toEqual({
        i,
        verdict: Verdict.DROP,
        reason: Reason.bad_descriptor,
        sa: 0,
        nexthop: 0,
      });
      expect([batch.desc[i * DESC_WORDS + Desc.offset], batch.desc[i * DESC_WORDS + Desc.length]]).toEqual(before[i]);
      c.tally.set(Reason.bad_descriptor, (c.tally.get(Reason.bad_descriptor) ?? 0n) + 1n);
      c.tally.set(VERDICT_COUNTER_BASE + Verdict.DROP, (c.tally.get(VERDICT_COUNTER_BASE + Verdict.DROP) ?? 0n) + 1n);
    }
    // A zero-length packet inside its slot is fine as a descriptor and truncated as a packet.
    c.expectOne(Op.INBOUND, new Uint8Array(0), 'truncated');
  });
});
