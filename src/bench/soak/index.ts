// mipsec bench soak: the daemons an operator runs, under the highest load the machine gives, for N
// minutes: two `mipsec sgw` daemons (client — gwA — gwB — server, bench/e2e's namespaces) carrying
// single-stream TCP and a UDP flow with a new packet key every few seconds, and a `mipsec ha` taking
// steady registrations from 20 mobile nodes that each hand over once a minute. Every minute it prints
// each daemon's RSS, heap, open fds, table sizes and drops by reason, and the throughput; at the end the
// drift from minute 2 to the last, and whether any daemon died.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { daemonProcess } from '../../daemon/process-env.js';
import { requestStatus } from '../../daemon/socket.js';
import type { Status } from '../../daemon/status.js';
import { NetnsSession, randomSuffix, type ManagedProcess } from '../../net/netns.js';
import { iperf, IPERF_PORT, measureTcp, reachable, startIperfServer } from '../e2e/measure.js';
import { tail, waitFor } from '../e2e/paths.js';
import { startDaemons, type MapHomeAgent } from '../e2e/sgwd.js';
import { buildTopology, devName, type Topology } from '../e2e/topology.js';
import type { RegistrarSpec } from './registrar.js';

const HA: MapHomeAgent & { client: string } = {
  address: '198.18.5.2',
  network: '198.18.5.0/24',
  serves: '10.9.0.0/26',
  client: '198.18.5.1',
};
const MOBILE_NODES = 20;
const UDP_PORT = IPERF_PORT + 1;
/** UDP beside the TCP stream: enough to keep both directions' keys busy, not enough to starve TCP. */
const UDP_RATE = '20M';
/** Traffic per minute; the rest of the minute is sampling. */
const TRAFFIC_SECONDS = 50;
/**
 * The TCP stream starts this long after the UDP one. iperf3 (3.12) opens a UDP test with one datagram each way and
 * never sends it again: started into a TCP flood that rotates keys several times a second (a packet of a new key that
 * arrives while a cold daemon installs it may be lost, docs/engine.md), a lost one would void the minute's UDP figure.
 */
const TCP_DELAY_SECONDS = 1;

export const HELP = `usage: mipsec bench soak [--minutes N] [--rotate-packets N] [--json]

Runs the daemons an operator deploys for N minutes under load, in network
namespaces it makes (needs root, iproute2, iperf3, ping): two \`mipsec sgw\`
(client — gwA — gwB — server, as bench e2e) carrying single-stream TCP and
UDP (${UDP_RATE}bit/s) with a new SKIP packet key every --rotate-packets packets, and a
\`mipsec ha\` taking registrations from ${MOBILE_NODES} mobile nodes every 5 s, each
moving to a new care-of address every minute. Every minute it prints, per
daemon: RSS, heap, open fds, SAs and routes installed, drops by reason; and
TCP/UDP throughput and registrations. At the end: the drift from minute 2 to
the last (RSS %, fds, SAs, routes) and the daemons that died.

  --minutes N         how long (default 10)
  --rotate-packets N  policy.kpRotationPackets of both SGWs (default 50000)
  --json              print the whole report as JSON at the end`;

export interface NodeSample {
  rssMiB: number;
  heapMiB: number;
  /** The V8 heap the process holds (heapTotal): what RSS follows when the used part stays flat but the heap grows. */
  heapTotalMiB: number;
  /** Memory outside the V8 heap that JS objects hold (Buffers, ArrayBuffers): with RSS − heap, where a leak lives. */
  externalMiB: number;
  fds: number | null;
  sas: number;
  routes: number;
  drops: Record<string, number>;
}

export interface MinuteSample {
  minute: number;
  nodes: Record<string, NodeSample | { error: string }>;
  tcpMbps: number | null;
  udpMbps: number | null;
  /** Why a figure above is null: iperf3's own error, so a failed minute says what failed. */
  trafficErrors?: { tcp?: string; udp?: string };
  registrations: number;
}

