// The product as an operator deploys it: two `mipsec sgw` daemons (gwA, gwB) started from node
// configs and certificates made with the CLI (ca init, keygen, cert issue), SKIP keyed on the first
// packet, every setting at its default. Their utime+stime is the path's CPU cost. Also measures what
// a new packet key costs: the time from the first packet of a new SKIP key arriving at gwB to its
// delivery on gwB's inside link (punt → derive → install → re-inject), and at the sender, from the
// datagram arriving at gwA to its first packet under the new key leaving (punt → new Kp → install → seal).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, type ManagedProcess } from '../../net/netns.js';
import type { Transport } from './gateway-spec.js';
import { median } from '../median.js';
import { DEFAULT_UDP_PORT } from '../../config/node.js';
import { daemonProcess } from '../../daemon/process-env.js';
import { requestStatus } from '../../daemon/socket.js';
import {
  tail,
  waitFor,
  type ActivePath,
  type DataPathCounts,
  type FirstPacket,
  type PathContext,
  type PathDriver,
} from './paths.js';
import { tunnelMtu } from './mipsec.js';
import { clearGatewayRoutes, PLAN, SKIP_TUNNEL_MTU, type Topology } from './topology.js';

const READY_TIMEOUT_MS = 20_000;
/** New keys measured for first_packet_ms. */
export const FIRST_PACKET_SAMPLES = 20;
const FIRST_PACKET_INTERVAL_S = 0.1;
/** Pings beyond the samples, for what a busy machine loses (and the pairs a stall merges). */
const FIRST_PACKET_SPARE = 10;
/**
 * New keys before the measured ones, after the certificate exchange: a daemon just started runs its JavaScript
 * unoptimised (its first keys took 10–50 ms here, its twentieth 2 ms), and a gateway in service is warm.
 */
const FIRST_PACKET_WARMUP = 20;
/** tshark starts slowly on a loaded machine. */
const CAPTURE_START_TIMEOUT_MS = 30_000;

const bin = () => fileURLToPath(new URL('../../../bin/mipsec.js', import.meta.url));

/** `mipsec ARGS` as a user runs it; fails with its output. */
async function cli(args: readonly string[]): Promise<void> {
  await runCommand(process.execPath, [bin(), ...args], { timeoutMs: 30_000 });
}

interface GatewayPlan {
  name: 'gwa' | 'gwb';
  inside: { dev: string; address: string };
  outside: { dev: string; address: string };
}

function plans(topo: Topology): GatewayPlan[] {
  return [
    {
      name: 'gwa',
      inside: { dev: topo.dev.aToClient, address: PLAN.gwA.inside },
      outside: { dev: topo.dev.aToB, address: PLAN.gwA.outside },
    },
    {
      name: 'gwb',
      inside: { dev: topo.dev.bToServer, address: PLAN.gwB.inside },
      outside: { dev: topo.dev.bToA, address: PLAN.gwB.outside },
    },
  ];
}

/** A home agent in site a (the soak's), on a network of its own beside the client's. */
export interface MapHomeAgent {
  address: string;
  /** Its link's prefix and the home addresses it serves, both in site a. */
  network: string;
  serves: string;
}

/** What the daemons run with besides the defaults. */
export interface SgwdOptions {
  /** The gateways take a new packet key after this many packets (policy.kpRotationPackets). */
  kpRotationPackets?: number;
  /** The gateways kpRotationPackets applies to (default both); the others keep the default. */
  rotating?: readonly string[];
  /**
   * How sealed packets travel between the daemons (node config dataPath.transport; default raw, the daemons' own
   * default).
   */
  transport?: Transport;
  homeAgent?: MapHomeAgent;
}

/** The network map: the client's and the server's subnets, each behind its SGW, both VPN-routable. */
export function networkMap(ha?: MapHomeAgent): string {
  const siteA = [PLAN.client.net, ...(ha ? [ha.network, ha.serves] : [])].join(', ');
  return `kind: network-map
name: bench
sites:
  - { name: a, prefixes: [${siteA}], vpnRoutable: true }
  - { name: b, prefixes: [${PLAN.server.net}], vpnRoutable: true }
sgws:
  - { name: gwa, site: a, inside: ${PLAN.gwA.inside}, outside: ${PLAN.gwA.outside}, border: true }
  - { name: gwb, site: b, inside: ${PLAN.gwB.inside}, outside: ${PLAN.gwB.outside}, border: true }
${
  ha
    ? `homeAgents:
  - { name: ha, address: ${ha.address}, serves: [${ha.serves}] }
`
    : ''
}`;
}

