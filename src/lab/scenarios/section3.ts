// The draft's §3 cases as lab scenarios: the three steps of §3.2, the site that is not
// VPN-routable (§3.4, Figure 4), nesting (Figure 1), and correspondents outside the organization
// (§3.5). The Figure 2 chain is built by chainScenario(n).
import { endAhEsp, icmp40, ipip, nextAh, SGW, smnId, udp } from '../formats.js';
import type { Scenario } from '../scenario.js';
import { chainMap, figure1Map, figure4Map, innermostAddress } from '../topologies.js';
import { careOfIn } from '../world.js';
import { F6 } from './figure6-cases.js';

const REQ = (src: string, dst: string) => udp(src, dst, 40000, 7);
const REP = (src: string, dst: string) => udp(src, dst, 7, 40000);
const S6 = smnId(F6.home);

// The End-End stacks between the SMN in Site 1 and SGW0, which the Next-hop AH on each link wraps.
const threeStepReq = endAhEsp(F6.coa1, F6.sgw0, S6, SGW, REQ(F6.home, F6.ch0));
const threeStepCode5 = endAhEsp(F6.sgw0, F6.coa1, SGW, S6, ipip(F6.ha, F6.coa1, icmp40(F6.sgw0, F6.home, 5)));
const threeStepRep = endAhEsp(F6.sgw0, F6.coa1, SGW, S6, ipip(F6.ha, F6.coa1, REP(F6.ch0, F6.home)));

export const threeStepScenario: Scenario = {
  section: '§3.2',
  title: 'three steps: plain → code 4 → Next-hop AH (SGW1 becomes VPN end) → code 5 from SGW0 → End-End with SGW0',
  map: 'figure6',
  smn: { procedure: 'three-step' },
  place: 'sgw1',
  traffic: { from: 'smn', to: F6.ch0 },
  expect: {
    'sgw1-net': [
      `smn > sgw1: ${REQ(F6.home, F6.ch0)}`, // step 1
      `sgw1 > smn: ${icmp40(F6.sgw1, F6.home, 4)}`,
      `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, S6, SGW, REQ(F6.home, F6.ch0))}`, // step 2
      `sgw1 > smn: ${threeStepCode5}`,
      `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, S6, SGW, threeStepReq)}`, // step 3
      `sgw1 > smn: ${threeStepRep}`,
    ],
    internet: [
      `sgw1 > sgw0: ${endAhEsp(F6.sgw1, F6.sgw0, SGW, SGW, REQ(F6.home, F6.ch0))}`, // step 2: SGW1 is the VPN end
      `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, threeStepCode5)}`,
      `sgw1 > sgw0: ${nextAh(F6.sgw1, F6.sgw0, SGW, SGW, threeStepReq)}`,
      `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, threeStepRep)}`,
    ],
    'sgw0-net': [
      `sgw0 > ha: ${icmp40(F6.sgw0, F6.home, 5)}`,
      `ha > sgw0: ${ipip(F6.ha, F6.coa1, icmp40(F6.sgw0, F6.home, 5))}`,
      `sgw0 > ch0: ${REQ(F6.home, F6.ch0)}`,
      `ch0 > ha: ${REP(F6.ch0, F6.home)}`,
      `ha > sgw0: ${ipip(F6.ha, F6.coa1, REP(F6.ch0, F6.home))}`,
    ],
  },
};

/** Figure 4 addresses. */
const F4 = {
  home: '10.0.1.100',
  coa: '10.5.0.100',
  sgw1: '198.18.5.1',
  sgw2: '198.18.2.1',
  sgw3: '10.0.0.3',
  ha: '10.0.1.2',
  ch: '10.0.1.10',
} as const;
const S4 = smnId(F4.home);

// The End-End stacks between the SMN and SGW2 (step 2) or SGW3 (step 3), which the Next-hop AHs wrap.
const site34ReqToSgw2 = endAhEsp(F4.coa, F4.sgw2, S4, SGW, REQ(F4.home, F4.ch));
const site34ReqToSgw3 = endAhEsp(F4.coa, F4.sgw3, S4, SGW, REQ(F4.home, F4.ch));
const site34Code5 = endAhEsp(F4.sgw3, F4.coa, SGW, S4, ipip(F4.ha, F4.coa, icmp40(F4.sgw3, F4.home, 5)));
const site34Rep = endAhEsp(F4.sgw3, F4.coa, SGW, S4, ipip(F4.ha, F4.coa, REP(F4.ch, F4.home)));

