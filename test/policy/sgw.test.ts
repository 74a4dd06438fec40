// SGW decisions on the draft's scenarios: §3.2 (three steps), §3.3, §3.4, §4.4 and §4.5.1–§4.5.7.
import { beforeAll, describe, expect, it } from 'vitest';
import type { SkipName } from '../../src/keys/names.js';
import {
  decide,
  type AuthResult,
  type Decision,
  type PacketView,
  type SgwPlace,
  type SkipLayer,
} from '../../src/policy/sgw.js';
import { buildTopology, type TopologyMap } from '../../src/topology/map.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { figure1Map } from '../../src/lab/topologies.js';
import { figure6Map } from '../../src/lab/figure6-world.js';

// Figure 6 (examples/figure6/network.yaml)
const SGW0 = '198.18.0.1';
const SGW1 = '198.18.1.1';
const SGW2 = '198.18.2.1';
const HA = '10.0.0.2';
const HOME = '10.0.0.100';
const COA_SITE1 = '10.1.0.100';
const COA_OUTSIDE = '198.18.100.100';
const CH0 = '10.0.0.10';
const CH1 = '10.1.0.10';
const CH2 = '10.2.0.10';

const smn = (home = HOME): SkipName => ({ nsid: 1, address: ipToU32(home) });
const sgwId = (address: string): SkipName => ({ nsid: 0, address: ipToU32(address) });
const nextHop = (src: string, dst: string, skipSrc: SkipName, auth?: AuthResult): SkipLayer => ({
  kind: 'nexthop',
  ip: { src, dst },
  skipSrc,
  auth,
});
const end = (src: string, dst: string, skipSrc: SkipName, auth?: AuthResult): SkipLayer => ({
  kind: 'end',
  ip: { src, dst },
  skipSrc,
  auth,
});

/** A decision in one comparable line: action, SGWs involved, ICMP. */
function summary(d: Decision): string {
  switch (d.action) {
    case 'pass':
    case 'local':
    case 'drop':
      return d.action;
    case 'encap':
      return `encap end=${d.end.kind === 'sgw' ? d.end.sgw.name : `smn ${d.end.home}@${d.end.careOf}`}${d.nextHop ? ` next=${d.nextHop.name}` : ''}`;
    case 'relay':
      return `relay${d.nextHop ? ` next=${d.nextHop.name}` : ' as-is'}`;
    case 'decap':
      return d.then.kind === 'deliver'
        ? 'decap deliver'
        : `decap reencap end=${d.then.end.kind === 'sgw' ? d.then.end.sgw.name : d.then.end.home}${d.then.nextHop ? ` next=${d.then.nextHop.name}` : ''}`;
    default:
      return `${d.action} icmp ${d.icmp.code} to ${d.icmp.to}`;
  }
}

let map: TopologyMap;
let at: (sgw: string, careOfs?: [string, string][]) => SgwPlace;
beforeAll(async () => {
  map = await figure6Map();
  at = (name, careOfs = []) => ({
    map,
    self: map.sgw(name)!,
    careOfs: new Map(careOfs.map(([c, h]) => [ipToU32(c), ipToU32(h)])),
  });
});
const packet = (
  arrivedOn: 'inside' | 'outside',
  layers: SkipLayer[],
  inner?: { src: string; dst: string },
): PacketView => ({ arrivedOn, layers, inner });
const smnAway: [string, string][] = [[COA_SITE1, HOME]];
const smnOutside: [string, string][] = [[COA_OUTSIDE, HOME]];

