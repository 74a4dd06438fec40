// describe(): the draft's stacks (§4.4 <3>, §4.5.3 <1>, <3>) from hand-built packets, an ESP resolver, malformed parts.
import { describe, expect, it } from 'vitest';
import { Op } from '../../src/engine/index.js';
import { RefEngine } from '../../src/engine/ref/engine.js';
import { Batch } from '../../src/engine/batch.js';
import { aeadOpen, keyMaterial } from '../../src/engine/ref/crypto.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeAhHeader } from '../../src/wire/ah.js';
import { describe as describePacket, type DescribeResolver } from '../../src/wire/describe.js';
import { checkEspTrailer } from '../../src/wire/esp.js';
import { IPV4_FLAG_MF, IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import { NSID_IPV4, NSID_NONE, encodeSkipHeader } from '../../src/wire/skip.js';

const A = {
  smnHome: '10.0.0.100',
  smnCoa: '10.1.0.100',
  sgw1: '198.18.1.10',
  sgw0: '198.18.0.1',
  ch0: '10.0.0.20',
  ha: '10.0.0.2',
};

const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const ip = (src: string, dst: string, protocol: number, payload: Uint8Array) =>
  buildIpv4({ src: ipToU32(src), dst: ipToU32(dst), protocol }, payload);
const udp = (sport: number, dport: number) =>
  Uint8Array.from([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 12, 0, 0, 1, 2, 3, 4]);

/** A SKIP header; `src`/`dst` given = NSID 1 with that MKID. */
function skip(next: number, ids: { src?: string; dst?: string }): Uint8Array {
  return encodeSkipHeader({
    srcNsid: ids.src ? NSID_IPV4 : NSID_NONE,
    dstNsid: ids.dst ? NSID_IPV4 : NSID_NONE,
    srcMkid: ids.src ? ipToU32(ids.src) : undefined,
    dstMkid: ids.dst ? ipToU32(ids.dst) : undefined,
    nextHeader: next,
    n: 17184,
    kijAlg: 250,
    cryptAlg: 250,
    macAlg: 250,
    compAlg: 0,
    wrappedKp: new Uint8Array(40).fill(0x3c),
  });
}

function ah(next: number): Uint8Array {
  const out = new Uint8Array(36);
  writeAhHeader(out, 0, { nextHeader: next, length: 36, spi: 1, seq: 1 });
  return out;
}

/** ESP whose "ciphertext" is the inner datagram in clear (describe treats it as opaque anyway); zero ICV. */
const esp = (inner: Uint8Array) =>
  cat(
    Uint8Array.from([0, 0, 0, 1, 0, 0, 0, 1]),
    new Uint8Array(8),
    inner,
    Uint8Array.from([1, 2, 2, 4]),
    new Uint8Array(16),
  );
/** Opens the clear-text ESP above: the inner datagram starts after SPI, seq and IV. */
const clearResolver: DescribeResolver = { openEsp: (ctx) => ctx.esp.subarray(16) };

/** IPv4 / SKIP / AH[next] / (datagram): a next-hop layer. */
const nextHop = (src: string, dst: string, ids: { src?: string; dst?: string }, datagram: Uint8Array) =>
  ip(src, dst, IpProto.SKIP, cat(skip(IpProto.AH, ids), ah(IpProto.IPIP), datagram));
/** IPv4 / SKIP / AH[end] / ESP / inner: the End-End layer. */
const endLayer = (src: string, dst: string, ids: { src?: string; dst?: string }, inner: Uint8Array) =>
  ip(src, dst, IpProto.SKIP, cat(skip(IpProto.AH, ids), ah(IpProto.ESP), esp(inner)));

describe('describe()', () => {
  it('§4.4 <3>: the second registration request, SMN → SGW1 with a next-hop AH', () => {
    const request = ip(A.smnCoa, A.ha, IpProto.UDP, udp(1024, 434));
    const packet = nextHop(
      A.smnCoa,
      A.sgw1,
      { src: A.smnHome },
      endLayer(A.smnCoa, A.sgw0, { src: A.smnHome }, request),
    );
    const outer =
      'IPv4(10.1.0.100>198.18.1.10) / SKIP(NSID1 MKID 10.0.0.100 > NSID0) / AH[next] / IPv4(10.1.0.100>198.18.0.1) / SKIP(NSID1 MKID 10.0.0.100 > NSID0) / AH[end] / ESP(spi 1)';
    expect(describePacket(packet)).toBe(outer);
    expect(describePacket(packet, clearResolver)).toBe(`${outer} / IPv4(10.1.0.100>10.0.0.2) / UDP(1024>434)`);
  });

  it('§4.5.3 <1>: data from the SMN in site 1 to CH0 at home', () => {
    const data = ip(A.smnHome, A.ch0, IpProto.TCP, Uint8Array.from([0x9c, 0x40, 0, 80, ...new Uint8Array(16)]));
    const packet = nextHop(A.smnCoa, A.sgw1, { src: A.smnHome }, endLayer(A.smnCoa, A.sgw0, { src: A.smnHome }, data));
    expect(describePacket(packet, clearResolver)).toBe(
      'IPv4(10.1.0.100>198.18.1.10) / SKIP(NSID1 MKID 10.0.0.100 > NSID0) / AH[next] / IPv4(10.1.0.100>198.18.0.1) / ' +
        'SKIP(NSID1 MKID 10.0.0.100 > NSID0) / AH[end] / ESP(spi 1) / IPv4(10.0.0.100>10.0.0.20) / TCP(40000>80)',
    );
  });

  it("§4.5.3 <3>: SGW0 → SGW1, the HA's IP-in-IP packet inside the End-End layer to the SMN", () => {
    const tunnelled = ip(A.ha, A.smnCoa, IpProto.IPIP, ip(A.ch0, A.smnHome, IpProto.UDP, udp(53, 5353)));
    const packet = nextHop(A.sgw0, A.sgw1, {}, endLayer(A.sgw0, A.smnCoa, { dst: A.smnHome }, tunnelled));
    expect(describePacket(packet, clearResolver)).toBe(
      'IPv4(198.18.0.1>198.18.1.10) / SKIP(NSID0 > NSID0) / AH[next] / IPv4(198.18.0.1>10.1.0.100) / ' +
        'SKIP(NSID0 > NSID1 MKID 10.0.0.100) / AH[end] / ESP(spi 1) / IPv4(10.0.0.2>10.1.0.100) / IPv4(10.0.0.20>10.0.0.100) / UDP(53>5353)',
    );
  });

  it('opens a real ESP with a resolver that holds the key', () => {
    const engine = new RefEngine();
    const key = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    engine.installSa({
      id: 1,
      direction: 'out',
      role: 'end',
      mode: 'spi',
      src: A.sgw0,
      dst: A.sgw1,
      esp: { suite: 'aes128gcm', key, spi: 0x4000 },
    });
    const batch = new Batch({ capacity: 1 });
    batch.push(Op.ENCAP, ip(A.smnHome, A.ch0, IpProto.UDP, udp(7, 9)), 1);
    engine.process(batch);
    const sealed = Uint8Array.from(batch.result(0).packet);
    engine.close();
    const resolver: DescribeResolver = {
      openEsp: ({ esp: e, spi }) => {
        if (spi !== 0x4000) return undefined;
        const plain = aeadOpen(
          'aes128gcm',
          keyMaterial(key, true),
          e.subarray(8, 16),
          e.subarray(0, 8),
          e.subarray(16, e.length - 16),
          e.subarray(e.length - 16),
        );
        if (!plain) return undefined;
        const t = checkEspTrailer(plain, 0, plain.length);
        return t.ok ? plain.subarray(0, t.payloadEnd) : undefined;
      },
    };
    expect(describePacket(sealed)).toBe('IPv4(198.18.0.1>198.18.1.10) / ESP(spi 16384)');
    expect(describePacket(sealed, resolver)).toBe(
      'IPv4(198.18.0.1>198.18.1.10) / ESP(spi 16384) / IPv4(10.0.0.100>10.0.0.20) / UDP(7>9)',
    );
  });

  it('other protocols: ICMP, GRE, a non-first fragment', () => {
    expect(describePacket(ip(A.ch0, A.smnHome, IpProto.ICMP, Uint8Array.from([8, 0, 0, 0, 0, 1, 0, 1])))).toBe(
      'IPv4(10.0.0.20>10.0.0.100) / ICMP(type 8 code 0)',
    );
    expect(describePacket(ip(A.ch0, A.smnHome, 47, new Uint8Array(12)))).toBe(
      'IPv4(10.0.0.20>10.0.0.100) / Proto(47, 12 bytes)',
    );
    const frag = buildIpv4(
      { src: ipToU32(A.ch0), dst: ipToU32(A.smnHome), flagsFragment: IPV4_FLAG_MF | 185, protocol: IpProto.UDP },
      new Uint8Array(8),
    );
    expect(describePacket(frag)).toBe('IPv4(10.0.0.20>10.0.0.100) / Fragment(offset 185)');
  });

  it('malformed parts end the line with "Name! reason" at every truncation length and never throw', () => {
    const packet = nextHop(
      A.smnCoa,
      A.sgw1,
      { src: A.smnHome },
      endLayer(A.smnCoa, A.sgw0, { src: A.smnHome }, ip(A.smnHome, A.ch0, IpProto.UDP, udp(1, 2))),
    );
    const seen = new Set<string>();
    for (let l = 0; l < packet.length; l++) {
      // A raw cut: the outer header still claims the whole packet, so the outer IPv4 is what fails.
      const cut = Uint8Array.from(packet.subarray(0, l));
      const text = describePacket(cut);
      expect(text).toMatch(/! (truncated|bad_total_length)$/);
      seen.add(text.slice(text.lastIndexOf('/') + 1).trim());
    }
    expect([...seen]).toEqual(['IPv4! truncated', 'IPv4! bad_total_length']);
    expect(describePacket(ip(A.sgw1, A.sgw0, IpProto.SKIP, skip(IpProto.AH, {}).subarray(0, 30)))).toBe(
      'IPv4(198.18.1.10>198.18.0.1) / SKIP! truncated',
    );
    expect(describePacket(ip(A.sgw1, A.sgw0, IpProto.SKIP, cat(skip(IpProto.AH, {}), ah(4).subarray(0, 20))))).toBe(
      'IPv4(198.18.1.10>198.18.0.1) / SKIP(NSID0 > NSID0) / AH! truncated',
    );
    expect(describePacket(ip(A.sgw1, A.sgw0, IpProto.ESP, new Uint8Array(7)))).toBe(
      'IPv4(198.18.1.10>198.18.0.1) / ESP! truncated',
    );
    expect(describePacket(ip(A.sgw1, A.sgw0, IpProto.UDP, new Uint8Array(7)))).toBe(
      'IPv4(198.18.1.10>198.18.0.1) / UDP! truncated',
    );
    const badSkip = skip(IpProto.AH, {});
    badSkip[1] = 9;
    expect(describePacket(ip(A.sgw1, A.sgw0, IpProto.SKIP, badSkip))).toBe(
      'IPv4(198.18.1.10>198.18.0.1) / SKIP! unknown_nsid',
    );
    expect(describePacket(new Uint8Array(0))).toBe('IPv4! truncated');
    const badChecksum = ip(A.sgw1, A.sgw0, IpProto.UDP, udp(1, 2));
    badChecksum[11] ^= 1;
    expect(describePacket(badChecksum)).toBe('IPv4! bad_ip_checksum');
  });

  it('a stack of 300 IP-in-IP headers is cut short with "…", not a stack overflow', () => {
    let p = ip(A.ch0, A.smnHome, IpProto.UDP, udp(1, 2));
    for (let i = 0; i < 300; i++) p = ip(A.ha, A.smnCoa, IpProto.IPIP, p);
    const parts = describePacket(p).split(' / ');
    expect(parts.length).toBe(257);
    expect(parts.at(-1)).toBe('…');
  });
});