function nodeConfig(g: GatewayPlan, { kpRotationPackets, rotating, transport }: SgwdOptions): string {
  const rotates = kpRotationPackets !== undefined && (rotating ?? [g.name]).includes(g.name);
  return `kind: node
name: ${g.name}
role: sgw
network: network.yaml
identity: { key: keys/${g.name}.key, cert: keys/${g.name}.crt, ca: ca/ca.crt }
interfaces:
  - { name: ${g.inside.dev}, address: ${g.inside.address}, prefixLength: 24 }
  - { name: ${g.outside.dev}, address: ${g.outside.address}, prefixLength: 24 }
sgw: { inside: ${g.inside.dev}, outside: ${g.outside.dev} }
${rotates ? `policy: { kpRotationPackets: ${kpRotationPackets} }\n` : ''}${
    transport ? `dataPath: { ` + `transport: ${transport} }\n` : ''
  }`;
}

/** The CA, both identities and configs in `dir`, made with the CLI as the README's deployment says. */
async function writeConfigs(dir: string, topo: Topology, options: SgwdOptions): Promise<void> {
  await cli(['ca', 'init', '--out', path.join(dir, 'ca'), '--name', 'bench CA']);
  fs.mkdirSync(path.join(dir, 'keys'), { mode: 0o700 });
  for (const g of plans(topo)) {
    const key = path.join(dir, 'keys', `${g.name}.key`);
    await cli(['keygen', '--out', key]);
    await cli([
      'cert',
      'issue',
      '--ca',
      path.join(dir, 'ca'),
      '--name',
      `sgw:${g.outside.address}`,
      '--pub',
      `${key}.pub`,
      '--out',
      path.join(dir, 'keys', `${g.name}.crt`),
    ]);
    fs.writeFileSync(path.join(dir, `${g.name}.yaml`), nodeConfig(g, options));
  }
  fs.writeFileSync(path.join(dir, 'network.yaml'), networkMap(options.homeAgent));
}

/**
 * The client's and server's routes carry the tunnel's MTU, as the static gateways' TUN MTU sets it for mipsec-skip, so
 * both paths carry the same datagrams (a connected UDP socket such as iperf3's gives up on the EMSGSIZE that path MTU
 * discovery reports; TCP's PMTUD through the daemons is tested in test/security/datapath-daemons.test.ts).
 */
async function setHostMtu(topo: Topology, mtu: number | undefined): Promise<void> {
  const extra = mtu ? ['mtu', String(mtu)] : [];
  await topo.session.replaceRoute(topo.client, { prefix: 'default', via: PLAN.gwA.inside, extra });
  await topo.session.replaceRoute(topo.server, { prefix: 'default', via: PLAN.gwB.inside, extra });
}

/** Both daemons up (routes to the far site first: the daemon reads them at start), or a clear error. */
/** The daemons, and one of a daemon's role counters (`mipsec status`). */
export interface SgwdPath extends ActivePath {
  roleCounter(gw: GatewayPlan['name'], name: string): Promise<number>;
}

export async function startDaemons(ctx: PathContext, options: SgwdOptions = {}): Promise<SgwdPath> {
  const { topo, workdir } = ctx;
  await writeConfigs(workdir, topo, options);
  await topo.session.replaceRoute(topo.gwA, { prefix: PLAN.server.net, via: PLAN.gwB.outside });
  await topo.session.replaceRoute(topo.gwB, { prefix: PLAN.client.net, via: PLAN.gwA.outside });
  await setHostMtu(topo, tunnelMtu(SKIP_TUNNEL_MTU, options.transport ?? 'raw'));
  const daemons: ManagedProcess[] = [];
  const teardown = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    // A stopped gateway fails closed (its interfaces' forwarding blackholed): the next path needs them open again.
    for (const g of plans(topo)) {
      await topo.session.exec(g.name === 'gwa' ? topo.gwA : topo.gwB, process.execPath, [
        bin(),
        'sgw',
        '--uninstall',
        '--config',
        path.join(workdir, `${g.name}.yaml`),
      ]);
    }
    await clearGatewayRoutes(topo);
    await setHostMtu(topo, undefined);
  };
  try {
    for (const g of plans(topo)) {
      const ns = g.name === 'gwa' ? topo.gwA : topo.gwB;
      const args = [
        'sgw',
        '--config',
        path.join(workdir, `${g.name}.yaml`),
        '--status-socket',
        path.join(workdir, `${g.name}.sock`),
        // The benchmark's replay marks are its own, never the host's /var/lib/mipsec.
        '--state-dir',
        path.join(workdir, 'state'),
        '--log-level',
        'warn',
      ];
      const p = daemonProcess(bin(), args);
      const d = topo.session.spawn(ns, `mipsec sgw ${g.name}`, p.command, p.args, { env: p.env });
      daemons.push(d);
      await waitFor(
        `mipsec sgw ${g.name} to start`,
        () => fs.existsSync(path.join(workdir, `${g.name}.sock`)),
        READY_TIMEOUT_MS,
        [d],
      );
    }
  } catch (err) {
    const output = daemons.map((d) => tail(d.recentOutput())).join(' / ');
    await teardown().catch(() => undefined);
    throw new Error(`${(err as Error).message}${output ? ` (${output})` : ''}`);
  }
  const sockets = plans(topo).map((g) => path.join(workdir, `${g.name}.sock`));
  return {
    processes: daemons,
    teardown,
    dataPathCounts: () => daemonCounts(sockets),
    roleCounter: (gw, name) => roleCounter(path.join(workdir, `${gw}.sock`), name),
  };
}

