// The per-node file (kind: node): role, identity files, interfaces, policy knobs and the role's own
// section, checked on its own and then against the network map it names.
import * as z from 'zod';
import type { Coverage, EspSuite, MacAlg } from '../engine/types.js';
import { ipToU32, prefixMask, u32ToIp } from '../wire/addr.js';
import { formatPrefix, parseAddressOrPrefix, prefixWithin, type SpecIssue, type TopologyMap } from '../topology/map.js';
import { filePath, flag, fromZod, integer, ipv4, list, mapping, name, oneOf, prefix } from './fields.js';

export const NODE_KIND = 'node';

export const ROLES = ['sgw', 'smn', 'ha'] as const;
export type Role = (typeof ROLES)[number];

const MAC_ALGS = ['gmac-aes128', 'hmac-sha256-128'] as const satisfies readonly MacAlg[];
const COVERAGES = ['full', 'headers'] as const satisfies readonly Coverage[];
const ESP_SUITES = ['aes128gcm', 'aes256gcm', 'chacha20poly1305'] as const satisfies readonly EspSuite[];
/** SPIs 1..255 are reserved by IANA (RFC 4303 §2.1). */
export const MIN_MANUAL_SPI = 256;

export interface PolicyKnobs {
  nextHopMac: MacAlg;
  coverage: Coverage;
  esp: EspSuite;
  /** End-End AH in front of the AEAD ESP (draft-faithful; the AEAD already authenticates). */
  endEndAh: boolean;
  icmpRateLimit: { perSecond: number; burst: number };
  /** A new Kp after this many packets to one peer (besides every new n). */
  kpRotationPackets: number;
  /** SGW: plain datagrams from outside to protected hosts (§3.5 usual IP). */
  plainInbound: 'drop' | 'pass';
}

export const DEFAULT_POLICY: PolicyKnobs = {
  nextHopMac: 'gmac-aes128',
  coverage: 'full',
  esp: 'aes128gcm',
  endEndAh: false,
  icmpRateLimit: { perSecond: 10, burst: 20 },
  kpRotationPackets: 1 << 20,
  plainInbound: 'drop',
};

const policy = mapping(
  {
    nextHopMac: oneOf(MAC_ALGS).optional(),
    coverage: oneOf(COVERAGES).optional(),
    esp: oneOf(ESP_SUITES).optional(),
    endEndAh: flag().optional(),
    icmpRateLimit: mapping(
      { perSecond: integer(1, 100000, 10), burst: integer(1, 100000, 20) },
      'icmpRateLimit',
    ).optional(),
    kpRotationPackets: integer(1, 2 ** 32 - 1, 1048576).optional(),
    plainInbound: oneOf(['drop', 'pass'] as const).optional(),
  },
  'policy',
);

/** The UDP transport's port when dataPath.transport is udp and none is given (docs/engine.md §9.1). */
export const DEFAULT_UDP_PORT = 4741;
/** The I/O loop's worker limit (native/io/loop.h kMaxWorkers). */
export const MAX_WORKERS = 64;

/** How the daemon's I/O loops move packets (docs/engine.md §9, docs/operations.md "Data path"). */
export interface DataPath {
  transport: 'raw' | 'udp';
  /** Set exactly when transport is udp. */
  udpPort?: number;
  workers: number;
  pollMicros: number;
}

export const DEFAULT_DATA_PATH: DataPath = { transport: 'raw', workers: 1, pollMicros: 0 };

const dataPath = mapping(
  {
    transport: oneOf(['raw', 'udp'] as const),
    udpPort: integer(1, 65535, DEFAULT_UDP_PORT).optional(),
    workers: integer(1, MAX_WORKERS, 2).optional(),
    pollMicros: integer(0, 100_000, 50).optional(),
  },
  'dataPath',
);

