// Outer IPv4 options under an AH (RFC 4302 App. A, docs/engine.md §6): immutable options are authenticated,
// mutable ones are not, a malformed option zeroes the rest. The ICV here is computed by the test itself,
// from the RFC's rules, with node:crypto — independent of both engines.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Verdict, reasonName, type Engine, type MacAlg } from '../../src/engine/index.js';
import { AH_BYTES } from '../../src/wire/ah.js';
import { setIpv4Checksum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  oracleAhTag,
  runOne,
  type SaPair,
} from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** 20 option bytes: Router Alert (kept), NOP (kept), Timestamp (zeroed), Record Route (zeroed). */
const OPTIONS = [0x94, 0x04, 0x00, 0x00, 0x01, 0x44, 0x0c, 0x05, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 0x07, 0x03, 0x04];
const MUTABLE = { from: 20 + 5, to: 20 + 20 };

/** Re-signs the AH of a packet whose outer header now carries OPTIONS, per RFC 4302 §3.3.3 and App. A. */
function resign(p: Uint8Array, c: Case, mutable = MUTABLE): void {
  const skipLength = c.pair.out.skipHeader?.length ?? 0;
  const ahAt = 40 + skipLength;
  // `headers` coverage of a plain UDP datagram covers all of it, as `full` does (docs/engine.md §7).
  const zero: [number, number][] = [[mutable.from, mutable.to]];
  const tag = oracleAhTag(p, { ahAt, skipLength, alg: c.alg, key: c.pair.out.ah!.key, coveredEnd: p.length, zero });
  p.set(tag, ahAt + AH_BYTES[c.alg] - 16);
  setIpv4Checksum(p, 0, 40);
}

/** The packet with OPTIONS inserted into its outer header (IHL 10), re-signed. */
function withOptions(sealed: Uint8Array, c: Case): Uint8Array {
  const p = new Uint8Array(sealed.length + OPTIONS.length);
  p.set(sealed.subarray(0, 20));
  p[0] = 0x4a;
  const total = p.length;
  p[2] = total >> 8;
  p[3] = total & 0xff;
  p.set(OPTIONS, 20);
  p.set(sealed.subarray(20), 40);
  resign(p, c);
  return p;
}

interface Case {
  name: string;
  pair: SaPair;
  rxSas: SaPair['in'][];
  local: string[];
  alg: MacAlg;
  make(): Uint8Array;
  /** The outcome of a packet that verifies: delivered, or (a plain datagram under a next-hop layer) punted to the policy. */
  accepted: 'deliver' | 'nexthop_plain';
}

const endPair = endSaPair({
  suite: 'aes128gcm',
  ah: 'hmac-sha256-128',
  mode: 'spi',
  id: 111,
  src: ADDR.sgw0,
  dst: ADDR.sgw1,
});
const hopPair = nexthopSaPair({
  alg: 'gmac-aes128',
  coverage: 'headers',
  mode: 'skip',
  id: 112,
  src: ADDR.sgw1,
  dst: ADDR.sgw0,
});

const CASES: Case[] = [
  {
    name: 'end AH HMAC, SPI mode',
    pair: endPair,
    rxSas: [endPair.in],
    local: [],
    alg: 'hmac-sha256-128',
    make: () => datagram(77),
    accepted: 'deliver',
  },
  {
    name: 'next-hop AH GMAC behind SKIP',
    pair: hopPair,
    rxSas: [hopPair.in],
    local: [ADDR.sgw0],
    alg: 'gmac-aes128',
    make: () => datagram(77, { dst: ADDR.sgw0 }),
    accepted: 'nexthop_plain',
  },
];

describe.each(IMPLS)('[%s] outer IPv4 options under AH', (impl) => {
  describe.each(CASES)('$name', (c) => {
    const sealed = () => {
      const tx = engineWith('ts', [c.pair.out]);
      const p = runOne(tx, c.pair.out.role === 'end' ? Op.ENCAP : Op.WRAP, c.make(), c.pair.out.id).packet;
      tx.close();
      return p;
    };
    const inbound = (packet: Uint8Array) => {
      const rx = engineWith(impl, c.rxSas, { local: c.local });
      opened.push(rx);
      const r = runOne(rx, Op.INBOUND, packet);
      return { outcome: r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason], packet: r.packet };
    };

    it('a correctly signed packet with options is accepted (delivered, or punted to the policy when plain)', () => {
      const r = inbound(withOptions(sealed(), c));
      expect(r.outcome).toBe(c.accepted);
      expect(hex(r.packet)).toBe(hex(c.make()));
    });

    it('mutable option data (Timestamp, Record Route) may change in transit', () => {
      for (let at = MUTABLE.from; at < MUTABLE.to; at++) {
        const p = withOptions(sealed(), c);
        p[at] ^= 0x21;
        setIpv4Checksum(p, 0, 40);
        // A changed length byte can make the option run past the header: then the rest is zeroed, same input.
        expect(inbound(p).outcome, `option byte ${at - 20}`).toBe(c.accepted);
      }
    });

    it('immutable options (Router Alert, NOP) are authenticated', () => {
      for (const at of [20, 21, 22, 23, 24]) {
        const p = withOptions(sealed(), c);
        p[at] ^= at === 20 || at === 24 ? 0x80 : 0x01; // 0x94 → 0x14 (unknown type), NOP → 0x81
        setIpv4Checksum(p, 0, 40);
        expect(inbound(p).outcome, `option byte ${at - 20}`).toBe('auth');
      }
    });

    it('a malformed option length zeroes every option after it', () => {
      const p = withOptions(sealed(), c);
      p[21] = 0x40; // Router Alert claims 64 bytes: runs past the header
      resign(p, c, { from: 20, to: 40 });
      expect(inbound(p).outcome).toBe(c.accepted);
      const q = withOptions(sealed(), c);
      q[21] = 0x01; // length 1 < 2: malformed too
      resign(q, c, { from: 20, to: 40 });
      expect(inbound(q).outcome).toBe(c.accepted);
    });
  });
});
