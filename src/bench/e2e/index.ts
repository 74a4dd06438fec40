// mipsec bench e2e: throughput and CPU cost of mipsec's data path against userspace VPN peers and
// plain forwarding, all through the same four namespaces in the same run (bench/e2e.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { NetnsSession, randomSuffix, runCommand } from '../../net/netns.js';
import { CHAIN_MIDDLE, runChain, type ChainRow, type RelayCost } from './chain.js';
import type { Coverage, Transport } from './gateway-spec.js';
import { mipsecDrivers, mipsecVersion, tuningLabel, type LoopTuning } from './mipsec.js';
import { measureOnce, reachable, startIperfServer, UDP_PAYLOAD } from './measure.js';
import { PATH_NAMES, waitFor, type PathDriver, type PathName } from './paths.js';
import { openvpn, strongswan, veth, wireguardGo } from './peers.js';
import { FIRST_PACKET_SAMPLES, mipsecSgwd } from './sgwd.js';
import { formatChain, formatSvg, formatTables, jsonRows, ratios, summarize, type PathResult } from './report.js';
import { buildTopology, TUNNEL_MTU, type Topology } from './topology.js';

const REACH_TIMEOUT_MS = 15_000;
/** Default µs a mipsec worker polls after a packet before it sleeps (--poll-us). */
export const DEFAULT_POLL_US = 1000;

export const HELP = `usage: mipsec bench e2e [--paths a,b,…] [--runs N] [--seconds S] [--chain LIST|off]
                       [--relay-coverage headers|full] [--transport udp|raw] [--poll-us N]
                       [--out DIR] [--json]

Builds four network namespaces, client — gwA — gwB — server, joined by veth
pairs (198.18.0.0/15), and measures through each path between gwA and gwB:
single-stream TCP Gbit/s and UDP ${UDP_PAYLOAD}-byte datagrams/s with iperf3, and CPU
seconds per Gbit (the path's processes' utime+stime plus all softirq time,
from /proc, over the TCP run). Paths run in the same session, one at a time,
in forward order on even rounds and reversed on odd ones; medians are
reported with their ratios to veth and to each peer. Needs root, iproute2,
iperf3 and ping; each peer needs its own package (bench/e2e.md).

paths: ${PATH_NAMES.join(', ')}

options:
  --paths LIST  paths to measure, comma-separated (default: all)
  --runs N      measured rounds, the median is reported (default 3)
  --seconds S   seconds per iperf3 run (default 5)
  --chain LIST  the chain figure: TCP and ping RTT through these numbers of
                mipsec relaying SGWs (1..${CHAIN_MIDDLE}, default 1,2,4; 0 relays and plain
                kernel forwarding are always measured with it), or 'off'
  --relay-coverage headers|full
                what each next-hop AH in the chain authenticates (default
                headers: the IP/SKIP/AH/ESP headers, the draft's §3.6 way
                to make relaying cheap; full: the whole datagram, RFC 4302)
  --transport T how mipsec's gateways carry sealed packets (default udp):
                udp  whole, inside UDP datagrams on one port, moved by the
                     kernel in GSO/GRO batches (docs/engine.md §9.1), as the
                     peers too send UDP;
                raw  as the draft puts them on the wire, raw IPv4 (protocol
                     57 SKIP / 50 ESP), one socket send per packet
  --poll-us N   µs each mipsec worker keeps polling after a packet before it
                sleeps (default ${DEFAULT_POLL_US}; 0: sleep at once). A packet within the
                window costs no wakeup: on a VM a cross-CPU wakeup costs tens of
                µs per hop, which is most of a relay's added RTT
  --out DIR     where <timestamp>.json and .svg go (default bench/results)
  --json        print only {"rows": [{"path","version","tcp_gbps","udp_pps","cpu_s_per_gbit"}]};
                a path that could not run has null figures and an "error"
  --help        this text

Progress goes to stderr. Everything the run creates (namespaces, daemons,
temporary keys) is removed at the end, also on Ctrl-C.`;