const nodeSchema = mapping(
  {
    kind: z.literal(NODE_KIND),
    name: name('sgw1'),
    role: oneOf(ROLES),
    network: filePath('network.yaml'),
    identity: mapping(
      { key: filePath('keys/sgw1.key'), cert: filePath('keys/sgw1.cert'), ca: filePath('keys/ca.cert') },
      'identity',
    ).optional(),
    interfaces: list(
      mapping(
        {
          name: name('outside'),
          address: ipv4('198.18.1.1'),
          prefixLength: integer(0, 32, 16),
          gateway: ipv4('198.18.0.254').optional(),
        },
        'an interface',
      ),
      'interfaces',
      1,
    ),
    policy: policy.optional(),
    dataPath: dataPath.optional(),
    manualSas: list(
      mapping(
        {
          name: name('to-gwb'),
          peer: ipv4('198.18.20.1'),
          local: prefix('10.10.0.0/24'),
          remote: prefix('10.20.0.0/24'),
          suite: oneOf(ESP_SUITES),
          spiOut: integer(MIN_MANUAL_SPI, 2 ** 32 - 1, 4097),
          spiIn: integer(MIN_MANUAL_SPI, 2 ** 32 - 1, 8194),
          keyOut: filePath('keys/gwa-to-gwb.key'),
          keyIn: filePath('keys/gwb-to-gwa.key'),
        },
        'a manual SA',
      ),
      'manual SAs',
    ).optional(),
    sgw: mapping({ inside: name('inside'), outside: name('outside') }, 'the sgw section').optional(),
    smn: mapping(
      {
        homeAddress: ipv4('10.0.0.100'),
        homeAgent: name('ha'),
        borderSgws: list(name('sgw0'), 'Border-SGW names such as sgw0', 1),
      },
      'the smn section',
    ).optional(),
    ha: mapping(
      {
        serves: list(prefix('10.0.0.100', true), 'home addresses or prefixes such as 10.0.0.100', 1),
        /** The binding journal; default <state dir>/<node>/bindings.journal (mipsec ha --state-dir). */
        bindings: filePath('state/ha.bindings').optional(),
      },
      'the ha section',
    ).optional(),
  },
  'a node',
);

export type NodeDocument = z.infer<typeof nodeSchema>;
export type NodeConfig = Omit<NodeDocument, 'policy' | 'dataPath'> & { policy: PolicyKnobs; dataPath: DataPath };

/** Role sections and the fields each role needs or must not have. */
const ROLE_RULES: Record<Role, { needs: (keyof NodeDocument)[]; refuses: (keyof NodeDocument)[]; why: string }> = {
  sgw: { needs: ['identity', 'sgw'], refuses: ['smn', 'ha'], why: 'an SGW' },
  smn: { needs: ['identity', 'smn'], refuses: ['sgw', 'ha', 'manualSas'], why: 'an SMN' },
  // The HA does no IPsec: the home SGW does it (draft §2.1).
  ha: {
    needs: ['ha'],
    refuses: ['identity', 'policy', 'sgw', 'smn', 'manualSas'],
    why: 'an HA (it does no IPsec, draft §2.1)',
  },
};

const SECTION_EXAMPLES: Partial<Record<keyof NodeDocument, string>> = {
  identity: 'identity: { key: keys/NAME.key, cert: keys/NAME.cert, ca: keys/ca.cert }',
  sgw: 'sgw: { inside: inside, outside: outside } (interface names)',
  smn: 'smn: { homeAddress: 10.0.0.100, homeAgent: ha, borderSgws: [sgw0] }',
  ha: 'ha: { serves: [10.0.0.100] }',
};

export type NodeResult = { ok: true; node: NodeConfig } | { ok: false; issues: SpecIssue[] };

