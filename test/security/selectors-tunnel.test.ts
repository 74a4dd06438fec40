// An SMN's End-End SA carries its home agent's RFC 2003 tunnel (docs/engine.md §4 selectors.tunnel): the HA's
// IP-in-IP datagram from the HA to the care-of address, around a datagram to the home address, passes the selectors
// whole (the SMN's interface loop peels it for the kernel, §9 kernelTunnel); exactly that and nothing more: another
// outer source or destination, an inner datagram outside the selectors, a fragment, an inner TTL of 0 or a truncated
// inner datagram are selector misses, and bare IP-in-IP from the wire (no End-End layer around it) is never delivered.
// Both engines give the same verdicts, reasons and bytes; a malformed tunnel is refused alike.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { COUNTER_SLOTS, Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import { ADDR, IMPLS, MODES, datagram, endSaPair, engineWith, hex, runOne } from '../engine/fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

const { ha: HA, smnCoa: COA, smnHome: HOME, ch0: CH, sgw0: SGW0 } = ADDR;
const SELECTORS = { src: ['0.0.0.0/0'], dst: [`${HOME}/32`], tunnel: { src: HA, dst: COA } };

/** IP-in-IP around `inner`, outer header fields overridable (a fragment, a lying total length). */
function ipip(inner: Uint8Array, o: { src?: string; dst?: string; flagsFragment?: number } = {}): Uint8Array {
  return buildIpv4(
    {
      src: ipToU32(o.src ?? HA),
      dst: ipToU32(o.dst ?? COA),
      protocol: IpProto.IPIP,
      ttl: 64,
      identification: 9,
      flagsFragment: o.flagsFragment ?? 0,
    },
    inner,
  );
}

const toHome = datagram(120, { src: CH, dst: HOME });

describe.each(MODES)('an End-End SA with selectors.tunnel (%s mode), native and TS', (mode) => {
  function run(rxSelectors: SaDesc['selectors'], datagrams: readonly Uint8Array[]) {
    const pair = endSaPair({ suite: 'aes128gcm', mode, id: 71, src: SGW0, dst: COA });
    const results = IMPLS.map((impl) => {
      const tx = engineWith(impl, [pair.out]);
      const rx = engineWith(impl, [{ ...pair.in, selectors: rxSelectors, selectorMiss: 'punt' }]);
      opened.push(tx, rx);
      const r = datagrams.map((d) => runOne(rx, Op.INBOUND, runOne(tx, Op.ENCAP, d, pair.out.id).packet));
      return { r, counters: rx.counters().slice(0, COUNTER_SLOTS), delivered: rx.saStats(pair.in.id)?.packets };
    });
    const [ts, native] = results;
    expect(ts.r.map((x) => [x.verdict, x.reason, x.sa, hex(x.packet)])).toEqual(
      native.r.map((x) => [x.verdict, x.reason, x.sa, hex(x.packet)]),
    );
    expect(ts.counters).toEqual(native.counters);
    expect(ts.delivered).toBe(native.delivered);
    return { results: native.r, sa: pair.in.id, delivered: native.delivered };
  }

  it("passes exactly the HA's tunnel to the care-of address around a datagram inside the selectors, whole", () => {
    const truncatedInner = toHome.slice();
    truncatedInner[3] += 8; // the inner total length runs past the outer datagram
    const innerTtl0 = datagram(120, { src: CH, dst: HOME, ttl: 0 });
    const cases: [string, Uint8Array, boolean][] = [
      ["the HA's tunnel to the care-of address, to the home address", ipip(toHome), true],
      ['a datagram to the home address itself', toHome, true],
      ['nested: IP-in-IP from the HA around IP-in-IP to the home address', ipip(ipip(toHome, { dst: HOME })), true],
      ['the tunnel from another source', ipip(toHome, { src: CH }), false],
      ['the tunnel from the care-of address itself', ipip(toHome, { src: COA }), false],
      ['the tunnel to another address', ipip(toHome, { dst: '10.1.0.101' }), false],
      ['the tunnel around a datagram to another address', ipip(datagram(90, { src: CH, dst: COA })), false],
      ['an outer fragment', ipip(toHome, { flagsFragment: 0x2000 }), false],
      ['an inner TTL of 0', ipip(innerTtl0), false],
      ['a truncated inner datagram', ipip(truncatedInner), false],
      ['a plain datagram to the care-of address', datagram(90, { src: HA, dst: COA }), false],
    ];
    const { results, sa } = run(
      SELECTORS,
      cases.map((c) => c[1]),
    );
    for (const [i, [what, input, pass]] of cases.entries()) {
      const r = results[i];
      if (pass) expect([what, r.verdict, r.sa, hex(r.packet)]).toEqual([what, Verdict.DELIVER, sa, hex(input)]);
      else
        expect([what, r.verdict, r.reason, r.sa, hex(r.packet)]).toEqual([
          what,
          Verdict.PUNT,
          Reason.selector,
          sa,
          hex(input),
        ]);
    }
  });

  it('without selectors.tunnel the same tunnel is a selector miss (the rule is what lets it through)', () => {
    const { results, delivered } = run({ src: SELECTORS.src, dst: SELECTORS.dst }, [ipip(toHome)]);
    expect([results[0].verdict, results[0].reason]).toEqual([Verdict.PUNT, Reason.selector]);
    expect(delivered).toBe(0n);
  });
});

describe('bare IP-in-IP proves nothing, whatever the SA tables hold', () => {
  it("the HA's tunnel from the wire, not inside an End-End layer, is peeled and punted not_ipsec, never delivered", () => {
    for (const impl of IMPLS) {
      const pair = endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 72, src: SGW0, dst: COA });
      const rx = engineWith(impl, [{ ...pair.in, selectors: SELECTORS, selectorMiss: 'punt' }], { local: [COA, HOME] });
      opened.push(rx);
      const r = runOne(rx, Op.INBOUND, ipip(toHome));
      expect([impl, r.verdict, r.reason, r.sa, hex(r.packet)]).toEqual([
        impl,
        Verdict.PUNT,
        Reason.not_ipsec,
        0,
        hex(toHome),
      ]);
    }
  });
});

describe('selectors.tunnel is checked', () => {
  it('refuses a malformed tunnel, or one on a next-hop SA, with the same message on both paths', () => {
    const pair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 73, src: SGW0, dst: COA });
    const cases: [unknown, RegExp][] = [
      ['x', /selectors\.tunnel must be \{ src: 'a\.b\.c\.d', dst: 'a\.b\.c\.d' \}/],
      [[HA, COA], /selectors\.tunnel must be/],
      [{ src: HA }, /selectors\.tunnel\.dst must be a dotted IPv4 address, got undefined/],
      [{ src: '10.0.0.256', dst: COA }, /selectors\.tunnel\.src must be a dotted IPv4 address/],
      [{ src: '0.0.0.0', dst: COA }, /selectors\.tunnel\.src must not be 0\.0\.0\.0/],
    ];
    for (const impl of IMPLS) {
      const e = engineWith(impl, []);
      opened.push(e);
      for (const [tunnel, message] of cases) {
        const desc = { ...pair.in, selectors: { ...SELECTORS, tunnel } } as SaDesc;
        expect(() => e.installSa(desc), `${impl} ${JSON.stringify(tunnel)}`).toThrow(message);
      }
      e.installSa({ ...pair.in, selectors: SELECTORS });
    }
  });
});
