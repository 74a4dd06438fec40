// A role daemon: one node config → its identity, engine, role and operator interfaces (status socket,
// metrics, logs), with a graceful stop and a reload that applies what the role can change live and keeps
// its installed SAs (only manual SAs whose entry changed are replaced).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createEngine, type Engine, type EngineImpl } from '../engine/index.js';
import { loadNode, type LoadedNode, type Role } from '../config/index.js';
import { CertCache } from '../keys/cache.js';
import { loadCertificate, loadIdentity, type Identity } from '../keys/keyfile.js';
import type { Clock, Host } from '../net/types.js';
import { systemClock } from './clock.js';
import { TrackedEngine, type SaRecord } from './engine.js';
import { createLogger, type Logger } from './log.js';
import { serveEndpoints, type OperatorEndpoints } from './endpoints.js';
import { loadMnHaKeys, type MnHaEntry } from './mnha.js';
import { ReplayMarks } from './replay-marks.js';
import { buildRole, type RunningRole } from './roles.js';
import { defaultSocketPath } from './socket.js';
import { RateSampler, readStatus, type Status } from './status.js';
import type { DestinationStream, LevelWithSilent } from 'pino';

export interface DaemonOptions {
  configPath: string;
  /** The role the command runs; a config of another role is refused. */
  role?: Role;
  /**
   * The network the role runs on, for this node's config (Linux: the current namespace's interfaces).
   * A host with a close() method is closed when the daemon stops (after the role).
   */
  /** The node's world; `engine` is the one its role will run (a host on real interfaces runs its I/O loops on it). */
  host: (loaded: LoadedNode, engine: Engine) => DaemonHost | Promise<DaemonHost>;
  /** Default: the wall clock. MemoryNetwork hosts need the network's virtual clock. */
  clock?: Clock;
  /** Default native (the TypeScript path when the addon is missing, with a warning); 'ts' forces it. */
  engine?: EngineImpl;
  /** Tests: wraps the engine before the role gets it. */
  wrapEngine?: (engine: Engine) => Engine;
  /** File of MN-HA keys (SMN and HA; src/daemon/mnha.ts). */
  mnHaKeyFile?: string;
  /** Default /run/mipsec/<node>.sock; false: no socket. */
  statusSocket?: string | false;
  /** HOST:PORT parsed; no metrics endpoint without it. */
  metrics?: { host: string; port: number };
  logLevel?: LevelWithSilent;
  logDestination?: DestinationStream;
  /** Milliseconds between the two samples rates are computed from (default 10 000). */
  rateIntervalMs?: number;
  /** SIGTERM/SIGINT stop, SIGHUP reloads (the CLI; tests drive stop()/reload() directly). */
  handleSignals?: boolean;
  /**
   * Durable state, in <stateDir>/<node>/: replay high-water marks (./replay-marks.ts; none persist without a
   * stateDir) and the HA's binding journal (default there: /var/lib/mipsec/<node>/).
   */
  stateDir?: string;
  /** How long a stopping SMN waits for its HA to confirm deregistration (default 2000 ms). */
  leaveTimeoutMs?: number;
}

/** A Host the daemon closes on stop (e.g. src/net/linux/attached.ts removes its redirections). */
export type DaemonHost = Host & { close?(): void | Promise<void>; ioCounters?(): Record<string, number> };

/** A config problem found before anything started: print the lines, exit 2. */
export class DaemonConfigError extends Error {
  override name = 'DaemonConfigError';
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
  }
}

export interface ReloadResult {
  ok: boolean;
  errors?: string[];
  /** Fields that changed and are in force now. */
  applied?: string[];
  /** Fields that changed but take effect only after a restart (the running role fixed them at start). */
  restartNeededFor?: string[];
}

export interface Daemon {
  readonly node: string;
  readonly role: string;
  readonly log: Logger;
  readonly socketPath?: string;
  readonly metricsAddress?: { host: string; port: number };
  status(): Status;
  sas(): SaRecord[];
  reload(): Promise<ReloadResult>;
  /** Graceful stop; resolves when everything is closed. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Resolves once stopped (by stop() or a signal). */
  readonly stopped: Promise<void>;
}