describe('§3.2: SMN visiting site 1 talks to CH0 at home', () => {
  it('step 1: SGW1 rejects the plain datagram from a visiting SMN (source address) with code 4', () => {
    const d = decide(at('sgw1'), packet('inside', [], { src: HOME, dst: CH0 }));
    expect(summary(d)).toBe('need-nexthop-auth icmp 4 to 10.0.0.100');
    expect(d.reason).toBe(
      'source 10.0.0.100 is not a host of sgw1 (protected by sgw0): a visiting SMN must add a Next-hop AH for sgw1 (§3.2 step 1)',
    );
  });

  it('step 2: SGW1 becomes the VPN end for the Next-hop-authenticated datagram', () => {
    const d = decide(
      at('sgw1'),
      packet('inside', [nextHop(COA_SITE1, SGW1, smn(), 'verified')], { src: HOME, dst: CH0 }),
    );
    expect(summary(d)).toBe('encap end=sgw0');
  });

  it('step 2: SGW0 sees its own SMN inside an End-End layer negotiated by SGW1: code 5 to the SMN', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [end(SGW1, SGW0, sgwId(SGW1), 'verified')], { src: HOME, dst: CH0 }),
    );
    expect(summary(d)).toBe('end-end-conflict icmp 5 to 10.0.0.100');
    expect(d.reason).toContain('negotiated by SGW 198.18.1.1: the SMN must do End-End with sgw0 itself (§3.2 step 2)');
  });

  it("step 3: SGW1 checks and replaces the Next-hop AH; SGW0 opens the SMN's own End-End layer", () => {
    const layers = [nextHop(COA_SITE1, SGW1, smn(), 'verified'), end(COA_SITE1, SGW0, smn())];
    expect(summary(decide(at('sgw1'), packet('inside', layers)))).toBe('relay next=sgw0');
    const atSgw0 = [nextHop(SGW1, SGW0, sgwId(SGW1), 'verified'), end(COA_SITE1, SGW0, smn(), 'verified')];
    expect(summary(decide(at('sgw0'), packet('outside', atSgw0, { src: HOME, dst: CH0 })))).toBe('decap deliver');
  });
});

describe('§3.3: SMN outside, knows only Border-SGW0, talks to CH1', () => {
  it('SGW0 decrypts and re-encrypts toward the correspondent-SGW', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [end(COA_OUTSIDE, SGW0, smn(), 'verified')], { src: HOME, dst: CH1 }),
    );
    expect(summary(d)).toBe('decap reencap end=sgw1');
    expect(d.reason).toBe('End-End layer from SMN 10.0.0.100 opened: re-encrypt 10.0.0.100 > 10.1.0.10 to sgw1 (§3.3)');
  });
});

describe('§3.4: SMN in a site that is not VPN-routable (Figure 4)', () => {
  // Site-1 keeps out of the VPN; the SMN's home is behind SGW3, nested behind Border-SGW2.
  const built = buildTopology({
    name: 'figure4',
    sites: [
      { name: 'site1', prefixes: ['10.5.0.0/16'], vpnRoutable: false },
      { name: 'org', prefixes: ['10.0.0.0/16'] },
    ],
    sgws: [
      { name: 'sgw1', site: 'site1', inside: '10.5.0.1', outside: '198.18.5.1' },
      { name: 'sgw2', site: 'org', inside: '10.0.0.1', outside: '198.18.2.1' },
      { name: 'sgw3', site: 'org', prefixes: ['10.0.1.0/24'], inside: '10.0.1.1', outside: '10.0.0.3', behind: 'sgw2' },
    ],
    homeAgents: [{ name: 'ha', address: '10.0.1.2', serves: ['10.0.1.100'] }],
  });
  if (!built.ok) throw new Error(JSON.stringify(built.issues));
  const m = built.map;
  const place = (name: string): SgwPlace => ({ map: m, self: m.sgw(name)! });
  const home = '10.0.1.100';
  const coa = '10.5.0.100';
  const ch = '10.0.1.10';
  const s = smn(home);

  it('step 1: SGW1 rejects the End-End packet toward SGW2 for lack of a Next-hop AH', () => {
    expect(summary(decide(place('sgw1'), packet('inside', [end(coa, '198.18.2.1', s)])))).toBe(
      'need-nexthop-auth icmp 4 to 10.5.0.100',
    );
  });

  it('step 2: SGW1 strips its Next-hop layer and forwards as it is; SGW2 re-encrypts; SGW3 rejects with code 5', () => {
    const d1 = decide(
      place('sgw1'),
      packet('inside', [nextHop(coa, '198.18.5.1', s, 'verified'), end(coa, '198.18.2.1', s)]),
    );
    expect(summary(d1)).toBe('relay as-is');
    expect(d1.reason).toContain('sgw1 builds no Next-hop layers with other SGWs (§3.4)');
    expect(
      summary(
        decide(place('sgw2'), packet('outside', [end(coa, '198.18.2.1', s, 'verified')], { src: home, dst: ch })),
      ),
    ).toBe('decap reencap end=sgw3');
    expect(
      summary(
        decide(
          place('sgw3'),
          packet('outside', [end('10.0.0.1', '10.0.0.3', sgwId('10.0.0.1'), 'verified')], { src: home, dst: ch }),
        ),
      ),
    ).toBe('end-end-conflict icmp 5 to 10.0.1.100');
  });

  it('step 3: stacked Next-hop layers for SGW1 and SGW2 carry the End-End layer to SGW3', () => {
    const stacked = [nextHop(coa, '198.18.5.1', s, 'verified'), nextHop(coa, '198.18.2.1', s), end(coa, '10.0.0.3', s)];
    expect(summary(decide(place('sgw1'), packet('inside', stacked)))).toBe('relay as-is');
    const atSgw2 = [nextHop(coa, '198.18.2.1', s, 'verified'), end(coa, '10.0.0.3', s)];
    expect(summary(decide(place('sgw2'), packet('outside', atSgw2)))).toBe('relay next=sgw3');
    const atSgw3 = [
      nextHop('10.0.0.1', '10.0.0.3', sgwId('10.0.0.1'), 'verified'),
      end(coa, '10.0.0.3', s, 'verified'),
    ];
    expect(summary(decide(place('sgw3'), packet('outside', atSgw3, { src: home, dst: ch })))).toBe('decap deliver');
  });
});