export interface SoakReport {
  minutes: MinuteSample[];
  drift: Record<string, { rssPercent: number; fds: number; sas: number; routes: number }> | null;
  crashes: string[];
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

function nodeSample(s: Status): NodeSample {
  const drops = Object.fromEntries(Object.entries(s.counters.engine).filter(([, n]) => n > 0));
  for (const [k, n] of Object.entries(s.counters.role)) if (k.startsWith('drop') && n > 0) drops[k] = n;
  return {
    rssMiB: mib(s.process.rssBytes),
    heapMiB: mib(s.process.heapUsedBytes),
    heapTotalMiB: mib(s.process.heapTotalBytes),
    externalMiB: mib(s.process.externalBytes),
    fds: s.process.openFds,
    sas: s.tables?.sas ?? s.sas.length,
    routes: s.tables?.routes ?? 0,
    drops,
  };
}

/** Drift from minute 2 (the first after warm-up) to the last, per daemon. */
export function drift(minutes: readonly MinuteSample[]): SoakReport['drift'] {
  if (minutes.length < 3) return null;
  const first = minutes[1];
  const last = minutes[minutes.length - 1];
  const out: NonNullable<SoakReport['drift']> = {};
  for (const [name, a] of Object.entries(first.nodes)) {
    const b = last.nodes[name];
    if ('error' in a || !b || 'error' in b) continue;
    out[name] = {
      rssPercent: Math.round(((b.rssMiB - a.rssMiB) / a.rssMiB) * 1000) / 10,
      fds: (b.fds ?? 0) - (a.fds ?? 0),
      sas: b.sas - a.sas,
      routes: b.routes - a.routes,
    };
  }
  return out;
}

export function formatMinute(m: MinuteSample): string {
  const lines = [
    `minute ${m.minute}: TCP ${m.tcpMbps?.toFixed(1) ?? '—'} Mbit/s, ` +
      `UDP ${m.udpMbps?.toFixed(1) ?? '—'} Mbit/s, ${m.registrations} registrations accepted so far`,
  ];
  for (const [kind, error] of Object.entries(m.trafficErrors ?? {})) lines.push(`  ${kind.toUpperCase()}: ${error}`);
  for (const [name, n] of Object.entries(m.nodes)) {
    if ('error' in n) {
      lines.push(`  ${name}: ${n.error}`);
      continue;
    }
    const drops =
      Object.entries(n.drops)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none';
    lines.push(
      `  ${name.padEnd(4)} rss ${n.rssMiB} MiB, heap ${n.heapMiB} MiB (of ${n.heapTotalMiB}), ` +
        `external ${n.externalMiB} MiB, ${n.fds ?? '—'} fds, ${n.sas} SAs, ${n.routes} routes; ` +
        `drops and punts: ${drops}`,
    );
  }
  return lines.join('\n');
}

/** The HA's namespace on its own link to the client, its config and MN-HA keys in `dir`. */
async function startHa(
  topo: Topology,
  dir: string,
): Promise<{ daemon: ManagedProcess; socket: string; spec: RegistrarSpec }> {
  const { session } = topo;
  const ns = await session.addNamespace('ha');
  const [clientDev, haDev] = [devName(session, 'ch'), devName(session, 'hc')];
  await session.addVeth(topo.client, clientDev, ns, haDev);
  await session.addAddress(topo.client, clientDev, `${HA.client}/24`);
  await session.addAddress(ns, haDev, `${HA.address}/24`);
  const nodes = Array.from({ length: MOBILE_NODES }, (_, i) => ({
    home: `10.9.0.${i + 1}`,
    spi: 256 + i,
    keyHex: (i + 16).toString(16).repeat(16),
  }));
  fs.writeFileSync(path.join(dir, 'mn-ha.keys'), nodes.map((n) => `${n.home} ${n.spi} ${n.keyHex}\n`).join(''), {
    mode: 0o600,
  });
  fs.writeFileSync(
    path.join(dir, 'ha.yaml'),
    `kind: node
name: ha
role: ha
network: network.yaml
interfaces:
  - { name: ${haDev}, address: ${HA.address}, prefixLength: 24 }
ha: { serves: [${HA.serves}] }
`,
  );
  const socket = path.join(dir, 'ha.sock');
  const bin = fileURLToPath(new URL('../../../bin/mipsec.js', import.meta.url));
  const p = daemonProcess(bin, [
    'ha',
    '--config',
    path.join(dir, 'ha.yaml'),
    '--mn-ha-key',
    path.join(dir, 'mn-ha.keys'),
    '--status-socket',
    socket,
    '--state-dir',
    path.join(dir, 'state'),
    '--log-level',
    'warn',
  ]);
  const daemon = session.spawn(ns, 'mipsec ha', p.command, p.args, { env: p.env });
  await waitFor('mipsec ha to start', () => fs.existsSync(socket), 20_000, [daemon]);
  return {
    daemon,
    socket,
    spec: { ha: HA.address, nodes, careOfBase: '10.1.0.1', mode: 'steady', intervalMs: 5000, handoverMs: 60_000 },
  };
}

export interface SoakOptions {
  minutes: number;
  rotatePackets: number;
  progress?: (line: string) => void;
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const progress = o.progress ?? (() => undefined);
  if (process.getuid?.() !== 0) throw new Error('needs root: it creates network namespaces (run it with sudo)');
  const session = new NetnsSession(`ms-${randomSuffix()}`);
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'mipsec-soak-'));
  session.onCleanup(
    'remove work directory',
    async () => fs.rmSync(workdir, { recursive: true, force: true }),
    () => fs.rmSync(workdir, { recursive: true, force: true }),
  );
  const report: SoakReport = { minutes: [], drift: null, crashes: [] };
  try {
    progress(`building namespaces ${session.prefix}-{client,gwa,gwb,server,ha}`);
    const topo = await buildTopology(session);
    const gateways = await startDaemons({ topo, workdir }, { kpRotationPackets: o.rotatePackets, homeAgent: HA });
    const ha = await startHa(topo, workdir);
    const daemons: Record<string, { process: ManagedProcess; socket: string }> = {
      gwa: { process: gateways.processes[0], socket: path.join(workdir, 'gwa.sock') },
      gwb: { process: gateways.processes[1], socket: path.join(workdir, 'gwb.sock') },
      ha: { process: ha.daemon, socket: ha.socket },
    };
    await startIperfServer(topo);
    await startIperfServer(topo, UDP_PORT);
    // The first packets fetch the gateways' certificates (UDP 1640) and key the pair; minute 1 starts after that.
    await waitFor('the server to answer pings through the gateways', () => reachable(topo), 20_000, [
      daemons.gwa.process,
      daemons.gwb.process,
    ]);
    const registrarScript = fileURLToPath(new URL('./registrar.js', import.meta.url));
    const registrar = session.spawn(topo.client, 'registrar', process.execPath, [
      registrarScript,
      JSON.stringify({ ...ha.spec, seconds: o.minutes * 60 }),
    ]);
    const registrations = () =>
      Number(
        /acks=(\d+)/.exec(
          registrar
            .recentOutput()
            .split('\n')
            .filter((l) => l.startsWith('stats'))
            .at(-1) ?? '',
        )?.[1] ?? 0,
      );

    for (let minute = 1; minute <= o.minutes; minute++) {
      const started = Date.now();
      const trafficErrors: NonNullable<MinuteSample['trafficErrors']> = {};
      const failed = (kind: 'tcp' | 'udp') => (err: Error) => {
        trafficErrors[kind] = err.message;
        return null;
      };
      const [tcp, udp] = await Promise.all([
        new Promise((r) => setTimeout(r, TCP_DELAY_SECONDS * 1000))
          .then(() => measureTcp(topo, TRAFFIC_SECONDS - TCP_DELAY_SECONDS))
          .then((r) => r.gbps * 1000, failed('tcp')),
        iperf(topo, ['-u', '-l', '1300', '-b', UDP_RATE], TRAFFIC_SECONDS, UDP_PORT).then(
          (r) => ((r.end.sum_received ?? r.end.sum)?.bits_per_second ?? 0) / 1e6,
          failed('udp'),
        ),
      ]);
      await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - started))));
      const nodes: MinuteSample['nodes'] = {};
      for (const [name, d] of Object.entries(daemons)) {
        if (!d.process.running) {
          nodes[name] = { error: `exited: ${tail(d.process.recentOutput())}` };
          if (!report.crashes.includes(name)) report.crashes.push(name);
          continue;
        }
        nodes[name] = await requestStatus(d.socket).then(
          (s) => nodeSample(s as Status),
          (err: Error) => ({ error: `no status: ${err.message}` }),
        );
      }
      const sample: MinuteSample = { minute, nodes, tcpMbps: tcp, udpMbps: udp, registrations: registrations() };
      if (tcp === null || udp === null) sample.trafficErrors = trafficErrors;
      report.minutes.push(sample);
      progress(formatMinute(sample));
    }
    report.drift = drift(report.minutes);
  } finally {
    progress('removing namespaces and daemons');
    await session.close();
  }
  return report;
}

