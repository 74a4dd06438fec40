// The bytes each op writes, checked field by field against docs/engine.md §6 with oracles computed here from the
// RFCs (node:crypto directly) — so both paths are held to the contract, not only to each other.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Verdict, type Engine, type MacAlg } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { onesComplementSum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  COVERAGES,
  ESP_SUITES,
  IMPLS,
  MAC_ALGS,
  MODES,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  oracleAhTag,
  oracleEspOpen,
  runOne,
} from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

const u16 = (p: Uint8Array, at: number) => (p[at] << 8) | p[at + 1];
const u32 = (p: Uint8Array, at: number) => ((p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3]) >>> 0;
const be64 = (seq: number) =>
  hex(Uint8Array.from([0, 0, 0, 0, seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff]));

interface OuterWant {
  tos: number;
  df: boolean;
  id: number;
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  length: number;
}

function expectOuter(p: Uint8Array, w: OuterWant): void {
  expect({
    versionIhl: p[0],
    tos: p[1],
    totalLength: u16(p, 2),
    id: u16(p, 4),
    flagsFragment: u16(p, 6),
    ttl: p[8],
    protocol: p[9],
    checksumOk: onesComplementSum(p, 0, 20) === 0xffff,
    src: u32(p, 12),
    dst: u32(p, 16),
  }).toEqual({
    versionIhl: 0x45,
    tos: w.tos,
    totalLength: w.length,
    id: w.id,
    flagsFragment: w.df ? 0x4000 : 0,
    ttl: w.ttl,
    protocol: w.protocol,
    checksumOk: true,
    src: ipToU32(w.src),
    dst: ipToU32(w.dst),
  });
}