export interface E2eOptions {
  paths: readonly PathName[];
  runs: number;
  seconds: number;
  /** How mipsec's gateways carry sealed packets (default udp). */
  transport?: Transport;
  /** µs a mipsec worker polls after a packet before it sleeps (default DEFAULT_POLL_US). */
  pollMicros?: number;
  /** What the chain's next-hop AH covers (default headers, the draft's §3.6). */
  relayCoverage?: Coverage;
  /** Relay counts for the chain figure; empty or undefined skips it. */
  chainRelays?: readonly number[];
  /** Directory for <timestamp>.json and .svg; undefined writes nothing. */
  outDir?: string;
  progress?: (line: string) => void;
}

export interface E2eReport {
  meta: Record<string, unknown>;
  results: PathResult[];
  chain?: { rows: ChainRow[]; costs: RelayCost[]; setup?: string; error?: string };
  /** The namespace-name prefixes this run used (all of them are gone when runBenchmark returns). */
  prefixes: string[];
  files?: { json: string; svg: string };
}

function drivers(tuning: LoopTuning): Record<PathName, PathDriver> {
  return {
    veth,
    'wireguard-go': wireguardGo,
    openvpn,
    strongswan,
    'mipsec-sgwd': mipsecSgwd(tuning.transport),
    ...mipsecDrivers(tuning),
  };
}

/** The order of round `round`: as given on even rounds, reversed on odd ones. */
export function roundOrder<T>(paths: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...paths] : [...paths].reverse();
}

function describe(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

async function machineFacts(): Promise<Record<string, unknown>> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  return {
    kernel: (await runCommand('uname', ['-r'])).stdout.trim(),
    cpu_model: model,
    cpus: os.cpus().length,
    node: process.version,
    iperf3: (await runCommand('iperf3', ['--version'])).stdout.split('\n')[0].trim(),
  };
}

async function checkPrerequisites(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root: it creates network namespaces (run it with sudo)');
  for (const [tool, args, pkg] of [
    ['ip', ['-V'], 'iproute2'],
    ['iperf3', ['--version'], 'iperf3'],
    ['ping', ['-V'], 'iputils-ping'],
  ] as const) {
    try {
      await runCommand(tool, [...args], { timeoutMs: 5000 });
    } catch {
      throw new Error(`${tool} is missing: apt-get install ${pkg}`);
    }
  }
}

/** Brings one path up, measures it once, takes it down. */
async function measurePath(
  driver: PathDriver,
  topo: Topology,
  workdir: string,
  seconds: number,
): Promise<PathResult['runs'][number]> {
  const pathDir = fs.mkdtempSync(path.join(workdir, `${driver.name}-`));
  const active = await driver.setup({ topo, workdir: pathDir });
  let server;
  try {
    server = await startIperfServer(topo);
  } catch (err) {
    await active.teardown();
    throw err;
  }
  try {
    await waitFor(
      `the server to answer pings from the client through ${driver.name}`,
      () => reachable(topo),
      REACH_TIMEOUT_MS,
      [...active.processes, server],
    );
    return await measureOnce(topo, active.processes, seconds, active.dataPathCounts);
  } finally {
    await server.stop();
    await active.teardown();
  }
}