/** One of a daemon's role counters (`mipsec status`: counters.role), 0 when it has none of that name. */
async function roleCounter(socket: string, name: string): Promise<number> {
  const status = (await requestStatus(socket)) as { counters?: { role?: Record<string, number> } };
  return status.counters?.role?.[name] ?? 0;
}

/** The daemons' fast path (`mipsec status`: counters.io.fastPath) and slow path (counters.io.punted), summed. */
async function daemonCounts(sockets: readonly string[]): Promise<DataPathCounts> {
  let fastPath = 0;
  let slowPath = 0;
  for (const socket of sockets) {
    const status = (await requestStatus(socket)) as { counters?: { io?: Record<string, number> } };
    const io = status.counters?.io ?? {};
    fastPath += io.fastPath ?? 0;
    slowPath += io.punted ?? 0;
  }
  return { fastPath, slowPath };
}

/**
 * The capture's packet lines in time order (tshark's own messages share the output, and it writes each
 * interface's packets in batches of its own): epoch seconds, interface, IP protocol, source.
 */
function captureLines(text: string): { t: number; dev: string; proto: number; src: string }[] {
  return text
    .split('\n')
    .map((line) => line.split('\t'))
    .filter((f) => f.length === 4 && f[2] !== '')
    .map(([t, dev, proto, src]) => ({ t: Number(t), dev, proto: Number(proto.split(',')[0]), src: src.split(',')[0] }))
    .sort((a, b) => a.t - b.t);
}

type CaptureLine = ReturnType<typeof captureLines>[number];

/**
 * The first packet `arrives` picks since the last pair, paired with the next one `leaves` picks; delays in ms. Packets
 * carry nothing to match them by, so when a stalled gateway lets several arrive before one leaves only the first
 * pairs (a sample lost, never one shifted by a whole ping interval, as first-in-first-out pairing would after a loss).
 */
function pairedDelays(
  capture: string,
  arrives: (p: CaptureLine) => boolean,
  leaves: (p: CaptureLine) => boolean,
): number[] {
  const delays: number[] = [];
  let arrived: number | undefined;
  for (const p of captureLines(capture)) {
    if (arrives(p)) arrived ??= p.t;
    else if (arrived !== undefined && leaves(p)) {
      delays.push((p.t - arrived) * 1000);
      arrived = undefined;
    }
  }
  return delays;
}

/** A packet `gw` sealed: SKIP, or SKIP carried by the UDP transport (the capture filter keeps only its port). */
const sealedBy = (gw: string) => (p: CaptureLine) => (p.proto === 57 || p.proto === 17) && p.src === gw;
const sealedByGwA = sealedBy(PLAN.gwA.outside);
const sealedByGwB = sealedBy(PLAN.gwB.outside);
/** An ICMP echo (request or reply: the filter keeps those) from `host`. */
const echoFrom = (host: string) => (p: CaptureLine) => p.proto === 1 && p.src === host;
const echoFromClient = echoFrom(PLAN.client.addr);
const echoFromServer = echoFrom(PLAN.server.addr);

/**
 * Pairs each SKIP packet gwB receives from gwA with an echo request gwB sends to the server, in order. Delays in ms.
 */
export function firstPacketDelays(capture: string, topo: Pick<Topology, 'dev'>): number[] {
  return pairedDelays(
    capture,
    (p) => p.dev === topo.dev.bToA && sealedByGwA(p),
    (p) => p.dev === topo.dev.bToServer && echoFromClient(p),
  );
}

/**
 * The same measure for a packet under a key in place, in the same run: each SKIP packet gwA receives from gwB (gwB
 * keeps its key: the echo replies) paired with the reply gwA then sends to the client. What a first packet costs
 * beyond it is the keying.
 */
export function establishedPacketDelays(capture: string, topo: Pick<Topology, 'dev'>): number[] {
  return pairedDelays(
    capture,
    (p) => p.dev === topo.dev.aToB && sealedByGwB(p),
    (p) => p.dev === topo.dev.aToClient && echoFromServer(p),
  );
}

