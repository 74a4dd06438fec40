import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildTopology, type Crossing, type NetworkSpec, type Sgw, type TopologyMap } from '../../src/topology/map.js';
import { figure1Map, figure1Spec } from '../../src/lab/topologies.js';
import { figure6Map } from '../../src/lab/figure6-world.js';

const names = (sgws: (Sgw | undefined)[]) => sgws.map((s) => s?.name);
const crossings = (path: Crossing[]) => path.map((c) => `${c.sgw.name} ${c.direction}`);

describe('figure 1 nesting', () => {
  const map: TopologyMap = figure1Map();
  const sgw = (name: string) => map.sgw(name)!;

  it('finds the innermost protecting SGW by longest prefix', () => {
    expect(map.protectingSgw('10.0.1.5')?.name).toBe('sgw0');
    expect(map.protectingSgw('10.0.2.5')?.name).toBe('sgw1');
    expect(map.protectingSgw(ipToU32('10.1.1.9'))?.name).toBe('sgw3');
    expect(map.protectingSgw('198.18.9.9')).toBeUndefined();
    expect(map.isProtected('10.2.0.9')).toBe(true);
    expect(map.isProtected('192.0.2.1')).toBe(false);
  });

  it('knows Border-SGWs and nesting chains', () => {
    expect(names(map.borderSgws())).toEqual(['sgw1', 'sgw2', 'sgw4']);
    expect(names(map.chain(sgw('sgw0')))).toEqual(['sgw0', 'sgw1']);
    expect(map.isWithin(sgw('sgw5'), sgw('sgw4'))).toBe(true);
    expect(map.isWithin(sgw('sgw4'), sgw('sgw5'))).toBe(false);
  });

  it('finds SGWs by their addresses', () => {
    expect(map.sgwByAddress('10.0.0.2')?.name).toBe('sgw0');
    expect(map.sgwByAddress(ipToU32('198.18.4.1'))?.name).toBe('sgw4');
    expect(map.sgwByAddress('10.0.0.3')).toBeUndefined();
  });

  it('crosses innermost to border on the way out, then border to innermost', () => {
    expect(crossings(map.path('10.0.1.100', '10.1.1.10'))).toEqual(['sgw0 out', 'sgw1 out', 'sgw2 in', 'sgw3 in']);
    expect(crossings(map.path('10.1.1.10', '10.0.1.100'))).toEqual(['sgw3 out', 'sgw2 out', 'sgw1 in', 'sgw0 in']);
    expect(crossings(map.path('10.2.0.7', '10.0.2.7'))).toEqual(['sgw4 out', 'sgw1 in']);
  });

  it('does not cross SGWs that enclose both ends', () => {
    expect(crossings(map.path('10.0.1.100', '10.0.2.7'))).toEqual(['sgw0 out']);
    expect(crossings(map.path('10.0.2.7', '10.0.1.100'))).toEqual(['sgw0 in']);
    expect(map.path('10.0.1.5', '10.0.1.6')).toEqual([]);
  });

  it('handles outside ends', () => {
    expect(crossings(map.path('198.18.9.9', '10.2.1.5'))).toEqual(['sgw4 in', 'sgw5 in']);
    expect(crossings(map.path('10.1.1.5', '198.18.9.9'))).toEqual(['sgw3 out', 'sgw2 out']);
    expect(map.path('198.18.9.9', '198.18.9.8')).toEqual([]);
  });

  it('gives the next SGW from any SGW toward an address', () => {
    const dst = '10.1.1.10';
    expect(map.nextHopSgw(sgw('sgw0'), dst)?.name).toBe('sgw1');
    expect(map.nextHopSgw(sgw('sgw1'), dst)?.name).toBe('sgw2');
    expect(map.nextHopSgw(sgw('sgw2'), dst)?.name).toBe('sgw3');
    expect(map.nextHopSgw(sgw('sgw3'), dst)).toBeUndefined();
    expect(map.nextHopSgw(sgw('sgw1'), '10.0.1.5')?.name).toBe('sgw0');
    expect(map.nextHopSgw(sgw('sgw3'), '198.18.9.9')?.name).toBe('sgw2');
    expect(map.nextHopSgw(sgw('sgw2'), '198.18.9.9')).toBeUndefined();
  });

  it('gives the Next-hop peer for a datagram addressed to an SGW', () => {
    expect(map.nextHopPeer(sgw('sgw1'), '198.18.2.1')?.name).toBe('sgw2');
    expect(map.nextHopPeer(sgw('sgw2'), '10.0.0.2')?.name).toBe('sgw1'); // sgw0 sits behind sgw1
    expect(map.nextHopPeer(sgw('sgw1'), '10.0.0.2')?.name).toBe('sgw0');
    expect(map.nextHopPeer(sgw('sgw1'), '198.18.1.1')).toBeUndefined();
    expect(map.nextHopPeer(sgw('sgw1'), '198.18.9.9')).toBeUndefined();
  });

  it('finds the HA for a home address', () => {
    expect(map.homeAgentFor('10.0.1.100')?.name).toBe('ha');
    expect(map.homeAgentFor('10.0.1.101')).toBeUndefined();
    expect(map.homeAgent('ha')?.sgw.name).toBe('sgw0');
  });
});

