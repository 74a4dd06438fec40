// `mipsec lab` without the command line: runs the lab's cases on real namespaces or on the
// in-memory network, one fresh network per case, with optional pcaps and key logs per case.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineImpl } from '../engine/index.js';
import type { SaDesc } from '../engine/types.js';
import { KeyLogWriter } from '../keys/keylog.js';
import type { LinuxNetwork } from '../net/linux/network.js';
import { writePcap } from '../net/pcap.js';
import { runCommandSync } from '../net/netns.js';
import type { Network } from '../net/types.js';
import { KeyLog } from '../roles/common/keylog.js';
import { selectCases, type CaseContext, type CaseResult, type LabCase } from './cases.js';
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
  /** Leave the last case's namespaces and roles up (netns mode). */
  keep?: boolean;
  /** Called before and after each case. */
  progress?: (event: { phase: 'start'; index: number; total: number; labCase: LabCase } | { phase: 'done'; index: number; total: number; result: CaseResult }) => void;
}

export interface LabReport {
  mode: LabMode;
  engine: EngineImpl;
  cases: CaseResult[];
  /** The network left running by --keep. */
  kept?: LinuxNetwork;
}

/** Why the lab cannot use namespaces here, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['tc', 'iproute2'], ['dumpcap', 'tshark'], ['iperf3', 'iperf3'], ['setpriv', 'util-linux']]) {
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

/** The roles' in-memory key log that also writes every SA to DIR/esp_sa and DIR/skip-sa.jsonl. */
class WritingKeyLog extends KeyLog {
  constructor(private readonly writer: KeyLogWriter) {
    super();
  }

  override record(sa: SaDesc): void {
    super.record(sa);
    this.writer.record(sa);
  }
}

function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

function writeCaptures(network: Network, dir: string): void {
  for (const link of network.links()) writePcap(join(dir, `${safeFileName(link.name)}.pcap`), link.captures().filter((f) => f.fate === 'delivered'));
}

export async function runLab(options: LabOptions): Promise<LabReport> {
  const cases = selectCases(options.only);
  const report: LabReport = { mode: options.mode, engine: options.engine, cases: [] };
  for (const [index, labCase] of cases.entries()) {
    options.progress?.({ phase: 'start', index, total: cases.length, labCase });
    const keepThis = options.keep === true && index === cases.length - 1 && options.mode === 'netns';
    const dir = options.pcapDir && join(options.pcapDir, safeFileName(labCase.id));
    if (dir) mkdirSync(dir, { recursive: true });
    const writer = dir ? new KeyLogWriter(dir) : undefined;
    const roleErrors: string[] = [];
    let network: LinuxNetwork | undefined;
    const base: LabRuntime<Network> = options.mode === 'netns'
      ? (linuxRuntime({ onError: (err) => roleErrors.push(String((err as Error)?.stack ?? err)) }, (n) => { network = n; }) as unknown as LabRuntime<Network>)
      : (memoryRuntime as unknown as LabRuntime<Network>);
    const runtime: LabRuntime<Network> = writer ? { ...base, keyLog: () => new WritingKeyLog(writer) } : base;
    const ctx: CaseContext<Network> = {
      engine: options.engine,
      runtime,
      extras: async (caseNetwork, result, path) => {
        if (dir) writeCaptures(caseNetwork, dir);
        if (network && path) await measureApps(network, result, path);
        return keepThis;
      },
    };
    let result: CaseResult;
    try {
      result = await labCase.run(ctx);
    } catch (err) {
      result = { id: labCase.id, section: labCase.section, title: labCase.title, pass: false, stacks: {}, failures: [`crashed: ${(err as Error)?.message ?? err}`], durationMs: 0 };
    } finally {
      writer?.close();
      if (!keepThis) await network?.close();
    }
    if (roleErrors.length) {
      result.failures.push(...roleErrors.map((e) => `role error: ${e.split('\n')[0]}`));
      result.pass = false;
    }
    if (keepThis) report.kept = network;
    report.cases.push(result);
    options.progress?.({ phase: 'done', index, total: cases.length, result });
  }
  return report;
}