describe('§4.4: registration from site 1', () => {
  const request = { src: COA_SITE1, dst: HA };

  it('<1>/<2>: SGW1 answers the first request (no Next-hop AH) with a failure to the care-of address', () => {
    expect(summary(decide(at('sgw1'), packet('inside', [end(COA_SITE1, SGW0, smn())])))).toBe(
      'need-nexthop-auth icmp 4 to 10.1.0.100',
    );
  });

  it('<3>: SGW1 relays the second request with its own Next-hop AH for SGW0', () => {
    expect(
      summary(
        decide(
          at('sgw1'),
          packet('inside', [nextHop(COA_SITE1, SGW1, smn(), 'verified'), end(COA_SITE1, SGW0, smn())]),
        ),
      ),
    ).toBe('relay next=sgw0');
  });

  it('<4>: SGW0 opens it: an SMN may use its care-of address as source toward its own HA', () => {
    const d = decide(
      at('sgw0'),
      packet(
        'outside',
        [nextHop(SGW1, SGW0, sgwId(SGW1), 'verified'), end(COA_SITE1, SGW0, smn(), 'verified')],
        request,
      ),
    );
    expect(summary(d)).toBe('decap deliver');
    expect(d.action === 'decap' && d.peer).toEqual(smn());
  });

  it('<4>: but not toward anyone else', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [end(COA_SITE1, SGW0, smn(), 'verified')], { src: COA_SITE1, dst: CH0 }),
    );
    expect(summary(d)).toBe('drop');
    expect(d.reason).toBe(
      'inner source 10.1.0.100 is neither the home address of SMN 10.0.0.100 nor its care-of address talking to its HA',
    );
  });

  it("<5>: SGW0 protects the HA's reply End-End to the SMN, through a Next-hop layer for SGW1; SGW1 strips it", () => {
    expect(summary(decide(at('sgw0', smnAway), packet('inside', [], { src: HA, dst: COA_SITE1 })))).toBe(
      'encap end=smn 10.0.0.100@10.1.0.100 next=sgw1',
    );
    const atSgw1 = [nextHop(SGW0, SGW1, sgwId(SGW0), 'verified'), end(SGW0, COA_SITE1, sgwId(SGW0))];
    expect(summary(decide(at('sgw1'), packet('outside', atSgw1)))).toBe('relay as-is');
  });
});

