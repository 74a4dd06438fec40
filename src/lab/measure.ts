// Real applications between the SMN (or another host) and its correspondent in the namespaces, run as the lab's
// unprivileged uid so their packets take the host's send() path through the roles: ping (ICMP
// echo RTT) and a TCP_SECONDS iperf3 TCP transfer (throughput), with the role nodes' data-path counters
// over the TCP phase: how many packets their I/O loops carried out natively and how many went to JS.
import type { DataPathStats } from '../net/linux/interface-loops.js';
import type { LinuxNetwork } from '../net/linux/network.js';
import { APP_PORT, asAppUser } from '../net/linux/network.js';
import { CommandError, runCommand } from '../net/netns.js';
import type { AppPath, CaseResult, DataPathFigures } from './case.js';
import { sleep } from './runtime-linux.js';

const PINGS = 3;
export const TCP_SECONDS = 2;
/** How long the capture records a TCP stream (its handshake and first frames on every link, for the stack checks
 * and --pcap) before it pauses: copying every frame of the transfer into this process would measure the lab. */
const CAPTURE_TCP_MS = 600;
/** The seconds iperf3 runs before the TCP_SECONDS it measures (-O): slow start, and the capture of its first frames. */
const TCP_OMIT_SECONDS = 1;
/** Time for the iperf3 server to listen before the client connects. */
const SERVER_START_MS = 300;

/** `rtt min/avg/max/mdev = 0.3/0.4/0.5/0.1 ms` → the average. */
export function parsePingAverage(output: string): number | undefined {
  const m = /=\s*[\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+\s*ms/.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** iperf3 -J: the receiver's rate in Mbit/s. */
export function parseIperfMbps(json: string): number | undefined {
  try {
    const report = JSON.parse(json) as { end?: { sum_received?: { bits_per_second?: number } } };
    const bps = report.end?.sum_received?.bits_per_second;
    return typeof bps === 'number' && Number.isFinite(bps) ? bps / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** Below this the stream stalled (a path that carries the probes but not full-sized segments: a path MTU hole). */
export const TCP_STALLED_MBPS = 1;

/** Why a case's TCP figure fails it: no figure at all, or a stream that stalled. */
export function tcpFigureFailure(mbps: number | undefined): string | undefined {
  if (mbps === undefined) return 'iperf3: no receiver rate in its report';
  if (mbps < TCP_STALLED_MBPS)
    return `TCP stalled: ${mbps.toFixed(3)} Mbit/s over ${TCP_SECONDS} s (probes pass but full-sized segments do not?)`;
  return undefined;
}

/** The I/O loop counters of every role node (a host with I/O loops: SGWs, SMN, HA), by node. */
function snapshot(network: LinuxNetwork): Map<string, DataPathStats> {
  return new Map(network.roleHosts().map((h) => [h.name, h.ioStats()]));
}

/** What the role nodes' loops did between two snapshots, summed and by node. */
export function dataPathDelta(
  before: ReadonlyMap<string, DataPathStats>,
  after: ReadonlyMap<string, DataPathStats>,
): DataPathFigures {
  const figures: DataPathFigures = { fastPath: 0, slowPath: 0, slowPathReasons: {}, nodes: {} };
  for (const [node, a] of after) {
    const b = before.get(node);
    const fast = a.fastPath - (b?.fastPath ?? 0);
    const slow = a.punted - (b?.punted ?? 0);
    const nodeReasons: Record<string, number> = {};
    for (const [reason, n] of Object.entries(a.puntReasons)) {
      const d = n - (b?.puntReasons[reason as keyof DataPathStats['puntReasons']] ?? 0);
      if (d <= 0) continue;
      nodeReasons[reason] = d;
      figures.slowPathReasons[reason] = (figures.slowPathReasons[reason] ?? 0) + d;
    }
    figures.nodes[node] = { fastPath: fast, slowPath: slow, ...(slow > 0 ? { slowPathReasons: nodeReasons } : {}) };
    figures.fastPath += fast;
    figures.slowPath += slow;
  }
  return figures;
}

function why(err: unknown): string {
  return err instanceof CommandError ? err.message : String((err as Error)?.message ?? err);
}

/**
 * Pings and streams from the SMN to `path`'s peer; records rttMs / tcpMbps, or a failure. `onFlow` is called as
 * each application flow (the pings, then the TCP stream) starts, e.g. to keep its first packets (--pcap).
 */
export async function measureApps(
  network: LinuxNetwork,
  result: CaseResult,
  path: AppPath,
  onFlow?: (flow: 'ping' | 'tcp') => void,
): Promise<void> {
  const src = path.fromAddress;
  onFlow?.('ping');
  const [cmd, ...args] = network.appCommand(path.from, [
    'ping',
    '-n',
    '-q',
    '-c',
    String(PINGS),
    '-i',
    '0.2',
    '-W',
    '2',
    '-I',
    src,
    path.peerAddress,
  ]);
  try {
    const { stdout } = await runCommand(cmd, args, { timeoutMs: 10_000 });
    result.rttMs = parsePingAverage(stdout);
    if (result.rttMs === undefined) result.failures.push(`ping ${path.peerAddress}: no RTT in its output`);
  } catch (err) {
    result.failures.push(`ping from ${src} to ${path.peerAddress} (${path.peer}): ${why(err)}`);
  }
  const peerNs = network.host(path.peer).ns;
  const [serverCmd, ...serverArgs] = asAppUser(['iperf3', '-s', '-1', '-B', path.peerAddress, '-p', String(APP_PORT)]);
  const server = network.session.spawn(peerNs, 'iperf3 server', serverCmd, serverArgs);
  try {
    await sleep(SERVER_START_MS);
    const [c, ...a] = network.appCommand(path.from, [
      'iperf3',
      '-c',
      path.peerAddress,
      '-B',
      src,
      '-p',
      String(APP_PORT),
      '-t',
      String(TCP_SECONDS),
      '-O',
      String(TCP_OMIT_SECONDS),
      '-J',
    ]);
    const before = snapshot(network);
    onFlow?.('tcp');
    const transfer = runCommand(c, a, { timeoutMs: (TCP_SECONDS + TCP_OMIT_SECONDS + 15) * 1000 });
    transfer.catch(() => undefined); // awaited below; not unhandled while the capture pauses
    // The capture keeps the stream's first frames (the stack checks, --pcap) and then stops: copying every frame
    // of the transfer into this process would measure the lab, not mipsec.
    await sleep(CAPTURE_TCP_MS);
    await network.pauseCapture();
    const { stdout } = await transfer;
    result.tcpDataPath = dataPathDelta(before, snapshot(network));
    result.tcpMbps = parseIperfMbps(stdout);
    const failure = tcpFigureFailure(result.tcpMbps);
    if (failure) result.failures.push(failure);
  } catch (err) {
    result.failures.push(`TCP from ${src} to ${path.peerAddress} (${path.peer}): ${why(err)}`);
  } finally {
    await server.stop();
    await network.startCapture();
  }
}