export const site34Scenario: Scenario = {
  section: '§3.4',
  title:
    'SMN in a site that is not VPN-routable: End-End to the Border-SGW fails at SGW3 (code 5), then stacked ' +
    'Next-hop layers for SGW1 and SGW2',
  map: figure4Map,
  place: 'sgw1',
  traffic: { from: 'smn', to: F4.ch },
  expect: {
    'sgw1-net': [
      `smn > sgw1: ${nextAh(F4.coa, F4.sgw1, S4, SGW, site34ReqToSgw2)}`, // step 2
      `sgw1 > smn: ${site34Code5}`,
      `smn > sgw1: ${nextAh(F4.coa, F4.sgw1, S4, SGW, nextAh(F4.coa, F4.sgw2, S4, SGW, site34ReqToSgw3))}`, // step 3
      `sgw1 > smn: ${site34Rep}`,
    ],
    internet: [
      `sgw1 > sgw2: ${site34ReqToSgw2}`,
      `sgw2 > sgw1: ${site34Code5}`,
      `sgw1 > sgw2: ${nextAh(F4.coa, F4.sgw2, S4, SGW, site34ReqToSgw3)}`,
      `sgw2 > sgw1: ${site34Rep}`,
    ],
    'sgw2-net': [
      `sgw2 > sgw3: ${endAhEsp(F4.sgw2, F4.sgw3, SGW, SGW, REQ(F4.home, F4.ch))}`,
      `sgw3 > sgw2: ${nextAh(F4.sgw3, F4.sgw2, SGW, SGW, site34Code5)}`,
      `sgw2 > sgw3: ${nextAh(F4.sgw2, F4.sgw3, SGW, SGW, site34ReqToSgw3)}`,
      `sgw3 > sgw2: ${nextAh(F4.sgw3, F4.sgw2, SGW, SGW, site34Rep)}`,
    ],
    'sgw3-net': [
      `sgw3 > ha: ${icmp40(F4.sgw3, F4.home, 5)}`,
      `ha > sgw3: ${ipip(F4.ha, F4.coa, icmp40(F4.sgw3, F4.home, 5))}`,
      `sgw3 > ch: ${REQ(F4.home, F4.ch)}`,
      `ch > ha: ${REP(F4.ch, F4.home)}`,
      `ha > sgw3: ${ipip(F4.ha, F4.coa, REP(F4.ch, F4.home))}`,
    ],
  },
};

/** Figure 1 addresses: SGW0 (10.0.0.2 outside) behind SGW1; the SMN visits SGW3's network, nested behind SGW2. */
const F1 = {
  home: '10.0.1.100',
  coa: '10.1.1.100',
  sgw0: '10.0.0.2',
  sgw1: '198.18.1.1',
  sgw2: '198.18.2.1',
  sgw3: '10.1.0.2',
  ha: '10.0.1.2',
  ch: '10.0.1.10',
} as const;
const S1 = smnId(F1.home);

// The reply End-End from SGW0 to the SMN, which each link's Next-hop AH wraps.
const figure1Rep = endAhEsp(F1.sgw0, F1.coa, SGW, S1, ipip(F1.ha, F1.coa, REP(F1.ch, F1.home)));

export const figure1Scenario: Scenario = {
  section: 'Figure 1',
  title:
    'nesting: SMN behind SGW3 (behind SGW2) talks to CH behind SGW0 (behind SGW1); the Next-hop AH is replaced at ' +
    'SGW3, SGW2, SGW1',
  map: figure1Map,
  place: 'sgw3',
  traffic: { from: 'smn', to: F1.ch },
  expect: {
    'sgw3-net': [
      `smn > sgw3: ${nextAh(F1.coa, F1.sgw3, S1, SGW, endAhEsp(F1.coa, F1.sgw0, S1, SGW, REQ(F1.home, F1.ch)))}`,
      `sgw3 > smn: ${figure1Rep}`,
    ],
    'sgw2-net': [
      `sgw3 > sgw2: ${nextAh(F1.sgw3, F1.sgw2, SGW, SGW, endAhEsp(F1.coa, F1.sgw0, S1, SGW, REQ(F1.home, F1.ch)))}`,
      `sgw2 > sgw3: ${nextAh(F1.sgw2, F1.sgw3, SGW, SGW, figure1Rep)}`,
    ],
    internet: [
      `sgw2 > sgw1: ${nextAh(F1.sgw2, F1.sgw1, SGW, SGW, endAhEsp(F1.coa, F1.sgw0, S1, SGW, REQ(F1.home, F1.ch)))}`,
      `sgw1 > sgw2: ${nextAh(F1.sgw1, F1.sgw2, SGW, SGW, figure1Rep)}`,
    ],
    'sgw1-net': [
      `sgw1 > sgw0: ${nextAh(F1.sgw1, F1.sgw0, SGW, SGW, endAhEsp(F1.coa, F1.sgw0, S1, SGW, REQ(F1.home, F1.ch)))}`,
      `sgw0 > sgw1: ${nextAh(F1.sgw0, F1.sgw1, SGW, SGW, figure1Rep)}`,
    ],
    'sgw0-net': [
      `sgw0 > ch: ${REQ(F1.home, F1.ch)}`,
      `ch > ha: ${REP(F1.ch, F1.home)}`,
      `ha > sgw0: ${ipip(F1.ha, F1.coa, REP(F1.ch, F1.home))}`,
    ],
  },
};