/** Checks a parsed YAML document as a node config, on its own (no network map yet). */
export function nodeFromDocument(doc: unknown): NodeResult {
  const parsed = nodeSchema.safeParse(doc);
  if (!parsed.success) return { ok: false, issues: fromZod(parsed.error.issues) };
  const node = parsed.data;
  const issues: SpecIssue[] = [];
  const rules = ROLE_RULES[node.role];
  for (const field of rules.needs) {
    if (node[field] === undefined)
      issues.push({ path: [field], message: `missing; ${rules.why} needs it, e.g. ${SECTION_EXAMPLES[field]}` });
  }
  for (const field of rules.refuses) {
    if (node[field] !== undefined)
      issues.push({ path: [field], message: `not used by ${rules.why}; remove it (role is ${node.role})` });
  }
  const seenNames = new Set<string>();
  const seenAddresses = new Set<string>();
  node.interfaces.forEach((itf, i) => {
    if (seenNames.has(itf.name))
      issues.push({
        path: ['interfaces', i, 'name'],
        message: `duplicate interface name ${JSON.stringify(itf.name)}; give each interface its own name`,
      });
    if (seenAddresses.has(itf.address))
      issues.push({
        path: ['interfaces', i, 'address'],
        message: `${itf.address} is already used by another interface`,
      });
    seenNames.add(itf.name);
    seenAddresses.add(itf.address);
    const mask = prefixMask(itf.prefixLength);
    if (itf.gateway !== undefined && ((ipToU32(itf.gateway) ^ ipToU32(itf.address)) & mask) !== 0) {
      const network = u32ToIp((ipToU32(itf.address) & mask) >>> 0);
      issues.push({
        path: ['interfaces', i, 'gateway'],
        message:
          `${itf.gateway} is not on this interface's network ${network}/${itf.prefixLength}; use a router ` +
          `address of that network`,
      });
    }
  });
  if (node.sgw) {
    for (const side of ['inside', 'outside'] as const) {
      if (!seenNames.has(node.sgw[side])) {
        issues.push({
          path: ['sgw', side],
          message: `no interface named ${JSON.stringify(node.sgw[side])} (interfaces: ${[...seenNames].join(', ')})`,
        });
      }
    }
    if (node.sgw.inside === node.sgw.outside)
      issues.push({
        path: ['sgw', 'outside'],
        message: `the inside and outside interfaces must differ (both are ${JSON.stringify(node.sgw.inside)})`,
      });
  }
  issues.push(...manualSaIssues(node.manualSas ?? []));
  if (node.dataPath?.transport === 'raw' && node.dataPath.udpPort !== undefined) {
    const fix = `remove it, or set transport: udp to carry the packets in UDP port ${node.dataPath.udpPort}`;
    issues.push({ path: ['dataPath', 'udpPort'], message: `not used with transport raw; ${fix}` });
  }
  if (issues.length > 0) return { ok: false, issues };
  const knobs: PolicyKnobs = { ...DEFAULT_POLICY, ...given(node.policy) };
  return { ok: true, node: { ...node, policy: knobs, dataPath: dataPathOf(node.dataPath) } };
}