describe.each(IMPLS)('[%s] wire format of what the engine writes', (impl) => {
  for (const mode of MODES) {
    for (const suite of ESP_SUITES) {
      for (const ah of [undefined, ...MAC_ALGS] as (MacAlg | undefined)[]) {
        it(`ENCAP ${mode} ${suite}${ah ? ` + AH ${ah}` : ''}: outer header, SKIP, AH, ESP, padding and ICV per §6`, () => {
          const seq = 0x0001_2345;
          const pair = endSaPair({
            suite,
            ah,
            mode,
            id: 121,
            src: ADDR.sgw0,
            dst: ADDR.sgw1,
            mkid: mode === 'skip' ? { dst: ADDR.smnHome } : undefined,
            seq,
          });
          const engine = engineWith(impl, [{ ...pair.out, ttl: 17 }]);
          opened.push(engine);
          for (const [size, df, tos] of [
            [20, true, 0xb8],
            [61, false, 0x03],
            [63, true, 0],
            [64, false, 0xfc],
          ] as const) {
            const inner = datagram(size, { df, tos });
            const r = runOne(engine, Op.ENCAP, inner, pair.out.id);
            expect([r.verdict, r.sa, r.nexthop]).toEqual([Verdict.FORWARD, pair.out.id, ipToU32(ADDR.sgw1)]);
            const p = r.packet;
            const sent = seq + 1 + [20, 61, 63, 64].indexOf(size);
            const skip = pair.out.skipHeader ?? new Uint8Array(0);
            const ahLength = ah ? (ah === 'gmac-aes128' ? 36 : 28) : 0;
            const pad = (4 - ((size + 2) % 4)) % 4;
            expectOuter(p, {
              tos,
              df,
              id: sent & 0xffff,
              ttl: 17,
              protocol: mode === 'skip' ? 57 : ah ? 51 : 50,
              src: ADDR.sgw0,
              dst: ADDR.sgw1,
              length: 20 + skip.length + ahLength + 16 + size + pad + 2 + 16,
            });
            expect(hex(p.subarray(20, 20 + skip.length))).toBe(hex(skip));
            const ahAt = 20 + skip.length;
            const espAt = ahAt + ahLength;
            if (ah) {
              expect([p[ahAt], p[ahAt + 1], u16(p, ahAt + 2), u32(p, ahAt + 4), u32(p, ahAt + 8)]).toEqual([
                50,
                ahLength / 4 - 2,
                0,
                pair.out.ah!.spi,
                sent,
              ]);
              if (ah === 'gmac-aes128') expect(hex(p.subarray(ahAt + 12, ahAt + 20))).toBe(be64(sent));
              const tag = oracleAhTag(p, {
                ahAt,
                skipLength: skip.length,
                alg: ah,
                key: pair.out.ah!.key,
                coveredEnd: p.length,
              });
              expect(hex(p.subarray(espAt - 16, espAt))).toBe(hex(tag));
            }
            expect([u32(p, espAt), u32(p, espAt + 4), hex(p.subarray(espAt + 8, espAt + 16))]).toEqual([
              pair.out.esp!.spi,
              sent,
              be64(sent),
            ]);
            const plain = oracleEspOpen(p.subarray(espAt), suite, pair.out.esp!.key);
            expect(hex(plain)).toBe(
              hex(Uint8Array.from([...inner, ...Array.from({ length: pad }, (_, i) => i + 1), pad, 4])),
            );
          }
        });
      }
    }
    for (const alg of MAC_ALGS) {
      for (const coverage of COVERAGES) {
        it(`WRAP ${mode} ${alg} ${coverage}: the next-hop layer per §6 and §7`, () => {
          const end = endSaPair({
            suite: 'aes128gcm',
            ah: 'hmac-sha256-128',
            mode: 'skip',
            id: 122,
            src: ADDR.smnCoa,
            dst: ADDR.sgw0,
            mkid: { src: ADDR.smnHome },
          });
          const hop = nexthopSaPair({
            alg,
            coverage,
            mode,
            id: 123,
            src: ADDR.smnCoa,
            dst: ADDR.sgw1,
            mkid: mode === 'skip' ? { src: ADDR.smnHome } : undefined,
            seq: 0xfffe,
          });
          const engine = engineWith(impl, [end.out, hop.out]);
          opened.push(engine);
          const sealed = runOne(engine, Op.ENCAP, datagram(99, { tos: 0x48, df: false }), end.out.id).packet;
          const r = runOne(engine, Op.WRAP, sealed, hop.out.id);
          expect([r.verdict, r.sa, r.nexthop]).toEqual([Verdict.FORWARD, hop.out.id, ipToU32(ADDR.sgw1)]);
          const p = r.packet;
          const skip = hop.out.skipHeader ?? new Uint8Array(0);
          const ahAt = 20 + skip.length;
          const ahLength = alg === 'gmac-aes128' ? 36 : 28;
          const d = ahAt + ahLength;
          expectOuter(p, {
            tos: 0x48,
            df: false,
            id: 0xffff,
            ttl: 64,
            protocol: mode === 'skip' ? 57 : 51,
            src: ADDR.smnCoa,
            dst: ADDR.sgw1,
            length: d + sealed.length,
          });
          expect(hex(p.subarray(20, ahAt))).toBe(hex(skip));
          expect([p[ahAt], p[ahAt + 1], u16(p, ahAt + 2), u32(p, ahAt + 4), u32(p, ahAt + 8)]).toEqual([
            4,
            ahLength / 4 - 2,
            0,
            hop.out.ah!.spi,
            0xffff,
          ]);
          if (alg === 'gmac-aes128') expect(hex(p.subarray(ahAt + 12, ahAt + 20))).toBe(be64(0xffff));
          expect(hex(p.subarray(d))).toBe(hex(sealed));
          // headers: the protected datagram's IPv4 + SKIP + end AH (28) + ESP's first 16 bytes.
          const coveredEnd = coverage === 'full' ? p.length : d + 20 + end.out.skipHeader!.length + 28 + 16;
          expect(hex(p.subarray(d - 16, d))).toBe(
            hex(oracleAhTag(p, { ahAt, skipLength: skip.length, alg, key: hop.out.ah!.key, coveredEnd })),
          );
        });
      }
    }
  }

  it("a relay writes its own layer in front of the datagram, with its SA's addresses and sequence number", () => {
    const hopIn = nexthopSaPair({
      alg: 'gmac-aes128',
      mode: 'skip',
      id: 124,
      src: ADDR.smnCoa,
      dst: ADDR.sgw1,
      mkid: { src: ADDR.smnHome },
    });
    const hopOut = nexthopSaPair({
      alg: 'hmac-sha256-128',
      coverage: 'headers',
      mode: 'spi',
      id: 125,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
      seq: 41,
    });
    // The layer protects an End-End ESP packet for SGW0 (only SKIP/AH/ESP is relayed): headers coverage takes
    // its IPv4 header and the ESP's first 16 bytes.
    const end = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 126, src: ADDR.smnCoa, dst: ADDR.sgw0 });
    const smn = engineWith(impl, [hopIn.out, end.out]);
    const sgw1 = engineWith(impl, [hopIn.in, hopOut.out], {
      local: [ADDR.sgw1],
      routes: [{ prefix: '198.18.0.0/24', sa: hopOut.out.id }],
    });
    opened.push(smn, sgw1);
    const espToSgw0 = runOne(smn, Op.ENCAP, datagram(200, { tos: 0x10 }), end.out.id).packet;
    const wrapped = runOne(smn, Op.WRAP, espToSgw0, hopIn.out.id).packet;
    const r = runOne(sgw1, Op.INBOUND, wrapped);
    expect([r.verdict, r.sa, r.nexthop]).toEqual([Verdict.FORWARD, hopIn.in.id, ipToU32(ADDR.sgw0)]);
    const p = r.packet;
    const length = 20 + 28 + espToSgw0.length;
    expectOuter(p, { tos: 0x10, df: true, id: 42, ttl: 64, protocol: 51, src: ADDR.sgw1, dst: ADDR.sgw0, length });
    expect([p[20], u32(p, 24), u32(p, 28)]).toEqual([4, hopOut.out.ah!.spi, 42]);
    expect(hex(p.subarray(48))).toBe(hex(espToSgw0));
    const tag = oracleAhTag(p, {
      ahAt: 20,
      skipLength: 0,
      alg: 'hmac-sha256-128',
      key: hopOut.out.ah!.key,
      coveredEnd: 48 + 20 + 16,
    });
    expect(hex(p.subarray(32, 48))).toBe(hex(tag));
  });

  it('IPIP_ENCAP: TOS, DF and identification copied, TTL 64, protocol 4', () => {
    const engine = engineWith(impl, []);
    opened.push(engine);
    for (const df of [true, false]) {
      const inner = datagram(33, { src: ADDR.ch0, dst: ADDR.smnHome, tos: 0x2c, df, id: 0xabcd });
      const r = runOne(engine, Op.IPIP_ENCAP, inner, ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa));
      expectOuter(r.packet, {
        tos: 0x2c,
        df,
        id: 0xabcd,
        ttl: 64,
        protocol: 4,
        src: ADDR.ha,
        dst: ADDR.smnCoa,
        length: 53,
      });
      expect(hex(r.packet.subarray(20))).toBe(hex(inner));
    }
  });
});