describe('§4.5 data communication', () => {
  it('4.5.1: SMN and CH0 at home: internal, no IPsec', () => {
    expect(summary(decide(at('sgw0'), packet('inside', [], { src: HOME, dst: CH0 })))).toBe('pass');
  });

  it('4.5.2: SMN at home, CH1 in site 1: usual VPN between SGW0 and SGW1, both ways', () => {
    expect(summary(decide(at('sgw0'), packet('inside', [], { src: HOME, dst: CH1 })))).toBe('encap end=sgw1');
    expect(
      summary(
        decide(at('sgw1'), packet('outside', [end(SGW0, SGW1, sgwId(SGW0), 'verified')], { src: HOME, dst: CH1 })),
      ),
    ).toBe('decap deliver');
    expect(summary(decide(at('sgw1'), packet('inside', [], { src: CH1, dst: HOME })))).toBe('encap end=sgw0');
    expect(
      summary(
        decide(at('sgw0'), packet('outside', [end(SGW1, SGW0, sgwId(SGW1), 'verified')], { src: CH1, dst: HOME })),
      ),
    ).toBe('decap deliver');
  });

  it('4.5.3: SMN in site 1, CH0 at home', () => {
    expect(
      summary(
        decide(
          at('sgw1'),
          packet('inside', [nextHop(COA_SITE1, SGW1, smn(), 'verified'), end(COA_SITE1, SGW0, smn())]),
        ),
      ),
    ).toBe('relay next=sgw0');
    const atSgw0 = [nextHop(SGW1, SGW0, sgwId(SGW1), 'verified'), end(COA_SITE1, SGW0, smn(), 'verified')];
    expect(summary(decide(at('sgw0'), packet('outside', atSgw0, { src: HOME, dst: CH0 })))).toBe('decap deliver');
    // <3>: the HA's IP-in-IP to the care-of address
    expect(summary(decide(at('sgw0', smnAway), packet('inside', [], { src: HA, dst: COA_SITE1 })))).toBe(
      'encap end=smn 10.0.0.100@10.1.0.100 next=sgw1',
    );
  });

  it('4.5.4: SMN and CH1 both in site 1: CH1 → home address goes through SGW0 and the HA', () => {
    expect(summary(decide(at('sgw1'), packet('inside', [], { src: CH1, dst: HOME })))).toBe('encap end=sgw0');
    expect(
      summary(
        decide(at('sgw0'), packet('outside', [end(SGW1, SGW0, sgwId(SGW1), 'verified')], { src: CH1, dst: HOME })),
      ),
    ).toBe('decap deliver');
    expect(summary(decide(at('sgw0', smnAway), packet('inside', [], { src: HA, dst: COA_SITE1 })))).toBe(
      'encap end=smn 10.0.0.100@10.1.0.100 next=sgw1',
    );
  });

  it('4.5.5: SMN in site 1, CH2 in site 2', () => {
    // <1> SMN → SGW1: Next-hop for SGW1 around End-End with SGW2
    expect(
      summary(
        decide(
          at('sgw1'),
          packet('inside', [nextHop(COA_SITE1, SGW1, smn(), 'verified'), end(COA_SITE1, SGW2, smn())]),
        ),
      ),
    ).toBe('relay next=sgw2');
    // <2> SGW1 → SGW2
    const atSgw2 = [nextHop(SGW1, SGW2, sgwId(SGW1), 'verified'), end(COA_SITE1, SGW2, smn(), 'verified')];
    expect(summary(decide(at('sgw2'), packet('outside', atSgw2, { src: HOME, dst: CH2 })))).toBe('decap deliver');
    // <3> CH2's reply to the home address: SGW2 → SGW0
    expect(summary(decide(at('sgw2'), packet('inside', [], { src: CH2, dst: HOME })))).toBe('encap end=sgw0');
    // <4> SGW0 → SMN through SGW1
    expect(summary(decide(at('sgw0', smnAway), packet('inside', [], { src: HA, dst: COA_SITE1 })))).toBe(
      'encap end=smn 10.0.0.100@10.1.0.100 next=sgw1',
    );
  });

  it('4.5.6: SMN outside, CH0 at home', () => {
    expect(
      summary(
        decide(at('sgw0'), packet('outside', [end(COA_OUTSIDE, SGW0, smn(), 'verified')], { src: HOME, dst: CH0 })),
      ),
    ).toBe('decap deliver');
    expect(summary(decide(at('sgw0', smnOutside), packet('inside', [], { src: HA, dst: COA_OUTSIDE })))).toBe(
      'encap end=smn 10.0.0.100@198.18.100.100',
    );
  });

  it('4.5.7 first variant: SMN outside knows only SGW0; CH1 in site 1', () => {
    expect(
      summary(
        decide(at('sgw0'), packet('outside', [end(COA_OUTSIDE, SGW0, smn(), 'verified')], { src: HOME, dst: CH1 })),
      ),
    ).toBe('decap reencap end=sgw1');
    expect(
      summary(
        decide(at('sgw1'), packet('outside', [end(SGW0, SGW1, sgwId(SGW0), 'verified')], { src: HOME, dst: CH1 })),
      ),
    ).toBe('decap deliver');
    expect(summary(decide(at('sgw1'), packet('inside', [], { src: CH1, dst: HOME })))).toBe('encap end=sgw0');
    expect(summary(decide(at('sgw0', smnOutside), packet('inside', [], { src: HA, dst: COA_OUTSIDE })))).toBe(
      'encap end=smn 10.0.0.100@198.18.100.100',
    );
  });

  it('4.5.7 second variant: SMN outside goes to SGW1 directly', () => {
    expect(
      summary(
        decide(at('sgw1'), packet('outside', [end(COA_OUTSIDE, SGW1, smn(), 'verified')], { src: HOME, dst: CH1 })),
      ),
    ).toBe('decap deliver');
  });
});

