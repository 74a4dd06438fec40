// What `mipsec status` shows: one snapshot of a running daemon (the JSON shape is documented in
// docs/operations.md, "Status JSON"), and the rate sampler behind its packets-per-second figures.
import { COUNTER_SLOTS, reasonName, Verdict, VERDICT_COUNTER_BASE, type Engine } from '../engine/types.js';
import { readdirSync } from 'node:fs';
import type { SaRecord, TableSizes } from './engine.js';
import type { HaBindingView, ManualSaView, SmnMobilityView } from './roles.js';

export const STATUS_VERSION = 1;

export interface SaStatus extends Omit<SaRecord, 'installedAt'> {
  packets: number;
  bytes: number;
  /** Packets per second over the last sampling interval; null until two samples exist. */
  packetsPerSecond: number | null;
}

export type ManualSaStatus = Omit<ManualSaView, 'installedAt'>;

export interface Status {
  version: typeof STATUS_VERSION;
  node: string;
  role: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  engine: Engine['impl'];
  config: { file: string; loadedAt: string; reloads: number; restartNeededFor: string[] };
  sas: SaStatus[];
  /** SGW: its manual SPI-mode SAs (config manualSas), on their own engine (ids of their own); else []. */
  manualSas: ManualSaStatus[];
  /** HA: list of bindings; SMN: its registration and position; SGW: null. */
  bindings: HaBindingView[] | SmnMobilityView | null;
  counters: {
    /** Engine drops and punts by reason name (non-zero only). */
    engine: Record<string, number>;
    /** Engine verdicts: forward, deliver, punt, drop. */
    verdicts: Record<string, number>;
    role: Record<string, number>;
    host: Record<string, number>;
    /** The I/O loops' own counters (docs/engine.md §9 stats(), summed over interfaces); {} without loops. */
    io: Record<string, number>;
    /** Packets the I/O loops carried out without JavaScript (io.fastPath); 0 without loops. */
    fastPath: number;
    /** Packets the I/O loops punted to JavaScript, in all and by engine reason (io.punted, io.punted_<reason>). */
    slowPath: { total: number; reasons: Record<string, number> };
  };
  rates: { intervalSeconds: number | null; packetsPerSecond: number | null; dropsPerSecond: number | null };
  /**
   * The process's memory (bytes, process.memoryUsage()) and open file descriptors (null off Linux): what a soak watches
   * drift.
   */
  process: {
    rssBytes: number;
    heapUsedBytes: number;
    heapTotalBytes: number;
    externalBytes: number;
    openFds: number | null;
  };
  /** What the engine's tables hold; null where the role's engine is not tracked. */
  tables: TableSizes | null;
}

function processFigures(): Status['process'] {
  const m = process.memoryUsage();
  let openFds: number | null = null;
  try {
    openFds = readdirSync('/proc/self/fd').length;
  } catch {
    // Not Linux: no /proc.
  }
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    openFds,
  };
}

export const VERDICT_NAMES = Object.fromEntries(
  Object.entries(Verdict)
    .filter(([, v]) => v !== Verdict.NONE)
    .map(([k, v]) => [v, k.toLowerCase()]),
) as Record<number, string>;

/** Engine counters split into reasons and verdicts (COUNTER_SLOTS layout of src/engine/types.ts). */
export function engineCounters(counters: BigUint64Array): {
  reasons: Record<string, number>;
  verdicts: Record<string, number>;
} {
  const reasons: Record<string, number> = {};
  for (let i = 1; i < VERDICT_COUNTER_BASE && i < reasonName.length; i++)
    if (counters[i] > 0n) reasons[reasonName[i]] = Number(counters[i]);
  const verdicts: Record<string, number> = {};
  for (const [code, name] of Object.entries(VERDICT_NAMES)) {
    const slot = VERDICT_COUNTER_BASE + Number(code);
    verdicts[name] = slot < COUNTER_SLOTS ? Number(counters[slot] ?? 0n) : 0;
  }
  return { reasons, verdicts };
}

