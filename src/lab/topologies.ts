// The draft's other pictures as network maps: Figure 1 (nested SGWs), Figure 2 (a chain of N
// SGWs between the SMN and its CH) and Figure 4 (§3.4: a site that is not VPN-routable).
import { buildTopology, type NetworkSpec, type SgwSpec, type TopologyMap } from '../topology/map.js';

function build(spec: NetworkSpec): TopologyMap {
  const built = buildTopology(spec);
  if (!built.ok)
    throw new Error(`lab map ${spec.name}: ${built.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return built.map;
}

/** Figure 1: SGW0 behind SGW1 at home, SGW3 behind SGW2 in site 1, SGW5 behind SGW4 in site 2. */
export const figure1Spec: NetworkSpec = {
  name: 'figure1',
  sites: [
    { name: 'home', prefixes: ['10.0.0.0/16'] },
    { name: 'other1', prefixes: ['10.1.0.0/16'] },
    { name: 'other2', prefixes: ['10.2.0.0/16'] },
  ],
  sgws: [
    { name: 'sgw1', site: 'home', inside: '10.0.0.1', outside: '198.18.1.1' },
    { name: 'sgw0', site: 'home', prefixes: ['10.0.1.0/24'], inside: '10.0.1.1', outside: '10.0.0.2', behind: 'sgw1' },
    { name: 'sgw2', site: 'other1', inside: '10.1.0.1', outside: '198.18.2.1' },
    {
      name: 'sgw3',
      site: 'other1',
      prefixes: ['10.1.1.0/24'],
      inside: '10.1.1.1',
      outside: '10.1.0.2',
      behind: 'sgw2',
    },
    { name: 'sgw4', site: 'other2', inside: '10.2.0.1', outside: '198.18.4.1' },
    {
      name: 'sgw5',
      site: 'other2',
      prefixes: ['10.2.1.0/24'],
      inside: '10.2.1.1',
      outside: '10.2.0.2',
      behind: 'sgw4',
    },
  ],
  homeAgents: [{ name: 'ha', address: '10.0.1.2', serves: ['10.0.1.100'] }],
  hosts: [
    { name: 'ch', address: '10.0.1.10' },
    { name: 'ch1', address: '10.1.0.10' },
  ],
};

export function figure1Map(): TopologyMap {
  return build(figure1Spec);
}

/** Nested prefixes, border first: each level's outside address is its parent's network + 2. */
const LEVELS = [
  { prefix: (s: number) => `10.${s}.0.0/16`, base: (s: number) => `10.${s}.0.` },
  { prefix: (s: number) => `10.${s}.1.0/24`, base: (s: number) => `10.${s}.1.` },
  { prefix: (s: number) => `10.${s}.1.128/25`, base: (s: number) => `10.${s}.1.` },
  { prefix: (s: number) => `10.${s}.1.192/26`, base: (s: number) => `10.${s}.1.` },
] as const;
const LEVEL_OFFSET = [0, 0, 128, 192];

/** The SGWs of one site nested `depth` deep, border first, named from `first` upwards (or downwards). */
function nestedSgws(site: string, s: number, depth: number, names: string[], border: string): SgwSpec[] {
  const out: SgwSpec[] = [];
  for (let level = 0; level < depth; level++) {
    const base = LEVELS[level].base(s);
    out.push({
      name: names[level],
      site,
      prefixes: level === 0 ? undefined : [LEVELS[level].prefix(s)],
      inside: `${base}${LEVEL_OFFSET[level] + 1}`,
      outside: level === 0 ? border : `${LEVELS[level - 1].base(s)}${LEVEL_OFFSET[level - 1] + 2}`,
      behind: level === 0 ? undefined : names[level - 1],
    });
  }
  return out;
}

/** Address `offset` in the innermost network of a site nested `depth` deep. */
export function innermostAddress(s: number, depth: number, offset: number): string {
  return `${LEVELS[depth - 1].base(s)}${LEVEL_OFFSET[depth - 1] + offset}`;
}

/**
 * Figure 2: SMN → SGW1 → … → SGW(N) → CH. The first ⌈N/2⌉ SGWs nest around the visited network
 * (SGW1 innermost), the others around the home network (SGW(N) innermost: the SMN's home SGW,
 * protecting its HA and the CH). N = 2..6.
 */
export function chainMap(n: number): TopologyMap {
  if (!Number.isInteger(n) || n < 2 || n > 6) throw new RangeError(`chain length must be 2..6 SGWs, got ${n}`);
  const k = Math.ceil(n / 2);
  const visitedNames = Array.from({ length: k }, (_, i) => `sgw${k - i}`); // border first: sgwk … sgw1
  const homeNames = Array.from({ length: n - k }, (_, i) => `sgw${k + 1 + i}`); // border first: sgw(k+1) … sgwN
  return build({
    name: `chain${n}`,
    sites: [
      { name: 'visited', prefixes: ['10.1.0.0/16'] },
      { name: 'home', prefixes: ['10.0.0.0/16'] },
    ],
    sgws: [
      ...nestedSgws('visited', 1, k, visitedNames, '198.18.1.1'),
      ...nestedSgws('home', 0, n - k, homeNames, '198.18.0.1'),
    ],
    homeAgents: [{ name: 'ha', address: innermostAddress(0, n - k, 3), serves: [innermostAddress(0, n - k, 20)] }],
    hosts: [{ name: 'ch', address: innermostAddress(0, n - k, 10) }],
  });
}

/**
 * Figure 4 (§3.4): Site 1 (SGW1) builds no VPNs; the SMN's home organization has SGW2 at its
 * border and SGW3 nested behind it, protecting the HA and the CH.
 */
export function figure4Map(): TopologyMap {
  return build({
    name: 'figure4',
    sites: [
      { name: 'vpn', prefixes: ['10.0.0.0/16'] },
      { name: 'site1', prefixes: ['10.5.0.0/16'], vpnRoutable: false },
    ],
    sgws: [
      { name: 'sgw2', site: 'vpn', inside: '10.0.0.1', outside: '198.18.2.1' },
      { name: 'sgw3', site: 'vpn', prefixes: ['10.0.1.0/24'], inside: '10.0.1.1', outside: '10.0.0.3', behind: 'sgw2' },
      { name: 'sgw1', site: 'site1', inside: '10.5.0.1', outside: '198.18.5.1' },
    ],
    homeAgents: [{ name: 'ha', address: '10.0.1.2', serves: ['10.0.1.100'] }],
    hosts: [{ name: 'ch', address: '10.0.1.10' }],
  });
}