export async function runBenchmark(options: E2eOptions): Promise<E2eReport> {
  const progress = options.progress ?? (() => undefined);
  const tuning: LoopTuning = {
    transport: options.transport ?? 'udp',
    pollMicros: options.pollMicros ?? DEFAULT_POLL_US,
  };
  const { transport } = tuning;
  const DRIVERS = drivers(tuning);
  await checkPrerequisites();
  const results: PathResult[] = options.paths.map((name) => ({
    path: name,
    mode: DRIVERS[name].mode,
    version: null,
    tcp_gbps: null,
    udp_pps: null,
    cpu_s_per_gbit: null,
    ...(DRIVERS[name].firstPacket
      ? {
          first_packet_ms: null,
          first_packet_send_ms: null,
          established_packet_ms: null,
          first_packet_engine_keyed: null,
        }
      : {}),
    runs: [],
  }));
  for (const result of results) {
    try {
      result.version = await DRIVERS[result.path].version();
    } catch (err) {
      result.error = describe(err);
      progress(`${result.path}: cannot run: ${result.error}`);
    }
  }
  const started = new Date();
  const meta: Record<string, unknown> = {
    started: started.toISOString(),
    ...(await machineFacts()),
    seconds_per_run: options.seconds,
    runs: options.runs,
    udp_payload_bytes: UDP_PAYLOAD,
    tunnel_mtu: TUNNEL_MTU,
    mipsec_transport: transport,
    mipsec_poll_us: tuning.pollMicros,
    mipsec_loop: tuningLabel(tuning),
    order:
      'paths in the listed order on even rounds, reversed on odd rounds; each path set up, measured once and torn ' +
      'down per round',
    cpu_accounting:
      'utime+stime (/proc/PID/stat) of the path processes + softirq of all CPUs (/proc/stat), over the TCP run, ' +
      'divided by the Gbit the server received',
  };

  const session = new NetnsSession(`mb-${randomSuffix()}`);
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'mipsec-e2e-'));
  session.onCleanup(
    'remove work directory',
    async () => fs.rmSync(workdir, { recursive: true, force: true }),
    () => fs.rmSync(workdir, { recursive: true, force: true }),
  );
  try {
    progress(`building namespaces ${session.prefix}-{client,gwa,gwb,server}`);
    const topo = await buildTopology(session);
    for (let round = 0; round < options.runs; round++) {
      for (const result of roundOrder(results, round)) {
        if (result.error) continue;
        progress(
          `[${round + 1}/${options.runs}] ${result.path}: measuring ${options.seconds} s TCP + ${options.seconds} s ` +
            `UDP…`,
        );
        try {
          const figures = await measurePath(DRIVERS[result.path], topo, workdir, options.seconds);
          result.runs.push(figures);
          const udpText =
            figures.udp_pps === null ? `failed (${figures.udp_error})` : `${Math.round(figures.udp_pps)} pps`;
          progress(
            `[${round + 1}/${options.runs}] ${result.path}: TCP ${figures.tcp_gbps.toFixed(3)} Gbit/s, ` +
              `UDP ${udpText}, CPU ${figures.cpu_s_per_gbit.toFixed(2)} s/Gbit`,
          );
        } catch (err) {
          result.error = `round ${round + 1}: ${describe(err)}`;
          result.runs = [];
          progress(`[${round + 1}/${options.runs}] ${result.path}: failed: ${result.error}`);
        }
      }
    }
    for (const result of results) {
      const firstPacket = DRIVERS[result.path].firstPacket;
      if (result.error || !firstPacket) continue;
      progress(`${result.path}: first packet of ${FIRST_PACKET_SAMPLES} new SKIP keys…`);
      try {
        const fp = await firstPacket({ topo, workdir: fs.mkdtempSync(path.join(workdir, `${result.path}-first-`)) });
        result.first_packet_ms = fp.median_ms;
        result.first_packet_send_ms = fp.send_median_ms;
        result.established_packet_ms = fp.established_median_ms;
        result.first_packet_engine_keyed = fp.engine_keyed;
        progress(
          `${result.path}: first packet of a new key delivered after ${fp.median_ms.toFixed(3)} ms at the receiver ` +
            `(median of ${fp.samples}), ` +
            `sealed after ${fp.send_median_ms?.toFixed(3) ?? '—'} ms at the sender (median of ${fp.send_samples}); ` +
            `a packet under a key in place ${fp.established_median_ms?.toFixed(3) ?? '—'} ms ` +
            `(median of ${fp.established_samples}); ${fp.engine_keyed} new keys keyed by the receiver's engine`,
        );
      } catch (err) {
        result.error = `first packet: ${describe(err)}`;
        progress(`${result.path}: first packet: failed: ${describe(err)}`);
      }
    }
  } finally {
    progress('removing namespaces and daemons');
    await session.close();
  }
  for (const result of results) summarize(result);
  const report: E2eReport = { meta, results, prefixes: [session.prefix] };

  if (options.chainRelays?.length) {
    try {
      mipsecVersion('native', transport);
      report.chain = await runChain({
        relays: options.chainRelays,
        ...tuning,
        coverage: options.relayCoverage ?? 'headers',
        runs: options.runs,
        seconds: options.seconds,
        progress,
        onSession: (p) => report.prefixes.push(p),
      });
    } catch (err) {
      report.chain = { rows: [], costs: [], error: describe(err) };
      progress(`chain: cannot run: ${report.chain.error}`);
    }
  }
  meta.finished = new Date().toISOString();

  if (options.outDir) {
    fs.mkdirSync(options.outDir, { recursive: true });
    const stamp = started.toISOString().replace(/[:.]/g, '-');
    const json = path.join(options.outDir, `${stamp}.json`);
    const svg = path.join(options.outDir, `${stamp}.svg`);
    const rows = jsonRows(results);
    const full = results.map((r) => ({ ...r, ratios: r.tcp_gbps == null ? null : ratios(r, rows) }));
    fs.writeFileSync(
      json,
      JSON.stringify({ meta, rows, paths: full, ...(report.chain ? { chain: report.chain } : {}) }, null, 2) + '\n',
    );
    fs.writeFileSync(
      svg,
      formatSvg(
        results,
        `mipsec bench e2e, ${started.toISOString().slice(0, 16)}Z, ${String(meta.cpus)} CPUs, Linux ` +
          `${String(meta.kernel)}`,
      ),
    );
    report.files = { json, svg };
  }
  return report;
}

