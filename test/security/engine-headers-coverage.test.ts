// Issue 10 hole 9: "Next-hop `headers` coverage does not protect a plain datagram". `headers` covers the
// protected datagram's headers up to and including the first 16 bytes of an ESP header (SPI, sequence, IV);
// when the walk ends anywhere else (a plain datagram, IP-in-IP of one, AH-only) the layer covers the whole
// datagram, on both engines and in both directions (docs/engine.md §7).
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, reasonName, type Engine, type MacAlg } from '../../src/engine/index.js';
import { AH_BYTES } from '../../src/wire/ah.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import {
  ADDR,
  MAC_ALGS,
  MODES,
  bytes,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  oracleAhTag,
  runOne,
} from '../engine/fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** IPv4 / AH (next header UDP, 24 bytes) / UDP: a datagram protected by AH only. */
function ahOnly(): Uint8Array {
  const ah = new Uint8Array(24);
  ah.set([IpProto.UDP, 24 / 4 - 2, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 7]);
  ah.set(bytes(12, 5), 12);
  const udp = datagram(60).subarray(20);
  return buildIpv4(
    { src: ipToU32(ADDR.smnCoa), dst: ipToU32(ADDR.ch0), protocol: IpProto.AH },
    Uint8Array.from([...ah, ...udp]),
  );
}

function outcome(r: { verdict: number; reason: number }): string {
  return r.verdict === Verdict.FORWARD ? 'forward' : r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason];
}

describe.each(['native', 'ts'] as const)('[%s] engine: next-hop headers coverage', (impl) => {
  for (const mode of MODES) {
    for (const alg of MAC_ALGS) {
      const hop = nexthopSaPair({ alg, coverage: 'headers', mode, id: 321, src: ADDR.smnCoa, dst: ADDR.sgw1 });
      const end = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 322, src: ADDR.smnCoa, dst: ADDR.sgw0 });
      const layer = 20 + (hop.out.skipHeader?.length ?? 0) + AH_BYTES[alg as MacAlg];
      const cast = () => {
        const smn = engineWith(impl, [hop.out, end.out]);
        const sgw1 = engineWith(impl, [hop.in], { local: [ADDR.sgw1], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] });
        opened.push(smn, sgw1);
        return { smn, sgw1, wrap: (d: Uint8Array) => runOne(smn, Op.WRAP, d, hop.out.id).packet };
      };
      const skipLength = hop.out.skipHeader?.length ?? 0;
      const tagOf = (p: Uint8Array, coveredEnd: number) =>
        hex(oracleAhTag(p, { ahAt: layer - AH_BYTES[alg], skipLength, alg, key: hop.out.ah!.key, coveredEnd }));
      const tagIn = (p: Uint8Array) => hex(p.subarray(layer - 16, layer));

      it(`hole 9 (${mode} ${alg}): an on-path rewrite of the UDP header or payload of a plain datagram is auth-dropped`, () => {
        const { sgw1, wrap } = cast();
        const plain = datagram(200, { dst: ADDR.ch0 });
        const ipipPlain = buildIpv4(
          { src: ipToU32(ADDR.smnCoa), dst: ipToU32(ADDR.ch0), protocol: IpProto.IPIP },
          plain,
        );
        for (const [what, d, rewrite] of [
          ['plain: UDP source port', plain, 20],
          ['plain: UDP payload', plain, 20 + 8 + 100],
          ['IP-in-IP of a plain datagram: inner UDP payload', ipipPlain, 40 + 8 + 100],
          ['AH-only: UDP payload behind the AH', ahOnly(), 20 + 24 + 8 + 10],
        ] as const) {
          const p = wrap(d);
          const [sent, whole] = [tagIn(p), tagOf(p, p.length)];
          p[layer + rewrite] ^= 0x40;
          expect(outcome(runOne(sgw1, Op.INBOUND, p)), what).toBe('auth');
          expect(sent, `${what}: the sender covers the whole datagram`).toBe(whole);
        }
        expect(sgw1.counters()[Reason.auth]).toBe(4n);
      });

      it(`hole 9 (${mode} ${alg}): a datagram ending at ESP still relays at headers cost (IPv4 header + 16 ESP bytes covered)`, () => {
        const { smn, sgw1, wrap } = cast();
        const esp = runOne(smn, Op.ENCAP, datagram(300), end.out.id).packet;
        const covered = layer + 20 + 16;
        const p = wrap(esp);
        expect(tagIn(p), 'the sender covers IPv4 + SPI, sequence, IV').toBe(tagOf(p, covered));
        const inCiphertext = Uint8Array.from(p);
        inCiphertext[covered] ^= 0x40; // not covered: the End-End layer's own tag catches it at SGW0
        const r = runOne(sgw1, Op.INBOUND, inCiphertext);
        expect([outcome(r), r.nexthop]).toEqual(['forward', ipToU32(ADDR.sgw0)]);
        const inIv = wrap(esp); // a fresh sequence number: the one above is used up
        inIv[covered - 1] ^= 0x40;
        expect(outcome(runOne(sgw1, Op.INBOUND, inIv))).toBe('auth');
      });
    }
  }
});
