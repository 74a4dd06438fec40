// Hostile input: mutated and random registration messages never crash the codecs or the HA,
// every rejection carries a reason, and nothing but the genuine request creates a binding.
import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  MIP_PORT,
  ntpFromUnixMs,
  RequestFlag,
} from '../../src/wire/mobileip.js';
import { buildUdpDatagram } from '../../src/wire/udp.js';
import { buildNetwork, CARE_OF, HA_ADDRESS, HOME_ADDRESS, MN_AUTH, moveToSite1 } from './topology.js';

/** Deterministic generator (xorshift32) so a failure can be replayed. */
function generator(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function mutate(bytes: Uint8Array, next: (n: number) => number): Uint8Array {
  const out = bytes.slice();
  switch (next(4)) {
    case 0:
      out[next(out.length)] ^= 1 << next(8);
      return out;
    case 1:
      return out.subarray(0, next(out.length));
    case 2:
      out[next(out.length)] = next(256);
      return out;
    default: {
      const junk = new Uint8Array(next(64));
      for (let i = 0; i < junk.length; i++) junk[i] = next(256);
      return new Uint8Array([...out.subarray(0, next(out.length + 1)), ...junk]);
    }
  }
}

const REASONS = new Set([
  'truncated',
  'unknown_type',
  'bad_extension_length',
  'unknown_extension',
  'duplicate_mn_ha_auth',
]);

describe('hostile registration input', () => {
  const request = encodeRequest(
    {
      flags: RequestFlag.D,
      lifetime: 300,
      homeAddress: ipToU32(HOME_ADDRESS),
      homeAgent: ipToU32(HA_ADDRESS),
      careOf: ipToU32(CARE_OF),
      identification: 5n,
      extensions: [{ type: 150, data: new Uint8Array(3) }],
    },
    MN_AUTH,
  );
  const reply = encodeReply({ code: 0, lifetime: 300, homeAddress: 1, homeAgent: 2, identification: 5n }, MN_AUTH);

  it('codecs: 20 000 mutations, no throw, a known reason and a detail for every rejection', () => {
    const next = generator(0x5eed);
    for (let i = 0; i < 10_000; i++) {
      for (const [bytes, decode] of [
        [request, decodeRequest],
        [reply, decodeReply],
      ] as const) {
        const result = decode(mutate(bytes, next));
        if (!result.ok) {
          expect(REASONS.has(result.reason)).toBe(true);
          expect(result.detail.length).toBeGreaterThan(0);
        }
      }
    }
  });

  it('home agent: 3 000 mutated requests over UDP 434 bind nothing, then the genuine one binds', () => {
    const w = buildNetwork();
    moveToSite1(w.mn);
    const next = generator(42);
    const genuine = encodeRequest(
      {
        flags: RequestFlag.D,
        lifetime: 300,
        homeAddress: ipToU32(HOME_ADDRESS),
        homeAgent: ipToU32(HA_ADDRESS),
        careOf: ipToU32(CARE_OF),
        identification: ntpFromUnixMs(w.net.clock.now() + 60_000),
      },
      MN_AUTH,
    );
    // Identification 60 s ahead: the genuine request itself is still refused (133) until the clock gets there.
    for (let i = 0; i < 3000; i++) {
      const payload = mutate(genuine, next);
      w.mn.send(
        buildUdpDatagram({ src: ipToU32(CARE_OF), dst: ipToU32(HA_ADDRESS), srcPort: 434, dstPort: MIP_PORT }, payload),
      );
    }
    w.net.runFor(1000);
    expect(w.ha.bindings()).toEqual([]);
    w.net.runFor(59_000);
    w.mn.send(
      buildUdpDatagram({ src: ipToU32(CARE_OF), dst: ipToU32(HA_ADDRESS), srcPort: 434, dstPort: MIP_PORT }, genuine),
    );
    w.net.runFor(1000);
    expect(w.ha.bindings()).toMatchObject([{ careOf: CARE_OF }]);
    const replies = w.ha.counters().replies;
    expect(replies[0]).toBe(1);
    // Everything else was answered 131/133/134 or dropped with a counted reason.
    const answered = Object.values(replies).reduce((a, b) => a + b, 0) - 1;
    const dropped = Object.values(w.ha.counters().drops).reduce((a, b) => a + b, 0);
    expect(answered + dropped).toBe(3000);
  });
});
