// The SMN's path table (draft §3.2, §3.4): which layers it builds, and how failure messages change
// them; and the SMN's position (§4.2) as it moves.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { buildWorld, type World } from '../../src/lab/world.js';
import { PathTable } from '../../src/roles/smn/paths.js';
import type { TopologyMap } from '../../src/topology/map.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { Icmp40Code } from '../../src/wire/icmp40.js';

process.env.MIPSEC_NATIVE = '1';
const u = ipToU32;

function table(map: TopologyMap, procedure: 'direct' | 'three-step', borders = ['sgw0']) {
  const t = new PathTable(
    map,
    procedure,
    borders.map((b) => map.sgw(b)!),
    { sgw: map.sgw('sgw0')!, homeAgent: u(F6.ha) },
    () => 0,
  );
  t.reset(u(F6.coa1));
  return t;
}
const names = (l: { stage: string; end?: { name: string }; hops: { name: string }[] }) => ({
  stage: l.stage,
  end: l.end?.name,
  hops: l.hops.map((h) => h.name),
});

describe('PathTable', () => {
  it("direct: End-End with the CH's SGW, the visited SGW's Next-hop layer once it asks (§4.5.5)", async () => {
    const map = await figure6Map();
    const t = table(map, 'direct');
    expect(names(t.layersFor(u(F6.ch2)))).toEqual({ stage: 'end', end: 'sgw2', hops: [] });
    const r = t.onFailure({
      from: u(F6.sgw1),
      code: Icmp40Code.needAuthentication,
      quotedSrc: u(F6.coa1),
      quotedDst: u(F6.sgw2),
    });
    expect(r).toEqual({ changed: [u(F6.ch2)], note: 'failure_need_nexthop' });
    expect(names(t.layersFor(u(F6.ch2)))).toEqual({ stage: 'end', end: 'sgw2', hops: ['sgw1'] });
    // Learned for the location: a new destination needs it too, without asking again.
    expect(names(t.layersFor(u(F6.ch0)))).toEqual({ stage: 'end', end: 'sgw0', hops: ['sgw1'] });
    // The same failure again changes nothing.
    expect(
      t.onFailure({
        from: u(F6.sgw1),
        code: Icmp40Code.needAuthentication,
        quotedSrc: u(F6.coa1),
        quotedDst: u(F6.sgw2),
      }).changed,
    ).toEqual([]);
  });

  it('three-step: plain, then Next-hop AH around the plain datagram, then End-End with the SGW that sent code 5 (§3.2)', async () => {
    const map = await figure6Map();
    const t = table(map, 'three-step');
    expect(names(t.layersFor(u(F6.ch0)))).toEqual({ stage: 'plain', end: undefined, hops: [] });
    t.onFailure({ from: u(F6.sgw1), code: Icmp40Code.needAuthentication, quotedSrc: u(F6.home), quotedDst: u(F6.ch0) });
    expect(names(t.layersFor(u(F6.ch0)))).toEqual({ stage: 'nexthop-plain', end: undefined, hops: ['sgw1'] });
    t.onFailure({ from: u(F6.sgw0), code: Icmp40Code.needAuthorization, quotedSrc: u(F6.home), quotedDst: u(F6.ch0) });
    expect(names(t.layersFor(u(F6.ch0)))).toEqual({ stage: 'end', end: 'sgw0', hops: ['sgw1'] });
    // Registrations go End-End to the home SGW from the start (§4.4).
    expect(names(t.layersFor(u(F6.ha)))).toEqual({ stage: 'end', end: 'sgw0', hops: ['sgw1'] });
  });

  it('code 5 from the visited site means the SMN is not admitted; failures from unknown nodes or for unknown flows are ignored', async () => {
    const map = await figure6Map();
    const t = table(map, 'direct');
    t.layersFor(u(F6.ch0));
    expect(t.onFailure({ from: u('198.18.9.10'), code: 4, quotedSrc: 0, quotedDst: u(F6.sgw0) })).toEqual({
      changed: [],
      note: 'failure_from_unknown_node',
    });
    expect(t.onFailure({ from: u(F6.sgw1), code: 4, quotedSrc: 0, quotedDst: u('10.9.9.9') })).toEqual({
      changed: [],
      note: 'failure_for_unknown_flow',
    });
    expect(t.onFailure({ from: u(F6.sgw1), code: 5, quotedSrc: 0, quotedDst: u(F6.sgw0) }).note).toBe(
      'failure_visit_refused',
    );
    expect(t.layersFor(u(F6.ch0)).stage).toBe('refused');
  });

  it("outside correspondents stay usual IP: code 4 adds the visited SGW's layer, code 5 is ignored (§3.5)", async () => {
    const map = await figure6Map();
    const t = table(map, 'direct');
    expect(t.layersFor(u(F6.chx)).stage).toBe('plain');
    t.onFailure({ from: u(F6.sgw1), code: 4, quotedSrc: u(F6.home), quotedDst: u(F6.chx) });
    expect(names(t.layersFor(u(F6.chx)))).toEqual({ stage: 'nexthop-plain', end: undefined, hops: ['sgw1'] });
    expect(t.onFailure({ from: u(F6.sgw0), code: 5, quotedSrc: u(F6.home), quotedDst: u(F6.chx) }).changed).toEqual([]);
  });

  it("outside the organization: a known Border-SGW is the VPN end, or the CH's own when it is known (§3.3, §4.5.7)", async () => {
    const map = await figure6Map();
    const only0 = table(map, 'direct');
    only0.reset(u(F6.out));
    expect(names(only0.layersFor(u(F6.ch1)))).toEqual({ stage: 'end', end: 'sgw0', hops: [] });
    const both = table(map, 'direct', ['sgw0', 'sgw1']);
    both.reset(u(F6.out));
    expect(names(both.layersFor(u(F6.ch1)))).toEqual({ stage: 'end', end: 'sgw1', hops: [] });
  });
});

describe.each(['native', 'ts'] as const)('MobileNode on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('position (§4.2) and source address (§3.5) follow the moves', async () => {
    world = buildWorld({ map: await figure6Map(), engine, smn: { outsideCh: 'direct' } });
    const w = world;
    expect(w.smn.position()).toEqual({ place: 'home', careOf: F6.home, site: 'home', vpnRoutable: true });
    w.place('sgw2');
    w.network.runFor(SETTLE_MS);
    expect(w.smn.position()).toEqual({ place: 'visiting', careOf: F6.coa2, site: 'site2', vpnRoutable: true });
    expect(w.smn.addressFor(F6.ch0)).toBe(F6.home);
    expect(w.smn.addressFor(F6.chx)).toBe(F6.coa2);
    w.place('outside');
    w.network.runFor(SETTLE_MS);
    expect(w.smn.position()).toEqual({ place: 'outside', careOf: F6.out, vpnRoutable: false });
    expect(w.ha.bindings().map((b) => b.careOf)).toEqual([F6.out]);
  });
});
