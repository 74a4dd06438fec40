// `mipsec lab` without the command line: runs the lab's cases on real namespaces or on the
// in-memory network, one fresh network per case, with optional pcaps and key logs per case.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineImpl } from '../engine/index.js';
import type { SaDesc } from '../engine/types.js';
import { KeyLogWriter } from '../keys/keylog.js';
import type { LinuxNetwork } from '../net/linux/network.js';
import { firstFramesOfFlows, writePcap } from '../net/pcap.js';
import { runCommandSync } from '../net/netns.js';
import type { Network } from '../net/types.js';
import { KeyLog } from '../roles/common/keylog.js';
import { saRecord, type SaRecord } from '../daemon/engine.js';
import { serveEndpoints, type OperatorEndpoints } from '../daemon/endpoints.js';
import { sgwFace, smnFace, type RunningRole } from '../daemon/roles.js';
import { SOCKET_DIR } from '../daemon/socket.js';
import { RateSampler, readStatus } from '../daemon/status.js';
import type { Engine } from '../engine/types.js';
import type { Host } from '../net/types.js';
import type { CaseContext, CaseResult, LabCase } from './case.js';
import { selectCases } from './cases.js';
import type { World } from './world.js';
import { measureApps } from './measure.js';
import { linuxRuntime } from './runtime-linux.js';
import { memoryRuntime, type LabRuntime } from './scenario.js';

export type LabMode = 'netns' | 'memory';

export interface LabOptions {
  mode: LabMode;
  engine: EngineImpl;
  /** Case ids; default all. */
  only?: string[];
  /** Write DIR/<case>/<link>.pcap, esp_sa and skip-sa.jsonl. */
  pcapDir?: string;
  /** TEST RUNS ONLY, with pcapDir: skip-sa.jsonl also holds each SKIP SA's Kij and Kp (docs/security.md). */
  keyChain?: boolean;
  /** Leave the last case's namespaces and roles up (netns mode), each role with a status socket. */
  keep?: boolean;
  /** With keep: a Prometheus endpoint per kept role, on consecutive ports from this one (port 0: a free port each). */
  metrics?: { host: string; port: number };
  /** Called before and after each case. */
  progress?: (
    event:
      | { phase: 'start'; index: number; total: number; labCase: LabCase }
      | { phase: 'done'; index: number; total: number; result: CaseResult },
  ) => void;
}

export interface LabReport {
  mode: LabMode;
  engine: EngineImpl;
  cases: CaseResult[];
  /** The network left running by --keep. */
  kept?: LinuxNetwork;
  /** The kept roles' status sockets and metrics URLs. */
  keptRoles?: KeptRole[];
}

export interface KeptRole {
  node: string;
  role: 'sgw' | 'smn';
  socketPath: string;
  metricsUrl?: string;
}

/** Where `mipsec status --socket` reaches a kept lab role. */
export function labSocketPath(node: string): string {
  return `${SOCKET_DIR}/lab-${node}.sock`;
}

/** Why the lab cannot use namespaces here, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['tc', 'iproute2'],
    ['dumpcap', 'tshark'],
    ['iperf3', 'iperf3'],
    ['ping', 'iputils-ping'],
    ['setpriv', 'util-linux'],
  ]) {
    try {
      runCommandSync('sh', ['-c', `command -v ${tool}`]);
    } catch {
      return `${tool} is missing (apt-get install ${pkg})`;
    }
  }
  try {
    runCommandSync('ip', ['netns', 'list']);
  } catch (err) {
    return `network namespaces unavailable (${(err as Error).message})`;
  }
  return undefined;
}

/**
 * The roles' in-memory key log, which also writes every SA to DIR/esp_sa and DIR/skip-sa.jsonl with
 * --pcap, and keeps what status shows of each SA (never key bytes) for the kept roles.
 */
class LabKeyLog extends KeyLog {
  readonly sas: SaRecord[] = [];

  constructor(
    private readonly writer: KeyLogWriter | undefined,
    keyChain: boolean,
  ) {
    super({ keyChain });
  }

  override record(sa: SaDesc): void {
    super.record(sa);
    this.writer?.record(sa, undefined, this.keyChainOf(sa));
    this.sas.push(saRecord(sa, Date.now()));
  }
}

interface KeptSource {
  node: string;
  role: KeptRole['role'];
  host: Host;
  engine: Engine;
  face: RunningRole;
  /** Addresses whose SAs are this role's: an outbound SA's source, an inbound one's destination. */
  addresses: () => string[];
}

/**
 * The kept world's SGWs and SMN, each with the daemon's status socket and (optionally) metrics
 * endpoint. buildWorld makes one engine per SGW in map order, then the SMN's; the HA runs none.
 */
