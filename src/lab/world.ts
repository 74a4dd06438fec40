// A world: every node of a network map running its role on a Network, with one CA, certificates,
// links (one per SGW-protected network plus the Internet), routes, echo responders on the
// correspondent hosts and one SMN that can move. The lab's scenarios run on it; they see the
// roles and the Network interface only, so a Linux Network can carry the same scenarios.
import { createEngine, NativeEngine, type Engine, type EngineImpl } from '../engine/index.js';
import { CertCache } from '../keys/cache.js';
import { issueCertificate, NSID_CA_LABEL, type CaKey, type Certificate } from '../keys/certificate.js';
import { generateCaKey, generateX25519, type Identity } from '../keys/keyfile.js';
import { parseName } from '../keys/names.js';
import { MemoryNetwork } from '../net/memory.js';
import type { Host, HostOptions, Network } from '../net/types.js';
import type { HomeAgent } from '../roles/ha/home-agent.js';
import { KeyLog } from '../roles/common/keylog.js';
import type { SecurityGateway } from '../roles/sgw/gateway.js';
import type { MobileNode, OutsidePolicy } from '../roles/smn/mobile-node.js';
import type { Procedure } from '../roles/smn/paths.js';
import { startRole, type SkipDeps } from '../roles/start.js';
import type { Sgw, TopologyMap } from '../topology/map.js';
import { prefixMask, u32ToIp } from '../wire/addr.js';
import { IpProto } from '../wire/ipv4.js';
import { echoServer } from './traffic.js';

export const INTERNET_LINK = 'internet';
const INTERNET_PREFIX_LENGTH = 16;
/** Where an SMN outside the organization gets its care-of address (§3.3). */
export const OUTSIDE_CARE_OF = '198.18.7.100';
const DAY_S = 86400;

export interface SmnSetup {
  /** Home address; default the first one the map's first HA serves. */
  home?: string;
  procedure?: Procedure;
  knownBorders?: string[];
  outsideCh?: OutsidePolicy;
}

export interface WorldOptions {
  map: TopologyMap;
  engine: EngineImpl;
  smn?: SmnSetup;
  /** Per SGW name. */
  plainInbound?: Record<string, 'drop' | 'pass'>;
  admitsVisitor?: Record<string, (home: string) => boolean>;
  /** SGW names that translate their inside addresses for usual IP to outside hosts (§3.5). */
  natOutside?: string[];
  /**
   * 'all' (default): every node starts with every certificate; 'minimal': SGWs know only their own SMNs, the SMN its
   * known Border-SGWs.
   */
  certificates?: 'all' | 'minimal';
  /** Virtual start time, Unix ms. */
  startMs?: number;
  /** MN-HA key (HMAC-MD5); default a fixed lab key. */
  mnHaKey?: Uint8Array;
  /** The organization CA; default a fresh one. */
  ca?: { key: CaKey; cert: Certificate };
  /** Identities to use instead of fresh ones from the lab CA, by SKIP name (negative tests: another CA, expired). */
  identities?: Record<string, Identity>;
  /**
   * Where the roles log the SAs they install (default a fresh in-memory KeyLog; `mipsec lab --pcap` also writes them).
   */
  keyLog?: KeyLog;
}

export interface World<N extends Network = MemoryNetwork> {
  network: N;
  map: TopologyMap;
  ca: { key: CaKey; cert: Certificate };
  keyLog: KeyLog;
  engines: Engine[];
  sgws: Map<string, SecurityGateway>;
  ha: HomeAgent;
  smn: MobileNode;
  smnHost: Host;
  identities: Map<string, Identity>;
  /** Moves the SMN: 'home', into the network an SGW protects (by SGW name), or 'outside'. */
  place(where: string, careOf?: string): string;
  addHost(name: string, address: string): Host;
  /** Link name of the network an SGW protects. */
  linkOf(sgw: string): string;
  close(): void;
}

export function netLink(sgw: Sgw): string {
  return `${sgw.name}-net`;
}