export function formatSummary(r: SoakReport): string {
  const lines = [`${r.minutes.length} minutes; daemons that died: ${r.crashes.length ? r.crashes.join(', ') : 'none'}`];
  if (!r.drift) lines.push('drift: needs at least 3 minutes (minute 2 to the last)');
  else
    for (const [name, d] of Object.entries(r.drift))
      lines.push(
        `drift ${name.padEnd(4)} minute 2 → ${r.minutes.length}: ` +
          `RSS ${d.rssPercent >= 0 ? '+' : ''}${d.rssPercent} %, fds ${d.fds >= 0 ? '+' : ''}${d.fds}, ` +
          `SAs ${d.sas >= 0 ? '+' : ''}${d.sas}, routes ${d.routes >= 0 ? '+' : ''}${d.routes}`,
      );
  return lines.join('\n');
}

/** `mipsec bench soak [options]`: returns the exit code (1 when a daemon died). */
export async function runSoakCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        minutes: { type: 'string', default: '10' },
        'rotate-packets': { type: 'string', default: '50000' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    console.error(`mipsec bench soak: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const minutes = Number(values.minutes);
  const rotatePackets = Number(values['rotate-packets']);
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
    console.error(`mipsec bench soak: --minutes must be an integer in 1..1440, got '${values.minutes}'`);
    return 2;
  }
  if (!Number.isInteger(rotatePackets) || rotatePackets < 1) {
    console.error(`mipsec bench soak: --rotate-packets must be a positive integer, got '${values['rotate-packets']}'`);
    return 2;
  }
  let report: SoakReport;
  try {
    report = await runSoak({
      minutes,
      rotatePackets,
      progress: (line) => (values.json ? process.stderr : process.stdout).write(`${line}\n`),
    });
  } catch (err) {
    console.error(`mipsec bench soak: ${(err as Error).message}`);
    return 1;
  }
  if (values.json) console.log(JSON.stringify(report));
  else console.log(formatSummary(report));
  return report.crashes.length ? 1 : 0;
}