async function serveKeptRoles(
  caseId: string,
  world: World<Network>,
  network: LinuxNetwork,
  keyLog: LabKeyLog,
  metrics: LabOptions['metrics'],
): Promise<KeptRole[]> {
  const sgwNames = [...world.sgws.keys()];
  if (world.engines.length !== sgwNames.length + 1)
    throw new Error(`--keep: expected one engine per SGW and one for the SMN, found ${world.engines.length}`);
  const interfaceAddresses = (host: Host) => host.interfaces().map((i) => i.address);
  const sources: KeptSource[] = sgwNames.map((name, i) => {
    const host = network.host(name);
    return {
      node: name,
      role: 'sgw',
      host,
      engine: world.engines[i],
      face: sgwFace(world.sgws.get(name)!),
      addresses: () => interfaceAddresses(host),
    };
  });
  sources.push({
    node: 'smn',
    role: 'smn',
    host: world.smnHost,
    engine: world.engines[sgwNames.length],
    face: smnFace(world.smn, network.clock),
    addresses: () => [...interfaceAddresses(world.smnHost), world.smn.homeAddress],
  });
  const opened: { endpoints: OperatorEndpoints; sampler: RateSampler }[] = [];
  const closeAll = async () => {
    for (const { endpoints, sampler } of opened.splice(0)) {
      sampler.close();
      await endpoints.close();
    }
  };
  network.session.onCleanup('status sockets and metrics', closeAll, () => {
    for (const { endpoints } of opened) endpoints.closeSync();
  });
  const kept: KeptRole[] = [];
  for (const [i, src] of sources.entries()) {
    const sas = () => {
      const mine = new Set(src.addresses());
      return keyLog.sas.filter(
        (sa) => mine.has(sa.direction === 'out' ? sa.src : sa.dst) && src.engine.saStats(sa.id) !== undefined,
      );
    };
    const sampler = new RateSampler(src.engine, () => sas().map((sa) => sa.id), 10_000);
    const startedAt = new Date();
    const started = performance.now();
    const status = () =>
      readStatus({
        node: src.node,
        role: src.role,
        startedAt,
        started,
        engine: src.engine,
        sas,
        sampler,
        config: () => ({
          file: `mipsec lab case ${caseId}`,
          loadedAt: startedAt.toISOString(),
          reloads: 0,
          restartNeededFor: [],
        }),
        bindings: () => src.face.bindings(),
        roleCounters: () => src.face.counters(),
        hostCounters: () => src.host.counters(),
      });
    let endpoints: OperatorEndpoints;
    try {
      endpoints = await serveEndpoints({
        socketPath: labSocketPath(src.node),
        metrics: metrics && { host: metrics.host, port: metrics.port === 0 ? 0 : metrics.port + i },
        labels: { node: src.node, role: src.role },
        status,
      });
    } catch (err) {
      sampler.close();
      await closeAll();
      throw err;
    }
    opened.push({ endpoints, sampler });
    const m = endpoints.metricsAddress;
    kept.push({
      node: src.node,
      role: src.role,
      socketPath: endpoints.socketPath!,
      metricsUrl: m && `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}/metrics`,
    });
  }
  return kept;
}

function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Frames kept per link of each application flow (the pings, the TCP stream): its start, not the whole stream. */
export const FLOW_FRAMES_PER_LINK = 400;

/** One pcap per link: the probes' frames, then the first frames of each application flow started at `flowStarts`. */
function writeCaptures(network: Network, dir: string, flowStarts: readonly number[]): void {
  for (const link of network.links()) {
    const delivered = link.captures().filter((f) => f.fate === 'delivered');
    const kept = firstFramesOfFlows(delivered, flowStarts, FLOW_FRAMES_PER_LINK);
    writePcap(join(dir, `${safeFileName(link.name)}.pcap`), kept);
  }
}

export async function runLab(options: LabOptions): Promise<LabReport> {
  const cases = selectCases(options.only);
  const report: LabReport = { mode: options.mode, engine: options.engine, cases: [] };
  for (const [index, labCase] of cases.entries()) {
    options.progress?.({ phase: 'start', index, total: cases.length, labCase });
    const keepThis = options.keep === true && index === cases.length - 1 && options.mode === 'netns';
    const dir = options.pcapDir && join(options.pcapDir, safeFileName(labCase.id));
    if (dir) mkdirSync(dir, { recursive: true });
    const keyChain = options.keyChain === true && dir !== undefined;
    const writer = dir ? new KeyLogWriter(dir, { keyChain }) : undefined;
    const keyLog = writer || keepThis ? new LabKeyLog(writer, keyChain) : undefined;
    const roleErrors: string[] = [];
    let network: LinuxNetwork | undefined;
    const base: LabRuntime<Network> =
      options.mode === 'netns'
        ? (linuxRuntime({ onError: (err) => roleErrors.push(String((err as Error)?.stack ?? err)) }, (n) => {
            network = n;
          }) as unknown as LabRuntime<Network>)
        : (memoryRuntime as unknown as LabRuntime<Network>);
    const runtime: LabRuntime<Network> = keyLog ? { ...base, keyLog: () => keyLog } : base;
    let kept = false;
    let keptRoles: KeptRole[] | undefined;
    const ctx: CaseContext<Network> = {
      engine: options.engine,
      runtime,
      extras: async (caseNetwork, result, path, world) => {
        const flowStarts: number[] = [];
        if (network && path) await measureApps(network, result, path, () => flowStarts.push(Date.now()));
        if (dir) writeCaptures(caseNetwork, dir, flowStarts);
        if (!keepThis || !network) return false;
        if (world && keyLog) {
          try {
            keptRoles = await serveKeptRoles(labCase.id, world, network, keyLog, options.metrics);
          } catch (err) {
            result.failures.push(`--keep: ${(err as Error).message}`);
            return false;
          }
        }
        kept = true;
        return true;
      },
    };
    let result: CaseResult;
    try {
      result = await labCase.run(ctx);
    } catch (err) {
      result = {
        id: labCase.id,
        section: labCase.section,
        title: labCase.title,
        pass: false,
        stacks: {},
        failures: [`crashed: ${(err as Error)?.message ?? err}`],
        durationMs: 0,
      };
    } finally {
      writer?.close();
      if (!kept) await network?.close();
    }
    if (roleErrors.length) {
      result.failures.push(...roleErrors.map((e) => `role error: ${e.split('\n')[0]}`));
      result.pass = false;
    }
    if (kept) {
      report.kept = network;
      report.keptRoles = keptRoles;
    }
    report.cases.push(result);
    options.progress?.({ phase: 'done', index, total: cases.length, result });
  }
  return report;
}
