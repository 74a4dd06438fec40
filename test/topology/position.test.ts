import { beforeAll, describe, expect, it } from 'vitest';
import { buildTopology, type TopologyMap } from '../../src/topology/map.js';
import { classifyFigure6, communicationMode } from '../../src/topology/position.js';
import { figure6Map } from '../../src/lab/figure6-world.js';

// Figure 6 addresses (examples/figure6/network.yaml).
const HOME = '10.0.0.100';
const AT_HOME = HOME;
const IN_SITE1 = '10.1.0.100';
const IN_SITE2 = '10.2.0.100';
const OUTSIDE = '198.18.100.100';
const CH0 = '10.0.0.10';
const CH1 = '10.1.0.10';
const CH2 = '10.2.0.10';
const CH_OUTSIDE = '198.18.9.10';

let map: TopologyMap;
beforeAll(async () => {
  map = await figure6Map();
});

describe('§4.2 first table: (SMN position, CH position) → mode', () => {
  it.each([
    ['<1> SGW-protected SMN, SGW-protected CH', IN_SITE1, CH2, 1, 'sgw-protected', 'sgw-protected'],
    ['<2> outside SMN, SGW-protected CH', OUTSIDE, CH0, 2, 'outside', 'sgw-protected'],
    ['<3> SGW-protected SMN, outside CH', IN_SITE1, CH_OUTSIDE, 3, 'sgw-protected', 'outside'],
    ['<4> outside SMN, outside CH', OUTSIDE, CH_OUTSIDE, 4, 'outside', 'outside'],
  ] as const)('%s', (_label, careOf, ch, mode, smnSide, chSide) => {
    expect(communicationMode(map, careOf, ch)).toEqual({ mode, smn: smnSide, ch: chSide });
  });

  it('counts a CH behind an SGW that builds no VPNs as outside (§2.4, §3.4)', () => {
    const built = buildTopology({
      name: 'partly-routable',
      sites: [
        { name: 'home', prefixes: ['10.0.0.0/16'] },
        { name: 'closed', prefixes: ['10.5.0.0/16'], vpnRoutable: false },
      ],
      sgws: [
        { name: 'sgw0', site: 'home', inside: '10.0.0.1', outside: '198.18.0.1' },
        { name: 'sgw5', site: 'closed', inside: '10.5.0.1', outside: '198.18.5.1' },
      ],
    });
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(communicationMode(built.map, '10.0.0.100', '10.5.0.10')).toEqual({
      mode: 3,
      smn: 'sgw-protected',
      ch: 'outside',
    });
    // An SMN inside the closed site is still SGW-protected: it reaches the VPN through stacked Next-hop layers.
    expect(communicationMode(built.map, '10.5.0.100', '10.0.0.10')).toEqual({
      mode: 1,
      smn: 'sgw-protected',
      ch: 'sgw-protected',
    });
  });
});

describe('§4.2 second table (Figure 6): (SMN position, CH position) → case, SMN IPsec used', () => {
  it.each([
    ['(1) SMN at home, CH at home', AT_HOME, CH0, 1, false, 'home', 'home'],
    ['(2) SMN at home, CH in site 1', AT_HOME, CH1, 2, false, 'home', 'other-site'],
    ['(3)* SMN in Other 1, CH at home', IN_SITE1, CH0, 3, true, 'other-site', 'home'],
    ['(3)* empty cell: SMN in Other 2, CH at home', IN_SITE2, CH0, 3, true, 'other-site', 'home'],
    ["(4)* SMN in Other 1 (the CH's home), CH in site 1", IN_SITE1, CH1, 4, true, 'ch-site', 'other-site'],
    ['(5)* SMN in Other 2, CH in site 1', IN_SITE2, CH1, 5, true, 'other-site', 'other-site'],
    ['(6)* SMN outside, CH at home', OUTSIDE, CH0, 6, true, 'outside', 'home'],
    ['(7)* SMN outside, CH in site 1', OUTSIDE, CH1, 7, true, 'outside', 'other-site'],
  ] as const)('%s', (_label, careOf, ch, number, smnIpsec, smnPlace, chPlace) => {
    const c = classifyFigure6(map, { careOf, home: HOME }, ch);
    expect(c).toMatchObject({ case: number, smnIpsec, smnPlace, chPlace });
    expect(c.mode).toBe(careOf === OUTSIDE ? 2 : 1);
  });

  it('is symmetric in the other sites: SMN in site 2 talking to CH2 is case (4)', () => {
    expect(classifyFigure6(map, { careOf: IN_SITE2, home: HOME }, CH2)).toMatchObject({ case: 4, smnPlace: 'ch-site' });
  });

  it('has no case for an outside CH: usual (mobile) IP, no SMN IPsec', () => {
    expect(classifyFigure6(map, { careOf: IN_SITE1, home: HOME }, CH_OUTSIDE)).toEqual({
      mode: 3,
      smn: 'sgw-protected',
      ch: 'outside',
      case: null,
      smnIpsec: false,
    });
    expect(classifyFigure6(map, { careOf: OUTSIDE, home: HOME }, CH_OUTSIDE)).toMatchObject({ mode: 4, case: null });
  });

  it('refuses a home address no SGW protects', () => {
    expect(() => classifyFigure6(map, { careOf: IN_SITE1, home: '198.18.7.7' }, CH0)).toThrow(
      'SMN home address 198.18.7.7 is not protected by any SGW of map figure6',
    );
  });
});
