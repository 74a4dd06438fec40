// The draft's Figure 6 cases (§4.4, §4.5.1–§4.5.7) as lab scenarios: where the SMN is, who sends
// one probe to whom (the echo makes it both directions), and the stack of every packet on every
// link, written in the draft's [Packet Format] notation (formats.ts).
import { endAhEsp, icmp40, ipip, nextAh, SGW, smnId, udp } from '../formats.js';
import type { Scenario } from '../scenario.js';

/** Figure 6 addresses (examples/figure6/network.yaml, DESIGN §7). */
export const F6 = {
  home: '10.0.0.100',
  coa1: '10.1.0.100',
  coa2: '10.2.0.100',
  out: '198.18.7.100',
  sgw0: '198.18.0.1',
  sgw1: '198.18.1.1',
  sgw2: '198.18.2.1',
  ha: '10.0.0.2',
  ch0: '10.0.0.10',
  ch1: '10.1.0.10',
  ch2: '10.2.0.10',
  chx: '198.18.9.10',
} as const;

const SMN = smnId(F6.home);
const REQ = (src: string, dst: string) => udp(src, dst, 40000, 7);
const REP = (src: string, dst: string) => udp(src, dst, 7, 40000);
const REG = (src: string, dst: string) => udp(src, dst, 434, 434);

// The End-End stacks between the SMN in Site 1 and an SGW, which the Next-hop AH on each link wraps.
const e2eRegUp = endAhEsp(F6.coa1, F6.sgw0, SMN, SGW, REG(F6.coa1, F6.ha));
const e2eRegDown = endAhEsp(F6.sgw0, F6.coa1, SGW, SMN, REG(F6.ha, F6.coa1));
const e2eReqCh0 = endAhEsp(F6.coa1, F6.sgw0, SMN, SGW, REQ(F6.home, F6.ch0));
const e2eRepCh0 = endAhEsp(F6.sgw0, F6.coa1, SGW, SMN, ipip(F6.ha, F6.coa1, REP(F6.ch0, F6.home)));
const e2eReqFromCh1 = endAhEsp(F6.sgw0, F6.coa1, SGW, SMN, ipip(F6.ha, F6.coa1, REQ(F6.ch1, F6.home)));
const e2eReqCh2 = endAhEsp(F6.coa1, F6.sgw2, SMN, SGW, REQ(F6.home, F6.ch2));
const e2eRepCh2 = endAhEsp(F6.sgw0, F6.coa1, SGW, SMN, ipip(F6.ha, F6.coa1, REP(F6.ch2, F6.home)));