/** Where one role's status comes from (a daemon's, or one of `mipsec lab --keep`'s roles). */
export interface StatusParts {
  node: string;
  role: string;
  startedAt: Date;
  /** performance.now() at start. */
  started: number;
  engine: Engine;
  /** The SAs installed now (never key bytes). */
  sas: () => readonly Omit<SaRecord, 'installedAt'>[];
  sampler: RateSampler;
  /** SGW with manual SAs: their records and counters. */
  manualSas?: () => readonly ManualSaView[];
  config: () => Status['config'];
  bindings: () => Status['bindings'] | undefined;
  roleCounters: () => Record<string, number>;
  hostCounters: () => Readonly<Record<string, number>>;
  tables?: () => TableSizes;
  /** A host on real interfaces: its I/O loops' counters. */
  ioCounters?: () => Record<string, number>;
}

function ioFigures(io: Record<string, number>): Pick<Status['counters'], 'io' | 'fastPath' | 'slowPath'> {
  const reasons = Object.fromEntries(
    Object.entries(io)
      .filter(([name]) => name.startsWith('punted_'))
      .map(([name, n]) => [name.slice('punted_'.length), n]),
  );
  return { io, fastPath: io.fastPath ?? 0, slowPath: { total: io.punted ?? 0, reasons } };
}

/** One snapshot, in the shape of docs/operations.md "Status JSON". */
export function readStatus(p: StatusParts): Status {
  const { reasons, verdicts } = engineCounters(p.engine.counters());
  const rates = p.sampler.rates();
  return {
    version: STATUS_VERSION,
    node: p.node,
    role: p.role,
    pid: process.pid,
    startedAt: p.startedAt.toISOString(),
    uptimeSeconds: Math.round((performance.now() - p.started) / 100) / 10,
    engine: p.engine.impl,
    config: p.config(),
    sas: p.sas().map((sa) => {
      const { installedAt: _at, ...fields } = sa as SaRecord;
      const stats = p.engine.saStats(sa.id);
      return {
        ...fields,
        packets: Number(stats?.packets ?? 0n),
        bytes: Number(stats?.bytes ?? 0n),
        packetsPerSecond: rates.perSa(sa.id),
      };
    }),
    manualSas: (p.manualSas?.() ?? []).map(({ installedAt: _at, ...fields }) => fields),
    bindings: p.bindings() ?? null,
    counters: {
      engine: reasons,
      verdicts,
      role: p.roleCounters(),
      host: { ...p.hostCounters() },
      ...ioFigures(p.ioCounters?.() ?? {}),
    },
    rates: {
      intervalSeconds: rates.intervalSeconds,
      packetsPerSecond: rates.packetsPerSecond,
      dropsPerSecond: rates.dropsPerSecond,
    },
    process: processFigures(),
    tables: p.tables?.() ?? null,
  };
}

interface Sample {
  at: number;
  packets: number;
  drops: number;
  perSa: Map<number, number>;
}

/** Keeps the last two samples of the packet counters; rates are their difference over the time between. */
export class RateSampler {
  private previous?: Sample;
  private latest?: Sample;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly engine: Engine,
    private readonly saIds: () => number[],
    intervalMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const { verdicts } = engineCounters(this.engine.counters());
    const perSa = new Map<number, number>();
    for (const id of this.saIds()) perSa.set(id, Number(this.engine.saStats(id)?.packets ?? 0n));
    this.previous = this.latest;
    this.latest = {
      at: performance.now(),
      packets: Object.values(verdicts).reduce((a, b) => a + b, 0),
      drops: verdicts.drop,
      perSa,
    };
  }

  rates(): Status['rates'] & { perSa: (id: number) => number | null } {
    const [a, b] = [this.previous, this.latest];
    if (!a || !b || b.at <= a.at)
      return { intervalSeconds: null, packetsPerSecond: null, dropsPerSecond: null, perSa: () => null };
    const seconds = (b.at - a.at) / 1000;
    const rate = (n: number) => Math.round((n / seconds) * 10) / 10;
    return {
      intervalSeconds: Math.round(seconds * 1000) / 1000,
      packetsPerSecond: rate(b.packets - a.packets),
      dropsPerSecond: rate(b.drops - a.drops),
      perSa: (id) => (b.perSa.has(id) ? rate(b.perSa.get(id)! - (a.perSa.get(id) ?? 0)) : null),
    };
  }

  close(): void {
    clearInterval(this.timer);
  }
}