describe('VPN-routability', () => {
  it('marks addresses behind a site that is not VPN-routable, and keeps its SGW out of the Border-SGWs', () => {
    const spec: NetworkSpec = {
      ...figure1Spec,
      sites: figure1Spec.sites.map((s) => (s.name === 'other2' ? { ...s, vpnRoutable: false } : s)),
    };
    const built = buildTopology(spec);
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.map.isVpnRoutable('10.2.1.9')).toBe(false);
    expect(built.map.isProtected('10.2.1.9')).toBe(true);
    expect(built.map.isVpnRoutable('10.1.1.9')).toBe(true);
    expect(built.map.isVpnRoutable('198.18.9.9')).toBe(false);
    expect(names(built.map.borderSgws())).toEqual(['sgw1', 'sgw2']);
  });
});

describe('figure 6 example map', () => {
  it('has the three sites behind their Border-SGWs', async () => {
    const map = await figure6Map();
    expect(names(map.borderSgws())).toEqual(['sgw0', 'sgw1', 'sgw2']);
    expect(map.protectingSgw('10.0.0.100')?.name).toBe('sgw0');
    expect(map.homeAgentFor('10.0.0.100')?.address).toBe('10.0.0.2');
    expect(crossings(map.path('10.1.0.10', '10.2.0.10'))).toEqual(['sgw1 out', 'sgw2 in']);
    expect(map.host('chx')?.address).toBe('198.18.9.10');
  });
});

describe('spec validation', () => {
  const issues = (patch: (s: NetworkSpec) => NetworkSpec) => {
    const built = buildTopology(patch(structuredClone(figure1Spec)));
    return built.ok ? [] : built.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('accepts figure 1', () => {
    expect(issues((s) => s)).toEqual([]);
  });

  it('refuses a nested SGW whose outside address is not in its parent network', () => {
    expect(
      issues((s) => ({ ...s, sgws: s.sgws.map((g) => (g.name === 'sgw0' ? { ...g, outside: '10.1.0.9' } : g)) })),
    ).toEqual([
      'sgws.1.outside: 10.1.0.9 is not in the network protected by sgw1 (behind: sgw1); use an address of 10.0.0.0/16',
    ]);
  });

  it('refuses the same prefix on a nested SGW and its parent', () => {
    expect(
      issues((s) => ({ ...s, sgws: s.sgws.map((g) => (g.name === 'sgw0' ? { ...g, prefixes: ['10.0.0.0/16'] } : g)) })),
    ).toEqual(['sgws.1.prefixes.0: sgw0 sits behind sgw1, so 10.0.0.0/16 must lie strictly inside 10.0.0.0/16']);
  });

  it('refuses an inside address outside the SGW network', () => {
    expect(
      issues((s) => ({ ...s, sgws: s.sgws.map((g) => (g.name === 'sgw3' ? { ...g, inside: '10.1.0.77' } : g)) })),
    ).toEqual([
      "sgws.3.inside: 10.1.0.77 is not in sgw3's protected network (10.1.1.0/24); use an address of that network",
    ]);
  });

  it('refuses the same address on two nodes', () => {
    expect(issues((s) => ({ ...s, hosts: [{ name: 'ch', address: '10.0.1.2' }] }))).toEqual([
      'hosts.0.address: 10.0.1.2 is already the address of ha; every address belongs to one node',
    ]);
  });
});