/** What a config load gave: the node, plus digests of the files a reload compares. */
interface Snapshot {
  loaded: LoadedNode;
  digests: Record<string, string>;
}

async function loadSnapshot(configPath: string): Promise<Snapshot> {
  const loaded = await loadNode(configPath);
  if (!loaded.ok) throw new DaemonConfigError(loaded.errors);
  const { ok: _ok, warnings, ...node } = loaded;
  // A missing identity file is only a warning for check-config; a daemon cannot start without it.
  if (node.node.identity && warnings.length > 0) throw new DaemonConfigError(warnings.map((w) => w.replace(': warning: ', ': ')));
  const digests: Record<string, string> = { network: digest(node.paths.network) };
  for (const field of ['cert', 'ca'] as const) if (node.paths[field]) digests[`identity.${field}`] = digest(node.paths[field]);
  return { loaded: node, digests };
}

function digest(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch (err) {
    return `unreadable: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export async function runDaemon(o: DaemonOptions): Promise<Daemon> {
  const initial = await loadSnapshot(o.configPath);
  let current = initial;
  const { node } = current.loaded;
  if (o.role && node.role !== o.role) throw new DaemonConfigError([`${o.configPath}: role: this config is for role ${node.role}; run it with mipsec ${node.role} (or give a config with role: ${o.role})`]);
  const clock = o.clock ?? systemClock;
  const log = createLogger({ level: o.logLevel ?? 'info', role: node.role, node: node.name, destination: o.logDestination });

  let identity: Identity | undefined;
  let certs: CertCache | undefined;
  if (node.identity) {
    try {
      identity = loadIdentity(current.loaded.paths.key!, current.loaded.paths.cert!);
      certs = new CertCache(loadCertificate(current.loaded.paths.ca!));
    } catch (err) {
      identity?.secretKey.fill(0);
      throw new DaemonConfigError([`${o.configPath}: identity: ${(err as Error).message}`]);
    }
  }
  const needsMnHa = node.role !== 'sgw';
  if (needsMnHa && !o.mnHaKeyFile) {
    throw new DaemonConfigError([`mipsec ${node.role} needs --mn-ha-key FILE: the MN-HA keys it shares with ${node.role === 'ha' ? 'its mobile nodes' : 'its home agent'} (RFC 5944 §3.5), one line '<home address> <SPI> <key hex>', mode 0600`]);
  }
  let mnHaKeys: MnHaEntry[] | undefined;
  /** Until the role holds them, the secrets are ours to zero when a start fails. */
  const forgetSecrets = () => {
    identity?.secretKey.fill(0);
    for (const e of mnHaKeys ?? []) e.auth.key.fill(0);
  };
  try {
    mnHaKeys = needsMnHa ? loadMnHaKeys(o.mnHaKeyFile!) : undefined;
  } catch (err) {
    forgetSecrets();
    throw new DaemonConfigError([(err as Error).message]);
  }

  // Claim the operator endpoints first: a second daemon for the same node stops here, before it touches the network.
  let statusOf: (() => Status) | undefined;
  const answerStatus = (): Status => {
    if (!statusOf) throw new Error('the daemon is still starting; ask again in a moment');
    return statusOf();
  };
  let endpoints: OperatorEndpoints;
  try {
    endpoints = await serveEndpoints({
      socketPath: o.statusSocket === false ? undefined : (o.statusSocket ?? defaultSocketPath(node.name)),
      metrics: o.metrics, labels: { node: node.name, role: node.role }, status: answerStatus,
    });
  } catch (err) {
    forgetSecrets();
    throw err;
  }
  const closeEndpoints = () => endpoints.close();

  const raw = createEngine(o.engine);
  let host: DaemonHost;
  try {
    host = await o.host(current.loaded, raw);
  } catch (err) {
    raw.close();
    await closeEndpoints();
    forgetSecrets();
    throw err;
  }
  let marks: ReplayMarks | undefined;
  try {
    const unreadable = (message: string) => log.error({ event: 'replay_marks_unreadable' }, message);
    marks = o.stateDir === undefined ? undefined : new ReplayMarks(o.stateDir, node.name, () => clock.now(), unreadable);
  } catch (err) {
    await closeEndpoints();
    await host.close?.();
    raw.close();
    forgetSecrets();
    throw new DaemonConfigError([`state directory ${o.stateDir}: ${(err as Error).message}`]);
  }
  const tracked = new TrackedEngine(o.wrapEngine ? o.wrapEngine(raw) : raw, {
    installed: (sa) => log.info({ event: 'sa_installed', sa: sa.id, direction: sa.direction, layer: sa.role, mode: sa.mode, peer: sa.peer, src: sa.src, dst: sa.dst }, 'SA installed'),
    retired: (sa) => log.info({ event: 'sa_retired', sa: sa.id, direction: sa.direction, layer: sa.role, peer: sa.peer }, 'SA retired'),
  }, () => clock.now(), marks);

  let role: RunningRole;
  try {
    role = buildRole({
      loaded: current.loaded, host, clock, engine: tracked, identity, certs, mnHaKeys, stateDir: o.stateDir,
      onEvent: ({ event, ...fields }) => log.info({ event, ...fields }, event.replace(/_/g, ' ')),
    });
  } catch (err) {
    tracked.close();
    forgetSecrets();
    await closeEndpoints();
    await host.close?.();
    throw new DaemonConfigError([`${o.configPath}: ${(err as Error).message}`]);
  } finally {
    // The role keeps the identity (its keying zeroes it on close) and copies of its MN-HA keys.
    for (const e of mnHaKeys ?? []) e.auth.key.fill(0);
  }

  // Every second, so a SIGKILL loses at most about a second of marks (covered by their margin).
  const saStats = (id: number) => tracked.saStats(id);
  const markWriter = marks && setInterval(() => {
    try {
      marks.sample(saStats);
    } catch (err) {
      log.error({ event: 'replay_marks_not_written', error: (err as Error).message }, 'could not write the replay marks');
    }
  }, 1000);
  markWriter?.unref();

  const startedAt = new Date();
  const started = performance.now();
  let loadedAt = new Date();
  let reloads = 0;
  let restartNeededFor: string[] = [];
  const intervalMs = o.rateIntervalMs ?? 10_000;
  const sampler = new RateSampler(tracked, () => tracked.list().map((s) => s.id), intervalMs);
  // Failure messages (ICMP 40) are counted by the role per packet; the log gets one summary per interval.
  let failuresBefore: Record<string, number> = {};
  const failureLog = setInterval(() => {
    const now = Object.fromEntries(Object.entries(role.counters()).filter(([name]) => name.startsWith('icmp40_')));
    const sent = Object.fromEntries(Object.entries(now).map(([name, n]) => [name, n - (failuresBefore[name] ?? 0)]).filter(([, n]) => (n as number) > 0));
    failuresBefore = now;
    if (Object.keys(sent).length > 0) log.info({ event: 'failures_sent', counts: sent, intervalMs }, 'ICMP security failures sent');
  }, intervalMs);
  failureLog.unref();

  const status = (): Status => readStatus({
    node: node.name, role: node.role, startedAt, started, engine: tracked, sas: () => tracked.list(), sampler,
    config: () => ({ file: o.configPath, loadedAt: loadedAt.toISOString(), reloads, restartNeededFor }),
    manualSas: role.manualSas && (() => role.manualSas!()), bindings: () => role.bindings(), roleCounters: () => role.counters(), hostCounters: () => host.counters(),
    tables: () => tracked.tableSizes(),
    ioCounters: host.ioCounters && (() => host.ioCounters!()),
  });

  const reload = async (): Promise<ReloadResult> => {
    let next: Snapshot;
    try {
      next = await loadSnapshot(o.configPath);
    } catch (err) {
      const errors = err instanceof DaemonConfigError ? err.lines : [(err as Error).message];
      log.error({ event: 'reload_refused', errors }, 'reload refused: the new config is not valid; still running with the previous one');
      return { ok: false, errors };
    }
    const changed = changedFields(current, next);
    const applied: string[] = [];
    // Certificates: the cache drops what has expired since (peers are fetched again by discovery).
    const pruned = certs?.prune(Math.floor(clock.now() / 1000)) ?? [];
    if (pruned.length > 0) applied.push(`certificates (expired dropped: ${pruned.join(', ')})`);
    // The role applies what it can change live (policy knobs, manual SAs, known Border-SGWs); SAs
    // already installed stay. If it refuses, the old values stay in force until a restart.
    let refused: string | undefined;
    try {
      applied.push(...role.reconfigure(next.loaded, changed));
    } catch (err) {
      refused = (err as Error).message;
      log.error({ event: 'reload_not_applied', error: refused }, 'the role could not apply the new config; the changes wait for a restart');
    }
    // What differs from the config the role started with and it cannot change live (identity, interfaces,
    // role, the network map, …) waits for a restart.
    restartNeededFor = changedFields(initial, next).filter((f) => refused !== undefined || !role.appliesLive(f));
    current = next;
    loadedAt = new Date();
    reloads++;
    log.info({ event: 'reload', changed, applied, restartNeededFor, sas: tracked.list().length }, changed.length ? `reloaded: ${changed.length} field(s) changed` : 'reloaded: no change');
    return { ok: true, applied, restartNeededFor };
  };

  statusOf = status;
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const signals: [NodeJS.Signals, () => void][] = [];

  const stop = (reason = 'stop requested'): Promise<void> => {
    stopping ??= (async () => {
      log.info({ event: 'stopping', reason }, 'stopping');
      for (const [signal, handler] of signals) process.off(signal, handler);
      try {
        await role.leave(o.leaveTimeoutMs ?? 2000);
      } catch (err) {
        log.warn({ event: 'leave_failed', error: (err as Error).message }, 'could not deregister');
      }
      sampler.close();
      clearInterval(failureLog);
      clearInterval(markWriter);
      // Each step runs even if one before it failed: the engine must be closed (keys zeroed) whatever happens.
      const steps = [
        ['role', () => role.close()], ['replay marks', () => marks?.close(saStats)], ['host', () => host.close?.()],
        ['endpoints', closeEndpoints], ['engine', () => tracked.close()],
      ] as const;
      for (const [step, run] of steps) {
        try {
          await run();
        } catch (err) {
          log.error({ event: 'stop_failed', step, error: (err as Error).message }, `closing the ${step} failed`);
        }
      }
      log.info({ event: 'stopped' }, 'stopped');
      log.flush();
      resolveStopped();
    })();
    return stopping;
  };

  if (o.handleSignals) {
    const on = (signal: NodeJS.Signals, handler: () => void) => {
      signals.push([signal, handler]);
      process.on(signal, handler);
    };
    on('SIGTERM', () => void stop('SIGTERM'));
    on('SIGINT', () => void stop('SIGINT'));
    on('SIGHUP', () => void reload());
  }

  log.info({
    event: 'started', engine: tracked.impl, config: o.configPath, statusSocket: endpoints.socketPath ?? null,
    metrics: endpoints.metricsAddress ? `${endpoints.metricsAddress.host}:${endpoints.metricsAddress.port}` : null, identity: node.identity ? current.loaded.paths.cert : null,
  }, `${node.role} ${node.name} started`);

  return {
    node: node.name, role: node.role, log, socketPath: endpoints.socketPath, metricsAddress: endpoints.metricsAddress,
    status, sas: () => tracked.list(), reload, stop, stopped,
  };
}

/** Dotted paths of the node fields and file digests that differ between two loads. */
function changedFields(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string) => {
    if (x !== null && y !== null && typeof x === 'object' && typeof y === 'object' && Array.isArray(x) === Array.isArray(y)) {
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      out.push(path);
    }
  };
  walk(a.loaded.node, b.loaded.node, '');
  for (const [file, d] of Object.entries(b.digests)) if (a.digests[file] !== d && !out.includes(file)) out.push(`${file} (file contents)`);
  return out;
}