describe('failures and hostile packets', () => {
  it('a Next-hop AH that does not verify: code 1 to its sender', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [nextHop(SGW1, SGW0, sgwId(SGW1), 'failed'), end(COA_SITE1, SGW0, smn())]),
    );
    expect(summary(d)).toBe('auth-failed icmp 1 to 198.18.1.1');
    expect(d.reason).toBe('the Next-hop AH from SGW 198.18.1.1 did not verify');
  });

  it('an End-End layer under an unknown key: code 0', () => {
    const d = decide(at('sgw0'), packet('outside', [end(COA_OUTSIDE, SGW0, smn(), 'unknown-key')]));
    expect(summary(d)).toBe('unknown-key icmp 0 to 198.18.100.100');
  });

  it('a layer for this SGW that the caller did not check is dropped', () => {
    expect(decide(at('sgw0'), packet('outside', [end(COA_OUTSIDE, SGW0, smn())]))).toEqual({
      action: 'drop',
      reason: 'the end layer for sgw0 was not checked',
    });
  });

  it('an NSID 0 name that is not an SGW of the map is dropped', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [end('198.18.77.1', SGW0, sgwId('198.18.77.1'), 'verified')], { src: CH1, dst: CH0 }),
    );
    expect(d).toEqual({ action: 'drop', reason: '198.18.77.1 (NSID 0) is not an SGW of network map figure6' });
  });

  it('an MKID that is no home address is dropped', () => {
    const d = decide(
      at('sgw0'),
      packet('outside', [end(COA_OUTSIDE, SGW0, smn('10.1.0.55'), 'verified')], { src: '10.1.0.55', dst: CH0 }),
    );
    expect(d).toEqual({
      action: 'drop',
      reason: 'MKID 10.1.0.55 is not a home address served by any HA of network map figure6',
    });
  });

  it('a peer SGW speaking for a host of this SGW is dropped', () => {
    const d = decide(at('sgw0'), packet('outside', [end(SGW1, SGW0, sgwId(SGW1), 'verified')], { src: CH0, dst: HA }));
    const reason = 'inner source 10.0.0.10 is behind sgw0; SGW 198.18.1.1 cannot speak for it';
    expect(d).toEqual({ action: 'drop', counter: 'spoofed_source', reason });
  });

  it('an IPsec packet entering without a Next-hop AH for this SGW: code 4 to its sender', () => {
    expect(summary(decide(at('sgw1'), packet('outside', [end(SGW0, COA_SITE1, sgwId(SGW0))])))).toBe(
      'need-nexthop-auth icmp 4 to 198.18.0.1',
    );
  });

  it('plain traffic from outside is dropped by default and passed when the site allows usual IP', () => {
    const plain = packet('outside', [], { src: '198.18.9.10', dst: COA_SITE1 });
    expect(decide(at('sgw1'), plain)).toEqual({
      action: 'drop',
      reason: 'plain datagram from outside (198.18.9.10) to protected host 10.1.0.100: site policy drops it',
    });
    expect(summary(decide({ ...at('sgw1'), plainInbound: 'pass' }, plain))).toBe('pass');
  });

  it("traffic for someone else's network is dropped", () => {
    expect(decide(at('sgw1'), packet('outside', [], { src: '198.18.9.10', dst: CH2 }))).toEqual({
      action: 'drop',
      reason: '10.2.0.10 is not behind sgw1',
    });
    expect(summary(decide(at('sgw1'), packet('outside', [end(SGW0, SGW2, sgwId(SGW0))])))).toBe('drop');
  });

  it('a host of this SGW may talk usual IP to the Internet (§3.5)', () => {
    const d = decide(at('sgw1'), packet('inside', [], { src: COA_SITE1, dst: '198.18.9.10' }));
    expect(d).toEqual({
      action: 'pass',
      reason: '198.18.9.10 is outside every SGW-protected network: usual IP (§3.5)',
    });
  });

  it('a plain datagram for the SGW itself goes to its own stack', () => {
    expect(decide(at('sgw1'), packet('outside', [], { src: SGW0, dst: SGW1 }))).toEqual({
      action: 'local',
      reason: 'addressed to sgw1 itself',
    });
  });

  it('more layers than the engine peels are dropped', () => {
    const layers = Array.from({ length: 9 }, () => nextHop(COA_SITE1, SGW1, smn(), 'verified'));
    expect(decide(at('sgw1'), packet('inside', layers))).toEqual({ action: 'drop', reason: 'more than 8 SKIP layers' });
  });

  it('a packet with neither layers nor a datagram is dropped', () => {
    expect(summary(decide(at('sgw1'), packet('inside', [])))).toBe('drop');
  });
});