function usageError(message: string): number {
  console.error(`mipsec bench e2e: ${message}\n\n${HELP}`);
  return 2;
}

/** `mipsec bench e2e [options]`: returns the exit code. */
export async function runE2e(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        paths: { type: 'string', default: PATH_NAMES.join(',') },
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '5' },
        chain: { type: 'string', default: '1,2,4' },
        transport: { type: 'string', default: 'udp' },
        'relay-coverage': { type: 'string', default: 'headers' },
        'poll-us': { type: 'string', default: String(DEFAULT_POLL_US) },
        out: { type: 'string', default: path.join('bench', 'results') },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    return usageError(describe(err));
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const paths = values.paths
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const unknown = paths.find((p) => !(PATH_NAMES as readonly string[]).includes(p));
  if (unknown !== undefined) return usageError(`--paths: unknown path '${unknown}' (one of ${PATH_NAMES.join(', ')})`);
  if (paths.length === 0) return usageError('--paths: name at least one path');
  if (new Set(paths).size !== paths.length) return usageError('--paths lists a path twice');
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 99)
    return usageError(`--runs must be an integer in 1..99, got '${values.runs}'`);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600)
    return usageError(`--seconds must be an integer in 1..600 (iperf3 -t), got '${values.seconds}'`);

  if (values.transport !== 'udp' && values.transport !== 'raw')
    return usageError(`--transport must be udp or raw, got '${values.transport}'`);
  const transport: Transport = values.transport;
  const coverage = values['relay-coverage'];
  if (coverage !== 'headers' && coverage !== 'full')
    return usageError(`--relay-coverage must be headers or full, got '${coverage}'`);
  const pollMicros = Number(values['poll-us']);
  if (!Number.isInteger(pollMicros) || pollMicros < 0 || pollMicros > 100_000)
    return usageError(`--poll-us must be an integer in 0..100000, got '${values['poll-us']}'`);

  let chainRelays: number[] = [];
  if (values.chain !== 'off') {
    chainRelays = values.chain.split(',').map((k) => Number(k.trim()));
    const bad = values.chain
      .split(',')
      .find((k, i) => !Number.isInteger(chainRelays[i]) || chainRelays[i] < 1 || chainRelays[i] > CHAIN_MIDDLE);
    if (bad !== undefined)
      return usageError(`--chain: '${bad.trim()}' is not a relay count in 1..${CHAIN_MIDDLE} (or say 'off')`);
  }

  let report: E2eReport;
  try {
    report = await runBenchmark({
      paths: paths as PathName[],
      runs,
      seconds,
      chainRelays,
      transport,
      relayCoverage: coverage,
      pollMicros,
      outDir: values.out,
      progress: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (err) {
    console.error(`mipsec bench e2e: ${describe(err)}`);
    return 1;
  }
  if (values.json) {
    console.log(JSON.stringify({ rows: jsonRows(report.results) }));
  } else {
    console.log(formatTables(report.results));
    if (report.chain) console.log(`\n${formatChain(report.chain)}`);
    if (report.files) console.log(`\nwritten: ${report.files.json}\n         ${report.files.svg}`);
  }
  return 0;
}
