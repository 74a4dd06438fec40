// One measurement of one path: a single-stream TCP run and a UDP run with iperf3 (client → server
// through the gateways), and the CPU the path spent during the TCP run, read from /proc:
//   utime + stime of the path's processes (/proc/PID/stat, all their threads)
//   + softirq time of all CPUs (/proc/stat), where the kernel forwards and where TUN/UDP/veth
//   receive work lands.
// iperf3's own CPU time is not counted: it is the same load on every path.
import fs from 'node:fs';
import { CommandError, runCommand, type ManagedProcess } from '../../net/netns.js';
import { waitFor, type DataPathCounts } from './paths.js';
import { PLAN, type Topology } from './topology.js';

export const UDP_PAYLOAD = 1400;
/** iperf3's target rate for UDP: far above what any path carries, so the sender runs flat out. */
const UDP_TARGET = '10G';
export const IPERF_PORT = 5201;

export interface RunFigures {
  tcp_gbps: number;
  /** Bits the server received in the TCP run, in Gbit. */
  tcp_gbit: number;
  tcp_retransmits: number | null;
  /** null when the UDP run failed; udp_error says why. */
  udp_pps: number | null;
  udp_sent_pps: number | null;
  udp_error?: string;
  /** CPU seconds counted during the TCP run (processes + softirq). */
  cpu_s: number;
  cpu_process_s: number;
  cpu_softirq_s: number;
  cpu_s_per_gbit: number;
  /**
   * Paths with mipsec daemons: packets of the TCP run the daemons' I/O loops carried natively, packets they punted to
   * JavaScript, and the JavaScript share (slow / (fast + slow)).
   */
  tcp_fast_path_packets?: number;
  tcp_slow_path_packets?: number;
  tcp_js_share?: number;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of /proc times. */
async function ticksPerSecond(): Promise<number> {
  if (clockTicks === undefined) {
    const value = Number((await runCommand('getconf', ['CLK_TCK'])).stdout.trim());
    if (!Number.isInteger(value) || value <= 0)
      throw new Error(`getconf CLK_TCK printed '${value}', expected a positive integer`);
    clockTicks = value;
  }
  return clockTicks;
}

/** utime + stime of a process in ticks; /proc/PID/stat field 2 may hold spaces, so parse after its last ')'. */
export function processTicks(statText: string): number {
  const close = statText.lastIndexOf(')');
  if (close < 0) throw new Error('unreadable /proc/PID/stat: no command name');
  const fields = statText.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unreadable /proc/PID/stat: utime/stime');
  return utime + stime;
}

/** The softirq column of the aggregate "cpu" line of /proc/stat, in ticks. */
export function softirqTicks(procStat: string): number {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  const value = Number(line?.trim().split(/\s+/)[7]);
  if (!line || !Number.isFinite(value)) throw new Error('unreadable /proc/stat: no softirq column on the cpu line');
  return value;
}

interface CpuSample {
  processes: number;
  softirq: number;
}

function sampleCpu(processes: readonly ManagedProcess[]): CpuSample {
  let total = 0;
  for (const p of processes) {
    if (!p.running || p.pid === undefined)
      throw new Error(`${p.label} is not running: ${p.recentOutput().trim().split('\n').slice(-2).join(' | ')}`);
    total += processTicks(fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8'));
  }
  return { processes: total, softirq: softirqTicks(fs.readFileSync('/proc/stat', 'utf8')) };
}

/** Where iperf3's client runs. */
type ClientSide = Pick<Topology, 'session' | 'client'>;

/** One sum in iperf3's -J report: the fields read (packets and lost_packets in UDP runs, retransmits in TCP). */
export interface IperfSum {
  bytes: number;
  seconds: number;
  bits_per_second: number;
  packets?: number;
  lost_packets?: number;
  retransmits?: number;
}

/** iperf3's -J report as iperf() returns it (end checked present); its sums depend on the version and protocol. */
export interface IperfReport {
  end: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum };
}

/** Runs the iperf3 client in the client namespace and returns its parsed JSON report. */
export async function iperf(
  topo: ClientSide,
  args: string[],
  seconds: number,
  port = IPERF_PORT,
): Promise<IperfReport> {
  const argv = [
    '-c',
    PLAN.server.addr,
    '-p',
    String(port),
    '-t',
    String(seconds),
    '-J',
    '--connect-timeout',
    '3000',
    ...args,
  ];
  let stdout: string;
  try {
    ({ stdout } = await topo.session.exec(topo.client, 'iperf3', argv, { timeoutMs: (seconds + 20) * 1000 }));
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    const reported = safeJson(err.stdout)?.error;
    const stderr = err.stderr
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('warning:'))
      .join(' | ');
    throw new Error(
      `iperf3 ${args.join(' ') || '(TCP)'} failed (exit ${err.exitCode}): ` +
        `${reported ?? (stderr || err.stdout.slice(0, 300) || 'no output')}`,
    );
  }
  const report = safeJson(stdout);
  if (report?.error) throw new Error(`iperf3 ${args.join(' ') || '(TCP)'}: ${report.error}`);
  if (!report?.end) throw new Error(`iperf3 printed no report: ${stdout.slice(0, 200)}`);
  return report;
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Starts the iperf3 server in the server namespace and waits until it listens. */
export async function startIperfServer(
  topo: Pick<Topology, 'session' | 'server'>,
  port = IPERF_PORT,
): Promise<ManagedProcess> {
  const server = topo.session.spawn(topo.server, `iperf3 server :${port}`, 'iperf3', [
    '-s',
    '-B',
    PLAN.server.addr,
    '-p',
    String(port),
  ]);
  const listening = async (): Promise<boolean> =>
    (await topo.session.exec(topo.server, 'ss', ['-Hltn', `sport = :${port}`])).stdout.trim() !== '';
  try {
    await waitFor('the iperf3 server to listen', listening, 10_000, [server]);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** True once the server answers a ping from the client (the path carries packets). */
export async function reachable(topo: Topology): Promise<boolean> {
  try {
    await topo.session.exec(topo.client, 'ping', ['-c', '1', '-W', '1', '-q', PLAN.server.addr], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** One single-stream TCP run: Gbit/s and Gbit as the server received them. */
export async function measureTcp(
  topo: ClientSide,
  seconds: number,
  port = IPERF_PORT,
): Promise<{ gbps: number; gbit: number; retransmits: number | null }> {
  const tcp = await iperf(topo, [], seconds, port);
  const received = tcp.end.sum_received;
  if (!received || !(received.bytes > 0) || !(received.seconds > 0)) {
    throw new Error(
      `TCP: the server received nothing (sender: ${tcp.end.sum_sent?.bytes ?? '?'} bytes, ` +
        `${tcp.end.sum_sent?.retransmits ?? '?'} retransmits)`,
    );
  }
  return {
    gbps: (received.bytes * 8) / received.seconds / 1e9,
    gbit: (received.bytes * 8) / 1e9,
    retransmits: tcp.end.sum_sent?.retransmits ?? null,
  };
}

export async function measureOnce(
  topo: Topology,
  processes: readonly ManagedProcess[],
  seconds: number,
  counts?: () => Promise<DataPathCounts>,
): Promise<RunFigures> {
  const hz = await ticksPerSecond();
  const countsBefore = await counts?.();
  const before = sampleCpu(processes);
  const tcp = await measureTcp(topo, seconds);
  const after = sampleCpu(processes);
  const countsAfter = await counts?.();
  const share = countsBefore && countsAfter ? dataPathShare(countsBefore, countsAfter) : {};
  const tcpGbit = tcp.gbit;
  const cpuProcess = (after.processes - before.processes) / hz;
  const cpuSoftirq = (after.softirq - before.softirq) / hz;

  // A path that queues without bound (libipsec) can starve iperf3's own control connection behind
  // the flood, so a failed UDP run costs the UDP figure only, with its reason.
  let udpFigures: Pick<RunFigures, 'udp_pps' | 'udp_sent_pps' | 'udp_error'>;
  try {
    const udp = await iperf(topo, ['-u', '-l', String(UDP_PAYLOAD), '-b', UDP_TARGET], seconds);
    const counts = udpCounts(udp);
    udpFigures = { udp_pps: counts.received / counts.seconds, udp_sent_pps: counts.sent / counts.seconds };
  } catch (err) {
    udpFigures = { udp_pps: null, udp_sent_pps: null, udp_error: (err as Error).message };
  }
  return {
    tcp_gbps: tcp.gbps,
    tcp_gbit: tcpGbit,
    tcp_retransmits: tcp.retransmits,
    ...udpFigures,
    cpu_s: cpuProcess + cpuSoftirq,
    cpu_process_s: cpuProcess,
    cpu_softirq_s: cpuSoftirq,
    cpu_s_per_gbit: (cpuProcess + cpuSoftirq) / tcpGbit,
    ...share,
  };
}

function dataPathShare(
  before: DataPathCounts,
  after: DataPathCounts,
): Pick<RunFigures, 'tcp_fast_path_packets' | 'tcp_slow_path_packets' | 'tcp_js_share'> {
  const fast = after.fastPath - before.fastPath;
  const slow = after.slowPath - before.slowPath;
  return {
    tcp_fast_path_packets: fast,
    tcp_slow_path_packets: slow,
    tcp_js_share: fast + slow > 0 ? slow / (fast + slow) : 0,
  };
}

/**
 * Datagrams the server received and the client sent; iperf3 ≥ 3.11 reports both sides in end.sum_received / sum_sent.
 */
export function udpCounts(report: any): { received: number; sent: number; seconds: number } {
  const rx = report.end.sum_received ?? report.end.sum;
  const tx = report.end.sum_sent ?? report.end.sum;
  if (!rx || typeof rx.packets !== 'number' || typeof rx.lost_packets !== 'number' || !(rx.seconds > 0)) {
    throw new Error('UDP: iperf3 report lacks packets/lost_packets/seconds');
  }
  return { received: Math.max(0, rx.packets - rx.lost_packets), sent: tx.packets, seconds: rx.seconds };
}