// The reply as SGW0 sends it to the SMN in Site 1 (End-End; the Next-hop AH for SGW1 wraps it on the Internet).
const outsideRep = endAhEsp(F6.sgw0, F6.coa1, SGW, S6, ipip(F6.ha, F6.coa1, REP(F6.chx, F6.home)));

export const outsideMobileIpScenario: Scenario = {
  section: '§3.5',
  title: 'CH outside the organization, Mobile IP without IPsec: Next-hop AH for SGW1 only, the reply through the HA',
  map: 'figure6',
  smn: { outsideCh: 'mobile-ip' },
  world: { plainInbound: { sgw0: 'pass' } },
  place: 'sgw1',
  traffic: { from: 'smn', to: F6.chx },
  expect: {
    'sgw1-net': [
      `smn > sgw1: ${REQ(F6.home, F6.chx)}`,
      `sgw1 > smn: ${icmp40(F6.sgw1, F6.home, 4)}`,
      `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, S6, SGW, REQ(F6.home, F6.chx))}`,
      `sgw1 > smn: ${outsideRep}`,
    ],
    internet: [
      `sgw1 > chx: ${REQ(F6.home, F6.chx)}`,
      `chx > sgw0: ${REP(F6.chx, F6.home)}`,
      `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, outsideRep)}`,
    ],
    'sgw0-net': [`sgw0 > ha: ${REP(F6.chx, F6.home)}`, `ha > sgw0: ${ipip(F6.ha, F6.coa1, REP(F6.chx, F6.home))}`],
  },
};

export const outsideDirectScenario: Scenario = {
  section: '§3.5 (direct)',
  title: 'CH outside, SMN outside: direct care-of communication by usual IP',
  map: 'figure6',
  smn: { outsideCh: 'direct' },
  place: 'outside',
  traffic: { from: 'smn', to: F6.chx },
  expect: { internet: [`smn > chx: ${REQ(F6.out, F6.chx)}`, `chx > smn: ${REP(F6.chx, F6.out)}`] },
};

export const outsideTranslatedScenario: Scenario = {
  section: '§3.5 (direct, translated)',
  title:
    "CH outside, SMN in Site 1: its care-of address talks to the CH by usual IP, translated to SGW1's global address",
  map: 'figure6',
  smn: { outsideCh: 'direct' },
  world: { natOutside: ['sgw1'] },
  place: 'sgw1',
  traffic: { from: 'smn', to: F6.chx },
  expect: {
    'sgw1-net': [`smn > sgw1: ${REQ(F6.coa1, F6.chx)}`, `sgw1 > smn: ${REP(F6.chx, F6.coa1)}`],
    // The global port is drawn at random (issue 10 hole 13): `*` in the expectation.
    internet: [`sgw1 > chx: ${udp(F6.sgw1, F6.chx, '*', 7)}`, `chx > sgw1: ${udp(F6.chx, F6.sgw1, 7, '*')}`],
  },
};

export const section3Scenarios: Scenario[] = [
  threeStepScenario,
  site34Scenario,
  figure1Scenario,
  outsideMobileIpScenario,
  outsideDirectScenario,
  outsideTranslatedScenario,
];

/** Figure 2 with `n` SGWs: the SMN in the innermost visited network, the CH in the innermost home network. */
export function chainScenario(n: number): Scenario & { careOf: string; ch: string; home: string } {
  const map = chainMap(n);
  const first = map.sgw('sgw1')!;
  const home = innermostAddress(0, n - Math.ceil(n / 2), 20);
  const ch = innermostAddress(0, n - Math.ceil(n / 2), 10);
  return {
    section: 'Figure 2',
    title: `chain of ${n} SGWs: the Next-hop AH is replaced at every SGW, the packet never grows`,
    map: () => map,
    place: 'sgw1',
    traffic: { from: 'smn', to: ch },
    expect: {},
    careOf: careOfIn(first),
    ch,
    home,
  };
}