describe('Figure 2: a chain of SGWs, nested on both sides', () => {
  // Visited site: sgwA (innermost, the SMN's) behind Border-sgwB. Home: Border-sgwC, home SGW sgwD behind it.
  const built = buildTopology({
    name: 'figure2',
    sites: [
      { name: 'visited', prefixes: ['10.1.0.0/16'] },
      { name: 'home', prefixes: ['10.0.0.0/16'] },
    ],
    sgws: [
      { name: 'sgwB', site: 'visited', inside: '10.1.0.1', outside: '198.18.1.1' },
      {
        name: 'sgwA',
        site: 'visited',
        prefixes: ['10.1.1.0/24'],
        inside: '10.1.1.1',
        outside: '10.1.0.2',
        behind: 'sgwB',
      },
      { name: 'sgwC', site: 'home', inside: '10.0.0.1', outside: '198.18.0.1' },
      {
        name: 'sgwD',
        site: 'home',
        prefixes: ['10.0.1.0/24'],
        inside: '10.0.1.1',
        outside: '10.0.0.2',
        behind: 'sgwC',
      },
    ],
    homeAgents: [{ name: 'ha', address: '10.0.1.2', serves: ['10.0.1.100'] }],
  });
  if (!built.ok) throw new Error(JSON.stringify(built.issues));
  const m = built.map;
  const home = '10.0.1.100';
  const coa = '10.1.1.100';
  const ch = '10.0.1.10';
  const s = smn(home);
  const place = (name: string, careOfs: [string, string][] = []): SgwPlace => ({
    map: m,
    self: m.sgw(name)!,
    careOfs: new Map(careOfs.map(([c, h]) => [ipToU32(c), ipToU32(h)])),
  });
  const sgwAddr = (name: string, side: 'inside' | 'outside') => m.sgw(name)![side];

  it('outbound: each SGW verifies the previous Next-hop AH and replaces it with one for the next SGW', () => {
    const endLayer = end(coa, '10.0.0.2', s);
    expect(
      summary(
        decide(place('sgwA'), packet('inside', [nextHop(coa, sgwAddr('sgwA', 'inside'), s, 'verified'), endLayer])),
      ),
    ).toBe('relay next=sgwB');
    expect(
      summary(
        decide(
          place('sgwB'),
          packet('inside', [nextHop('10.1.0.2', sgwAddr('sgwB', 'outside'), sgwId('10.1.0.2'), 'verified'), endLayer]),
        ),
      ),
    ).toBe('relay next=sgwC');
    expect(
      summary(
        decide(
          place('sgwC'),
          packet('outside', [nextHop('198.18.1.1', '198.18.0.1', sgwId('198.18.1.1'), 'verified'), endLayer]),
        ),
      ),
    ).toBe('relay next=sgwD');
    const atD = [
      nextHop('10.0.0.1', '10.0.0.2', sgwId('10.0.0.1'), 'verified'),
      { ...endLayer, auth: 'verified' as const },
    ];
    expect(summary(decide(place('sgwD'), packet('outside', atD, { src: home, dst: ch })))).toBe('decap deliver');
  });

  it("inbound: the home SGW protects the HA's datagram for the SMN through the chain", () => {
    expect(summary(decide(place('sgwD', [[coa, home]]), packet('inside', [], { src: '10.0.1.2', dst: coa })))).toBe(
      'encap end=smn 10.0.1.100@10.1.1.100 next=sgwC',
    );
    const endLayer = end('10.0.0.2', coa, sgwId('10.0.0.2'));
    expect(
      summary(
        decide(
          place('sgwC'),
          packet('inside', [nextHop('10.0.0.2', '10.0.0.1', sgwId('10.0.0.2'), 'verified'), endLayer]),
        ),
      ),
    ).toBe('relay next=sgwB');
    expect(
      summary(
        decide(
          place('sgwB'),
          packet('outside', [nextHop('198.18.0.1', '198.18.1.1', sgwId('198.18.0.1'), 'verified'), endLayer]),
        ),
      ),
    ).toBe('relay next=sgwA');
    expect(
      summary(
        decide(
          place('sgwA'),
          packet('outside', [nextHop('10.1.0.1', '10.1.0.2', sgwId('10.1.0.1'), 'verified'), endLayer]),
        ),
      ),
    ).toBe('relay as-is');
  });

  it("a nested SGW's outbound End-End layer without a Next-hop AH is stopped at the Border-SGW", () => {
    expect(summary(decide(place('sgwB'), packet('inside', [end('10.1.0.2', '10.0.0.2', sgwId('10.1.0.2'))])))).toBe(
      'need-nexthop-auth icmp 4 to 10.1.0.2',
    );
  });
});