const pad = (text: string, width: number) => text.padEnd(width);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The human table `mipsec status` prints. */
export function formatStatus(s: Status): string {
  const lines = [
    `node ${s.node} (${s.role}), pid ${s.pid}, up ${formatDuration(s.uptimeSeconds)}, engine ${s.engine}`,
    `config ${s.config.file}, loaded ${s.config.loadedAt}, ` +
      `${s.config.reloads} reload${s.config.reloads === 1 ? '' : 's'}` +
      (s.config.restartNeededFor.length ? `; restart needed for: ${s.config.restartNeededFor.join(', ')}` : ''),
    `rates: ${s.rates.packetsPerSecond ?? '-'} packets/s, ${s.rates.dropsPerSecond ?? '-'} drops/s` +
      (s.rates.intervalSeconds ? ` (last ${s.rates.intervalSeconds} s)` : ''),
    `process: rss ${mib(s.process.rssBytes)}, ` +
      `heap ${mib(s.process.heapUsedBytes)} of ${mib(s.process.heapTotalBytes)}, ${s.process.openFds ?? '-'} open fds` +
      (s.tables ? `; tables: ${s.tables.sas} SAs, ${s.tables.routes} routes, ${s.tables.policies} policies` : ''),
    '',
    `SAs (${s.sas.length})`,
  ];
  const header = ['id', 'dir', 'layer', 'mode', 'peer', 'src', 'dst', 'packets', 'bytes', 'pkt/s'];
  const rows = s.sas.map((sa) => [
    String(sa.id),
    sa.direction,
    sa.role,
    sa.mode,
    sa.peer,
    sa.src,
    sa.dst,
    String(sa.packets),
    String(sa.bytes),
    sa.packetsPerSecond === null ? '-' : String(sa.packetsPerSecond),
  ]);
  lines.push(...table(header, rows));
  if (s.manualSas.length > 0) {
    const manualRows = s.manualSas.map((sa) => [
      String(sa.id),
      sa.name,
      sa.direction,
      sa.peer,
      sa.src,
      sa.dst,
      String(sa.packets),
      String(sa.bytes),
    ]);
    lines.push(
      '',
      `manual SAs (${s.manualSas.length})`,
      ...table(['id', 'name', 'dir', 'peer', 'src', 'dst', 'packets', 'bytes'], manualRows),
    );
  }
  if (Array.isArray(s.bindings)) {
    lines.push(
      '',
      `bindings (${s.bindings.length})`,
      ...table(
        ['home address', 'care-of', 'lifetime', 'left'],
        s.bindings.map((b) => [b.homeAddress, b.careOf, `${b.lifetimeSeconds}s`, `${b.remainingSeconds}s`]),
      ),
    );
  } else if (s.bindings) {
    const m = s.bindings;
    lines.push(
      '',
      `mobility: home ${m.homeAddress}, ${m.place}${m.site ? ` (${m.site})` : ''}, ` +
        `care-of ${m.careOf}, registration ${m.registration}` +
        `${m.remainingSeconds !== undefined ? `, ${m.remainingSeconds}s left` : ''}`,
    );
  }
  const section = (title: string, counts: Record<string, number>) => {
    const entries = Object.entries(counts).filter(([, n]) => n > 0);
    lines.push('', `${title}${entries.length ? '' : ': none'}`, ...entries.map(([k, n]) => `  ${pad(k, 40)} ${n}`));
  };
  section('engine verdicts', s.counters.verdicts);
  section('engine drops and punts by reason', s.counters.engine);
  section('role counters', s.counters.role);
  section('host drops', s.counters.host);
  const slow = s.counters.slowPath;
  const share =
    s.counters.fastPath + slow.total > 0
      ? ` (${((100 * slow.total) / (s.counters.fastPath + slow.total)).toFixed(3)} % in JavaScript)`
      : '';
  lines.push('', `data path: ${s.counters.fastPath} packets native, ${slow.total} punted to JavaScript${share}`);
  section('punted to JavaScript, by reason', slow.reasons);
  section('I/O loop', s.counters.io);
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string[] {
  if (rows.length === 0) return ['  none'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => pad(c, widths[i])).join('  ')}`.trimEnd();
  return [line(header), ...rows.map(line)];
}

function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const [d, h, m] = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60)];
  return d ? `${d}d${h}h` : h ? `${h}h${m}m` : m ? `${m}m${s % 60}s` : `${s}s`;
}