/** `network`: what to build on (e.g. a LinuxNetwork); default a new MemoryNetwork starting at `startMs`. */
export function buildWorld<N extends Network = MemoryNetwork>(options: WorldOptions & { network?: N }): World<N> {
  const { map } = options;
  const network = (options.network ?? new MemoryNetwork({ startMs: options.startMs })) as N;
  const nowS = Math.floor(network.clock.now() / 1000);
  const ca = options.ca ?? makeCa(nowS);
  const keyLog = options.keyLog ?? new KeyLog();
  const engines: Engine[] = [];
  const identities = new Map<string, Identity>();
  const identity = (name: string): Identity => {
    let id = identities.get(name);
    if (!id) {
      id = options.identities?.[name] ?? makeIdentity(ca.key, name, nowS);
      identities.set(name, id);
    }
    return id;
  };
  /** A SKIP end of this world: on its host and engine, with the world's clock, map and key log. */
  const skipDeps = (host: Host, engine: Engine, name: string, certs: CertCache): SkipDeps => ({
    host,
    clock: network.clock,
    engine,
    map,
    identity: identity(name),
    certs,
    keyLog,
  });

  network.addLink(INTERNET_LINK);
  for (const sgw of map.sgws) network.addLink(netLink(sgw));

  // One engine per node with a role, made before its host: a Linux host runs its interfaces' loops on it.
  const sgwEngines = new Map<string, Engine>();
  for (const sgw of map.sgws) {
    const engine = createEngine(options.engine);
    engines.push(engine);
    sgwEngines.set(sgw.name, engine);
  }
  const smnEngine = createEngine(options.engine);
  engines.push(smnEngine);

  // SGW hosts: inside on their own network, outside on the parent's network or the Internet.
  for (const sgw of map.sgws) {
    const host = network.addHost(sgw.name, { forwarding: true, engine: nativeOf(sgwEngines.get(sgw.name)!) });
    host.addInterface('inside', netLink(sgw), `${sgw.inside}/${sgw.prefixes[0].length}`);
    if (sgw.behind) {
      host.addInterface('outside', netLink(sgw.behind), `${sgw.outside}/${sgw.behind.prefixes[0].length}`);
      host.addRoute('0.0.0.0/0', { via: sgw.behind.inside });
    } else {
      host.addInterface('outside', INTERNET_LINK, `${sgw.outside}/${INTERNET_PREFIX_LENGTH}`);
    }
    for (const child of map.sgws.filter((s) => s.behind === sgw)) {
      for (const p of child.prefixes) host.addRoute(prefixText(p), { via: child.outside });
    }
    // The lab's Internet routes the sites' private prefixes to their Border-SGWs (in place of NAT).
    if (!sgw.behind) {
      for (const other of map.sgws.filter((s) => !s.behind && s !== sgw)) {
        for (const p of other.prefixes) host.addRoute(prefixText(p), { via: other.outside });
      }
    }
  }

  const internetRoutes = (host: Host) => {
    for (const border of map.sgws.filter((s) => !s.behind))
      for (const p of border.prefixes) host.addRoute(prefixText(p), { via: border.outside });
  };
  const attach = (name: string, address: string, hostOptions: HostOptions): Host => {
    const host = network.addHost(name, hostOptions);
    const sgw = map.protectingSgw(address);
    if (sgw) {
      host.addInterface('eth0', netLink(sgw), `${address}/${sgw.prefixes[0].length}`);
      host.addRoute('0.0.0.0/0', { via: sgw.inside });
    } else {
      host.addInterface('eth0', INTERNET_LINK, `${address}/${INTERNET_PREFIX_LENGTH}`);
      internetRoutes(host);
    }
    return host;
  };
  // Correspondents and extra lab hosts have no role: on a real network they run on their kernel's own stack.
  for (const h of map.hosts) echoServer(attach(h.name, h.address, { plain: true }));
  /** Extra lab hosts (e.g. the §3.5.1 proxy) on the network that holds their address. */
  const addHost = (name: string, address: string): Host => attach(name, address, { plain: true });

  const haSpec = map.homeAgents[0];
  if (!haSpec) throw new Error(`network map ${map.name} has no home agent; a world needs one for its SMN`);
  const home = options.smn?.home ?? u32ToIp(haSpec.serves[0].network);
  const mnHaKey = { spi: 0x1000, key: options.mnHaKey ?? new Uint8Array(16).fill(0x5a) };
  // The HA's RFC 2003 tunnels run on the world's engine implementation (IPIP_ENCAP / IPIP_DECAP); a Linux host's
  // loops run it too, with the HA's bindings compiled into its tables (src/roles/ha/tables.ts).
  // Not in `engines` (indexed by SGW, then the SMN): closed with the world below.
  const haEngine = createEngine(options.engine);
  const ha = startRole({
    role: 'ha',
    host: attach(haSpec.name, haSpec.address, { engine: nativeOf(haEngine) }),
    clock: network.clock,
    engine: haEngine,
    address: haSpec.address,
    homeInterface: 'eth0',
    mobileNodes: [{ homeAddress: home, auth: mnHaKey }],
  });

  const smnName = `smn:${home}`;
  const homeSgw = map.protectingSgw(home)!;
  const minimal = options.certificates === 'minimal';
  const knownBorders = options.smn?.knownBorders ?? [map.chain(homeSgw).at(-1)!.name];

  const sgws = new Map<string, SecurityGateway>();
  for (const sgw of map.sgws) {
    const certs = new CertCache(ca.cert);
    if (!minimal)
      for (const other of map.sgws) if (other !== sgw) certs.add(identity(`sgw:${other.outside}`).cert, nowS);
    if (!minimal || map.homeAgentFor(home)?.sgw === sgw) certs.add(identity(smnName).cert, nowS);
    sgws.set(
      sgw.name,
      startRole({
        role: 'sgw',
        ...skipDeps(network.host(sgw.name), sgwEngines.get(sgw.name)!, `sgw:${sgw.outside}`, certs),
        name: sgw.name,
        plainInbound: options.plainInbound?.[sgw.name],
        admitsVisitor: options.admitsVisitor?.[sgw.name],
        natOutside: options.natOutside?.includes(sgw.name),
      }),
    );
  }

  // Its interface loops hand TCP in the HA's tunnel, once an End-End SA opened it, to the kernel (which owns the
  // home address while away, and whose sockets take the lab's TCP anyway) without JS; the rest of the tunnel — the
  // lab's UDP and ICMP probes, which JS answers — still comes to the SMN role.
  const smnHost = attach('smn', home, {
    engine: nativeOf(smnEngine),
    kernelTunnel: nativeOf(smnEngine) && { from: haSpec.address, to: home, protocol: IpProto.TCP },
  });
  echoServer(smnHost);
  const smnCerts = new CertCache(ca.cert);
  for (const sgw of map.sgws) {
    if (!minimal || knownBorders.includes(sgw.name) || sgw === homeSgw)
      smnCerts.add(identity(`sgw:${sgw.outside}`).cert, nowS);
  }
  const smn = startRole({
    role: 'smn',
    ...skipDeps(smnHost, smnEngine, smnName, smnCerts),
    interface: 'eth0',
    mnHaKey,
    knownBorders,
    procedure: options.smn?.procedure,
    outsideCh: options.smn?.outsideCh,
  });

  const place = (where: string, careOf?: string): string => {
    if (where === 'home') {
      smn.moveTo(netLink(homeSgw), `${home}/${homeSgw.prefixes[0].length}`, homeSgw.inside);
      return home;
    }
    if (where === 'outside') {
      const address = careOf ?? OUTSIDE_CARE_OF;
      smn.moveTo(INTERNET_LINK, `${address}/${INTERNET_PREFIX_LENGTH}`);
      internetRoutes(smnHost);
      return address;
    }
    const sgw = map.sgw(where);
    if (!sgw) throw new Error(`place: no SGW named '${where}' (use 'home', 'outside' or an SGW name)`);
    const address = careOf ?? careOfIn(sgw);
    smn.moveTo(netLink(sgw), `${address}/${sgw.prefixes[0].length}`, sgw.inside);
    return address;
  };

  return {
    network,
    map,
    ca,
    keyLog,
    engines,
    sgws,
    ha,
    smn,
    smnHost,
    identities,
    place,
    addHost,
    linkOf: (name) => netLink(map.sgw(name) ?? failName(name)),
    close: () => {
      smn.close();
      for (const g of sgws.values()) g.close();
      ha.close();
      for (const e of engines) e.close();
      haEngine.close();
      keyLog.clear();
    },
  };
}