/** The fields a config sets (an optional field left out stays at its default). */
function given<T extends object>(section: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(section ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The data-path settings with defaults filled in; udp without a port takes DEFAULT_UDP_PORT. */
function dataPathOf(section: NodeDocument['dataPath']): DataPath {
  const settings: DataPath = { ...DEFAULT_DATA_PATH, ...given(section) };
  if (settings.transport === 'udp') settings.udpPort ??= DEFAULT_UDP_PORT;
  return settings;
}

/** SPIs are distinct within an entry, and inbound SPIs across entries (the engine finds an inbound SA by its SPI). */
function manualSaIssues(entries: NonNullable<NodeDocument['manualSas']>): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const names = new Map<string, number>();
  const inbound = new Map<number, number>();
  entries.forEach((sa, i) => {
    const earlier = names.get(sa.name);
    if (earlier !== undefined)
      issues.push({
        path: ['manualSas', i, 'name'],
        message:
          `duplicate name ${JSON.stringify(sa.name)} (already used by manualSas[${earlier}]); give each ` +
          `manual SA its own name`,
      });
    else names.set(sa.name, i);
    if (sa.spiOut === sa.spiIn)
      issues.push({
        path: ['manualSas', i, 'spiIn'],
        message:
          `expected an SPI other than spiOut, got ${sa.spiIn} for both; use distinct SPIs per direction, ` +
          `e.g. spiOut: ${sa.spiOut}, spiIn: ${sa.spiOut + 1}`,
      });
    const sameIn = inbound.get(sa.spiIn);
    if (sameIn !== undefined)
      issues.push({
        path: ['manualSas', i, 'spiIn'],
        message:
          `expected an inbound SPI no other manual SA uses, got ${sa.spiIn} (also ` +
          `manualSas[${sameIn}].spiIn); inbound ESP is matched by its SPI alone`,
      });
    else inbound.set(sa.spiIn, i);
    if (sa.keyOut === sa.keyIn)
      issues.push({
        path: ['manualSas', i, 'keyIn'],
        message:
          `expected another key file than keyOut, got ${JSON.stringify(sa.keyIn)} for both; each direction ` +
          `has its own key, e.g. keyIn: keys/${sa.name}-in.key`,
      });
  });
  return issues;
}

/** Checks that the names and addresses a node config uses exist in the network map. */
export function crossCheck(node: NodeConfig, map: TopologyMap, mapLabel: string): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const add = (path: (string | number)[], message: string) => issues.push({ path, message });
  const interfaceAddress = (itfName: string) => node.interfaces.findIndex((i) => i.name === itfName);

  if (node.role === 'sgw' && node.sgw) {
    const sgw = map.sgw(node.name);
    if (!sgw)
      return [
        {
          path: ['name'],
          message:
            `no SGW named ${JSON.stringify(node.name)} in ${mapLabel} ` +
            `(SGWs: ${map.sgws.map((s) => s.name).join(', ')})`,
        },
      ];
    for (const side of ['inside', 'outside'] as const) {
      const i = interfaceAddress(node.sgw[side]);
      const address = node.interfaces[i].address;
      if (address !== sgw[side])
        add(
          ['interfaces', i, 'address'],
          `${address} differs from ${sgw.name}'s ${side} address ${sgw[side]} in ${mapLabel}; make them equal`,
        );
    }
  }

  if (node.role === 'ha' && node.ha) {
    const ha = map.homeAgent(node.name);
    if (!ha)
      return [
        {
          path: ['name'],
          message:
            `no HA named ${JSON.stringify(node.name)} in ${mapLabel} ` +
            `(HAs: ${map.homeAgents.map((h) => h.name).join(', ') || 'none'})`,
        },
      ];
    if (!node.interfaces.some((i) => i.address === ha.address))
      add(['interfaces'], `no interface has ${ha.name}'s address ${ha.address} from ${mapLabel}; add one`);
    node.ha.serves.forEach((text, j) => {
      const served = parseAddressOrPrefix(text);
      if (!ha.serves.some((p) => prefixWithin(served, p))) {
        add(
          ['ha', 'serves', j],
          `${text} is not among the home addresses ${mapLabel} gives ${ha.name} ` +
            `(${ha.serves.map(formatPrefix).join(', ')})`,
        );
      }
    });
  }

  if (node.role === 'smn' && node.smn) {
    const home = node.smn.homeAddress;
    const servedBy = map.homeAgentFor(home);
    if (!servedBy)
      add(['smn', 'homeAddress'], `${home} is not served by any HA of ${mapLabel}; add it to an HA's serves`);
    const ha = map.homeAgent(node.smn.homeAgent);
    if (!ha)
      add(
        ['smn', 'homeAgent'],
        `no HA named ${JSON.stringify(node.smn.homeAgent)} in ${mapLabel} ` +
          `(HAs: ${map.homeAgents.map((h) => h.name).join(', ') || 'none'})`,
      );
    else if (servedBy && ha !== servedBy)
      add(['smn', 'homeAgent'], `${ha.name} does not serve ${home}; ${servedBy.name} does`);
    const borders = map.borderSgws();
    node.smn.borderSgws.forEach((sgwName, j) => {
      const sgw = map.sgw(sgwName);
      if (!sgw)
        add(
          ['smn', 'borderSgws', j],
          `no SGW named ${JSON.stringify(sgwName)} in ${mapLabel} ` +
            `(Border-SGWs: ${borders.map((s) => s.name).join(', ')})`,
        );
      else if (!borders.includes(sgw))
        add(
          ['smn', 'borderSgws', j],
          `${sgwName} is not a Border-SGW of the VPN-routable system ` +
            `(Border-SGWs: ${borders.map((s) => s.name).join(', ')})`,
        );
    });
  }

  return issues;
}
