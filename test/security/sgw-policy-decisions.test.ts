// Issue 10 holes 3, 4 and 8 as pure policy decisions on the Figure 6 map (src/policy/sgw.ts): the
// cases the memory-network tests in sgw-policy.test.ts cannot stage, each named after its hole.
import { beforeAll, describe, expect, it } from 'vitest';
import type { SkipName } from '../../src/keys/names.js';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import {
  careOfShadow,
  decide,
  type IpPair,
  type PacketView,
  type SgwPlace,
  type SkipLayer,
} from '../../src/policy/sgw.js';
import type { TopologyMap } from '../../src/topology/map.js';
import { ipToU32 } from '../../src/wire/addr.js';

const OUT = '198.18.7.100';
const smn: SkipName = { nsid: 1, address: ipToU32(F6.home) };
const sgw1: SkipName = { nsid: 0, address: ipToU32(F6.sgw1) };

let map: TopologyMap;
beforeAll(async () => {
  map = await figure6Map();
});

const at = (name: string, careOfs: [string, string][] = []): SgwPlace => ({
  map,
  self: map.sgw(name)!,
  careOfs: new Map(careOfs.map(([c, h]) => [ipToU32(c), ipToU32(h)])),
});
const pair = (src: string, dst: string): IpPair => ({ src, dst });
const verifiedHop = (src: string, dst: string, skipSrc: SkipName): SkipLayer => ({
  kind: 'nexthop',
  ip: pair(src, dst),
  skipSrc,
  auth: 'verified',
});
const underHop = (layer: SkipLayer, inner: IpPair, ipInIp?: IpPair): PacketView => ({
  arrivedOn: 'outside',
  layers: [layer],
  inner,
  ipInIp,
});
/** The HA's tunnel leaving the home network: IP-in-IP to `careOf`, carrying a datagram for `home`. */
const haTunnel = (careOf: string, home: string = F6.home): PacketView => ({
  arrivedOn: 'inside',
  layers: [],
  inner: pair(F6.ha, careOf),
  ipInIp: pair(F6.ch0, home),
});
const SPOOFED = { action: 'drop', counter: 'spoofed_source' };
const UNPROTECTED = { action: 'drop', counter: 'home_unprotected' };

describe('SGW policy decisions for issue 10', () => {
  it("hole 3: a peer SGW's Next-hop AH around a datagram from a host of this SGW, or from its SMN, is refused", () => {
    const hop = verifiedHop(F6.sgw1, F6.sgw0, sgw1);
    expect(decide(at('sgw0'), underHop(hop, pair(F6.ch0, F6.ha)))).toMatchObject(SPOOFED);
    const conflict = { action: 'end-end-conflict', icmp: { code: 5, to: F6.home } };
    expect(decide(at('sgw0'), underHop(hop, pair(F6.home, F6.ch0)))).toMatchObject(conflict);
    expect(decide(at('sgw0'), underHop(hop, pair(F6.ch1, F6.ch0)))).toMatchObject({ action: 'decap' });
  });

  it("hole 3: an SMN's Next-hop AH carries its home and care-of addresses only, and never IP-in-IP", () => {
    const hop = verifiedHop(F6.coa1, F6.sgw1, smn);
    expect(decide(at('sgw1'), underHop(hop, pair(F6.ch2, F6.ch1)))).toMatchObject(SPOOFED);
    expect(decide(at('sgw1'), underHop(hop, pair(F6.home, F6.ch1)))).toMatchObject({ action: 'decap' });
    expect(decide(at('sgw1'), underHop(hop, pair(F6.coa1, F6.ch1)))).toMatchObject({ action: 'decap' });
    const tunnel = underHop(hop, pair(F6.coa1, F6.sgw1), pair(F6.home, F6.ch1));
    expect(decide(at('sgw1'), tunnel)).toMatchObject({ action: 'drop', counter: 'nexthop_ipip' });
  });

  it("hole 4: a care-of address may not shadow this SGW's network, an SGW, the HA, a home address or a host the map names", () => {
    const sgw0 = at('sgw0');
    const shadowed = ['10.0.5.5', F6.sgw1, '10.1.0.1', F6.ha, F6.home, F6.ch1, F6.chx];
    for (const address of shadowed) expect(careOfShadow(sgw0, address)).toBeDefined();
    for (const address of [F6.coa1, F6.coa2, OUT]) expect(careOfShadow(sgw0, address)).toBeUndefined();
  });

  it("hole 8: the HA's tunnel leaves only End-End to the care-of address bound to that same home address", () => {
    expect(decide(at('sgw0'), haTunnel(OUT))).toMatchObject(UNPROTECTED);
    expect(decide(at('sgw0', [[OUT, '10.0.0.101']]), haTunnel(OUT))).toMatchObject(UNPROTECTED);
    const toSmn = { action: 'encap', end: { kind: 'smn', home: F6.home, careOf: OUT } };
    expect(decide(at('sgw0', [[OUT, F6.home]]), haTunnel(OUT))).toMatchObject(toSmn);
    expect(decide(at('sgw0'), haTunnel(F6.coa1))).toMatchObject(UNPROTECTED);
    // A tunnel for a host that is no home address of this SGW's SMNs is not this rule's business.
    expect(decide(at('sgw0'), haTunnel(F6.coa1, F6.ch0))).toMatchObject({ action: 'encap', end: { kind: 'sgw' } });
  });
});