export const figure6Scenarios: Scenario[] = [
  {
    section: '§4.4',
    title: 'Mobile IP registration from Site 1 through SGW1 and SGW0 (<1>–<5>)',
    map: 'figure6',
    place: 'sgw1',
    traffic: 'registration',
    expect: {
      'sgw1-net': [
        `smn > sgw1: ${e2eRegUp}`, // <1>
        `sgw1 > smn: ${icmp40(F6.sgw1, F6.coa1, 4)}`, // <2>
        `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, SMN, SGW, e2eRegUp)}`, // <3>
        `sgw1 > smn: ${e2eRegDown}`,
      ],
      internet: [
        `sgw1 > sgw0: ${nextAh(F6.sgw1, F6.sgw0, SGW, SGW, e2eRegUp)}`, // <4>
        `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, e2eRegDown)}`, // <5>
      ],
      'sgw0-net': [`sgw0 > ha: ${REG(F6.coa1, F6.ha)}`, `ha > sgw0: ${REG(F6.ha, F6.coa1)}`],
    },
  },
  {
    section: '§4.5.1',
    title: 'SMN and CH both in the home network: usual IP',
    map: 'figure6',
    place: 'home',
    traffic: { from: 'smn', to: F6.ch0 },
    expect: { 'sgw0-net': [`smn > ch0: ${REQ(F6.home, F6.ch0)}`, `ch0 > smn: ${REP(F6.ch0, F6.home)}`] },
  },
  {
    section: '§4.5.2',
    title: 'SMN at home, CH in Site 1: VPN between SGW0 and SGW1',
    map: 'figure6',
    place: 'home',
    traffic: { from: 'smn', to: F6.ch1 },
    expect: {
      'sgw0-net': [`smn > sgw0: ${REQ(F6.home, F6.ch1)}`, `sgw0 > smn: ${REP(F6.ch1, F6.home)}`],
      internet: [
        `sgw0 > sgw1: ${endAhEsp(F6.sgw0, F6.sgw1, SGW, SGW, REQ(F6.home, F6.ch1))}`, // <1>
        `sgw1 > sgw0: ${endAhEsp(F6.sgw1, F6.sgw0, SGW, SGW, REP(F6.ch1, F6.home))}`, // <2>
      ],
      'sgw1-net': [`sgw1 > ch1: ${REQ(F6.home, F6.ch1)}`, `ch1 > sgw1: ${REP(F6.ch1, F6.home)}`],
    },
  },
  {
    section: '§4.5.3',
    title: 'SMN in Site 1, CH in the home network',
    map: 'figure6',
    place: 'sgw1',
    traffic: { from: 'smn', to: F6.ch0 },
    expect: {
      'sgw1-net': [
        `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, SMN, SGW, e2eReqCh0)}`, // <1>
        `sgw1 > smn: ${e2eRepCh0}`,
      ],
      internet: [
        `sgw1 > sgw0: ${nextAh(F6.sgw1, F6.sgw0, SGW, SGW, e2eReqCh0)}`, // <2>
        `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, e2eRepCh0)}`, // <3>
      ],
      'sgw0-net': [
        `sgw0 > ch0: ${REQ(F6.home, F6.ch0)}`,
        `ch0 > ha: ${REP(F6.ch0, F6.home)}`,
        `ha > sgw0: ${ipip(F6.ha, F6.coa1, REP(F6.ch0, F6.home))}`,
      ],
    },
  },
  {
    section: '§4.5.4',
    title: 'SMN and CH both in Site 1: direct there, back through SGW0 and the HA',
    map: 'figure6',
    place: 'sgw1',
    traffic: { from: 'ch1', to: F6.home },
    expect: {
      'sgw1-net': [
        `ch1 > sgw1: ${REQ(F6.ch1, F6.home)}`,
        `sgw1 > smn: ${e2eReqFromCh1}`,
        `smn > ch1: ${REP(F6.home, F6.ch1)}`,
      ],
      internet: [
        `sgw1 > sgw0: ${endAhEsp(F6.sgw1, F6.sgw0, SGW, SGW, REQ(F6.ch1, F6.home))}`, // <1>
        `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, e2eReqFromCh1)}`, // <2>
      ],
      'sgw0-net': [`sgw0 > ha: ${REQ(F6.ch1, F6.home)}`, `ha > sgw0: ${ipip(F6.ha, F6.coa1, REQ(F6.ch1, F6.home))}`],
    },
  },
  {
    section: '§4.5.5',
    title: 'SMN in Site 1, CH in Site 2',
    map: 'figure6',
    place: 'sgw1',
    traffic: { from: 'smn', to: F6.ch2 },
    expect: {
      'sgw1-net': [
        `smn > sgw1: ${nextAh(F6.coa1, F6.sgw1, SMN, SGW, e2eReqCh2)}`, // <1>
        `sgw1 > smn: ${e2eRepCh2}`,
      ],
      internet: [
        `sgw1 > sgw2: ${nextAh(F6.sgw1, F6.sgw2, SGW, SGW, e2eReqCh2)}`, // <2>
        `sgw2 > sgw0: ${endAhEsp(F6.sgw2, F6.sgw0, SGW, SGW, REP(F6.ch2, F6.home))}`, // <3>
        `sgw0 > sgw1: ${nextAh(F6.sgw0, F6.sgw1, SGW, SGW, e2eRepCh2)}`, // <4>
      ],
      'sgw2-net': [`sgw2 > ch2: ${REQ(F6.home, F6.ch2)}`, `ch2 > sgw2: ${REP(F6.ch2, F6.home)}`],
      'sgw0-net': [`sgw0 > ha: ${REP(F6.ch2, F6.home)}`, `ha > sgw0: ${ipip(F6.ha, F6.coa1, REP(F6.ch2, F6.home))}`],
    },
  },
  {
    section: '§4.5.6',
    title: 'SMN outside, CH in the home network',
    map: 'figure6',
    place: 'outside',
    traffic: { from: 'smn', to: F6.ch0 },
    expect: {
      internet: [
        `smn > sgw0: ${endAhEsp(F6.out, F6.sgw0, SMN, SGW, REQ(F6.home, F6.ch0))}`, // <1>
        `sgw0 > smn: ${endAhEsp(F6.sgw0, F6.out, SGW, SMN, ipip(F6.ha, F6.out, REP(F6.ch0, F6.home)))}`, // <2>
      ],
      'sgw0-net': [
        `sgw0 > ch0: ${REQ(F6.home, F6.ch0)}`,
        `ch0 > ha: ${REP(F6.ch0, F6.home)}`,
        `ha > sgw0: ${ipip(F6.ha, F6.out, REP(F6.ch0, F6.home))}`,
      ],
    },
  },
  {
    section: '§4.5.7',
    title: 'SMN outside knowing only SGW0, CH in Site 1: SGW0 decrypts and re-encrypts (§3.3)',
    map: 'figure6',
    place: 'outside',
    traffic: { from: 'smn', to: F6.ch1 },
    expect: {
      internet: [
        `smn > sgw0: ${endAhEsp(F6.out, F6.sgw0, SMN, SGW, REQ(F6.home, F6.ch1))}`, // <1>
        `sgw0 > sgw1: ${endAhEsp(F6.sgw0, F6.sgw1, SGW, SGW, REQ(F6.home, F6.ch1))}`, // <2>
        `sgw1 > sgw0: ${endAhEsp(F6.sgw1, F6.sgw0, SGW, SGW, REP(F6.ch1, F6.home))}`, // <3>
        `sgw0 > smn: ${endAhEsp(F6.sgw0, F6.out, SGW, SMN, ipip(F6.ha, F6.out, REP(F6.ch1, F6.home)))}`, // <4>
      ],
      'sgw1-net': [`sgw1 > ch1: ${REQ(F6.home, F6.ch1)}`, `ch1 > sgw1: ${REP(F6.ch1, F6.home)}`],
      'sgw0-net': [`sgw0 > ha: ${REP(F6.ch1, F6.home)}`, `ha > sgw0: ${ipip(F6.ha, F6.out, REP(F6.ch1, F6.home))}`],
    },
  },
  {
    section: '§4.5.7 (optimized)',
    title: 'SMN outside knowing SGW1, CH in Site 1: VPN straight to SGW1',
    map: 'figure6',
    smn: { knownBorders: ['sgw0', 'sgw1'] },
    place: 'outside',
    traffic: { from: 'smn', to: F6.ch1 },
    expect: {
      internet: [
        `smn > sgw1: ${endAhEsp(F6.out, F6.sgw1, SMN, SGW, REQ(F6.home, F6.ch1))}`, // <1>
        `sgw1 > sgw0: ${endAhEsp(F6.sgw1, F6.sgw0, SGW, SGW, REP(F6.ch1, F6.home))}`, // <2>
        `sgw0 > smn: ${endAhEsp(F6.sgw0, F6.out, SGW, SMN, ipip(F6.ha, F6.out, REP(F6.ch1, F6.home)))}`, // <3>
      ],
      'sgw1-net': [`sgw1 > ch1: ${REQ(F6.home, F6.ch1)}`, `ch1 > sgw1: ${REP(F6.ch1, F6.home)}`],
      'sgw0-net': [`sgw0 > ha: ${REP(F6.ch1, F6.home)}`, `ha > sgw0: ${ipip(F6.ha, F6.out, REP(F6.ch1, F6.home))}`],
    },
  },
];