/** At the sender: each echo request from the client arriving at gwA, paired with the next packet gwA seals to gwB. */
export function firstPacketSendDelays(capture: string, topo: Pick<Topology, 'dev'>): number[] {
  const fromClient = (p: CaptureLine) => p.dev === topo.dev.aToClient && echoFromClient(p);
  return pairedDelays(capture, fromClient, (p) => p.dev === topo.dev.aToB && sealedByGwA(p));
}

/**
 * Daemons whose gwA takes a new packet key for every packet (kpRotationPackets 1), so each ping from
 * the client is the first packet of a new SKIP key at gwB; the median delay at gwB (and at gwA) over
 * FIRST_PACKET_SAMPLES keys, after one exchange that fetches the certificates and FIRST_PACKET_WARMUP keys; and at gwA,
 * for the replies, the delay of a packet whose key is in place.
 */
export async function measureFirstPacket(ctx: PathContext, transport?: Transport): Promise<FirstPacket> {
  const { topo } = ctx;
  // gwB keeps its default: the figure is the receiver's work for a new key, not its own rotation for the echo reply.
  const active = await startDaemons(ctx, { kpRotationPackets: 1, rotating: ['gwa'], transport });
  const echoes = 'icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply';
  const filter = `ip proto 57 or udp dst port ${DEFAULT_UDP_PORT} or ${echoes}`;
  const fields = [
    '-T',
    'fields',
    '-e',
    'frame.time_epoch',
    '-e',
    'frame.interface_name',
    '-e',
    'ip.proto',
    '-e',
    'ip.src',
  ];
  const tshark = (ns: string, gw: string, devs: string[]) =>
    topo.session.spawn(
      ns,
      `tshark (first packet, ${gw})`,
      'tshark',
      ['-l', '-n', ...devs.flatMap((d) => ['-i', d]), '-f', filter, ...fields],
      { keepOutput: 1 << 20 },
    );
  const ping = (count: number, waitS: number) =>
    topo.session
      .exec(topo.client, 'ping', [
        '-c',
        String(count),
        '-i',
        String(FIRST_PACKET_INTERVAL_S),
        '-W',
        String(waitS),
        PLAN.server.addr,
      ])
      .catch(() => undefined);
  try {
    await ping(1, 10);
    await ping(FIRST_PACKET_WARMUP, 2);
    const atB = tshark(topo.gwB, 'gwB', [topo.dev.bToA, topo.dev.bToServer]);
    const atA = tshark(topo.gwA, 'gwA', [topo.dev.aToClient, topo.dev.aToB]);
    try {
      for (const [gw, capture] of [
        ['gwB', atB],
        ['gwA', atA],
      ] as const) {
        await waitFor(
          `tshark to capture on ${gw}`,
          () => /Capturing on/.test(capture.recentOutput()),
          CAPTURE_START_TIMEOUT_MS,
          [capture],
        );
      }
      await new Promise((r) => setTimeout(r, 300));
      await ping(FIRST_PACKET_SAMPLES + FIRST_PACKET_SPARE, 2);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await atB.stop();
      await atA.stop();
    }
    const delays = firstPacketDelays(atB.recentOutput(), topo);
    if (delays.length < FIRST_PACKET_SAMPLES)
      throw new Error(
        `only ${delays.length} of ${FIRST_PACKET_SAMPLES} new keys reached the server (${tail(atB.recentOutput())})`,
      );
    const sent = firstPacketSendDelays(atA.recentOutput(), topo);
    const established = establishedPacketDelays(atA.recentOutput(), topo);
    return {
      engine_keyed: await active.roleCounter('gwb', 'successor_keyed'),
      median_ms: median(delays),
      samples: delays.length,
      send_median_ms: sent.length > 0 ? median(sent) : null,
      send_samples: sent.length,
      established_median_ms: established.length > 0 ? median(established) : null,
      established_samples: established.length,
    };
  } finally {
    await active.teardown();
  }
}

/** The daemons with every default but the transport, the same one the static gateways of mipsec-skip use. */
export const mipsecSgwd = (transport: Transport): PathDriver => ({
  name: 'mipsec-sgwd',
  mode:
    `two \`mipsec sgw\` daemons from CLI-made configs and certificates: SKIP keyed on the first packet ` +
    `(certificates fetched over UDP 1640), ESP AES-128-GCM, default settings but dataPath.transport ${transport}`,
  async version() {
    const pkg = JSON.parse(
      fs.readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'),
    ) as { version?: string };
    if (!fs.existsSync(bin())) throw new Error(`${bin()} not found`);
    return `${pkg.version ?? 'unknown'} (mipsec sgw daemons, OpenSSL ${process.versions.openssl})`;
  },
  setup: (ctx) => startDaemons(ctx, { transport }),
  firstPacket: (ctx) => measureFirstPacket(ctx, transport),
});