describe('Figure 1: a nested SGW and the one it sits behind', () => {
  const m = figure1Map();
  const place = (name: string): SgwPlace => ({ map: m, self: m.sgw(name)! });

  it("SGW0 lets its hosts reach the rest of the home network (SGW1's) as plain IP", () => {
    expect(summary(decide(place('sgw0'), packet('inside', [], { src: '10.0.1.10', dst: '10.0.2.7' })))).toBe('pass');
    expect(summary(decide(place('sgw0'), packet('outside', [], { src: '10.0.2.7', dst: '10.0.1.10' })))).toBe('pass');
  });

  it('SGW0 protects traffic for another site End-End to its SGW, through a Next-hop layer for SGW1', () => {
    expect(summary(decide(place('sgw0'), packet('inside', [], { src: '10.0.1.10', dst: '10.1.1.10' })))).toBe(
      'encap end=sgw3 next=sgw1',
    );
  });

  it('SGW1 accepts a nested SGW speaking for the hosts behind it, not for its other hosts', () => {
    const fromSgw0 = [end('10.0.0.2', '10.0.0.1', sgwId('10.0.0.2'), 'verified')];
    expect(summary(decide(place('sgw1'), packet('inside', fromSgw0, { src: '10.0.1.10', dst: '10.0.2.7' })))).toBe(
      'decap deliver',
    );
    expect(decide(place('sgw1'), packet('inside', fromSgw0, { src: '10.0.3.3', dst: '10.0.2.7' }))).toEqual({
      action: 'drop',
      counter: 'spoofed_source',
      reason: 'inner source 10.0.3.3 is behind sgw1; SGW 10.0.0.2 cannot speak for it',
    });
  });
});