/** The engine a Linux host can run its I/O loops on: the native one (the TypeScript engine has no native threads). */
function nativeOf(engine: Engine): NativeEngine | undefined {
  return engine instanceof NativeEngine ? engine : undefined;
}

/** A care-of address in the network `sgw` protects: its network address + 100 (or the middle of a small prefix). */
export function careOfIn(sgw: Sgw): string {
  const p = sgw.prefixes[0];
  const size = 2 ** (32 - p.length);
  return u32ToIp((p.network & prefixMask(p.length)) + Math.min(100, size / 2 + 4));
}

function prefixText(p: { network: number; length: number }): string {
  return `${u32ToIp(p.network)}/${p.length}`;
}

function failName(name: string): never {
  throw new Error(`no SGW named '${name}'`);
}

export function makeCa(nowS: number): { key: CaKey; cert: Certificate } {
  const { key } = generateCaKey();
  const cert = issueCertificate(
    {
      subject: { nsid: NSID_CA_LABEL, label: 'mipsec lab CA' },
      publicKey: key.publicKey,
      serial: 1n,
      notBefore: nowS - DAY_S,
      notAfter: nowS + 3650 * DAY_S,
    },
    key,
  );
  return { key, cert };
}

let serial = 1000n;

/** An X25519 identity certified by the lab CA; `validity` in seconds around now (tests make expired ones). */
export function makeIdentity(
  ca: CaKey,
  nameText: string,
  nowS: number,
  validity: { from: number; to: number } = { from: -DAY_S, to: 365 * DAY_S },
): Identity {
  const parsed = parseName(nameText);
  if (!parsed.ok) throw new Error(parsed.error);
  const pair = generateX25519();
  const cert = issueCertificate(
    {
      subject: parsed.name,
      publicKey: pair.publicKey,
      serial: serial++,
      notBefore: nowS + validity.from,
      notAfter: nowS + validity.to,
    },
    ca,
  );
  return { name: parsed.name, secretKey: pair.secretKey, publicKey: pair.publicKey, cert };
}
