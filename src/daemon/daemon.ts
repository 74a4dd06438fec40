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
import { systemClock } from '../net/system-clock.js';
import { TrackedEngine, type SaRecord } from './engine.js';
import { nativeSha256 } from '../engine/addon.js';
import { createLogger, type Logger } from './log.js';
import { serveEndpoints, type OperatorEndpoints } from './endpoints.js';
import { loadMnHaKeys, type MnHaEntry } from './mnha.js';
import { ReplayMarks } from './replay-marks.js';
import { isLive, LiveChanges } from './live-fields.js';
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
  if (node.node.identity && warnings.length > 0)
    throw new DaemonConfigError(warnings.map((w) => w.replace(': warning: ', ': ')));
  const digests: Record<string, string> = { network: digest(node.paths.network) };
  for (const field of ['cert', 'ca'] as const)
    if (node.paths[field]) digests[`identity.${field}`] = digest(node.paths[field]);
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
  const initial = await loadSnapshotFor(o);
  const { node } = initial.loaded;
  const clock = o.clock ?? systemClock;
  const log = createLogger({
    level: o.logLevel ?? 'info',
    role: node.role,
    node: node.name,
    destination: o.logDestination,
  });
  const secrets = loadSecrets(o, initial.loaded);
  let statusOf: (() => Status) | undefined;
  const parts = await startParts(o, { loaded: initial.loaded, clock, log, secrets }, () => {
    if (!statusOf) throw new Error('the daemon is still starting; ask again in a moment');
    return statusOf();
  });
  const daemon = runningDaemon(o, { initial, clock, log, certs: secrets.certs, ...parts });
  statusOf = () => daemon.status();
  const { socketPath, metricsAddress } = parts.endpoints;
  log.info(
    {
      event: 'started',
      engine: parts.engine.impl,
      config: o.configPath,
      statusSocket: socketPath ?? null,
      metrics: metricsAddress ? `${metricsAddress.host}:${metricsAddress.port}` : null,
      identity: node.identity ? initial.loaded.paths.cert : null,
    },
    `${node.role} ${node.name} started`,
  );
  return daemon;
}

/** The config at `o.configPath`, refused if it is for another role than the command's. */
async function loadSnapshotFor(o: DaemonOptions): Promise<Snapshot> {
  const snapshot = await loadSnapshot(o.configPath);
  const { role } = snapshot.loaded.node;
  if (o.role && role !== o.role) {
    const fix = `run it with mipsec ${role} (or give a config with role: ${o.role})`;
    throw new DaemonConfigError([`${o.configPath}: role: this config is for role ${role}; ${fix}`]);
  }
  return snapshot;
}

/** The node's secrets, read from its files. Until the role holds them they are the daemon's to zero (forgetSecrets). */
interface Secrets {
  identity?: Identity;
  certs?: CertCache;
  mnHaKeys?: MnHaEntry[];
}

function loadSecrets(o: DaemonOptions, loaded: LoadedNode): Secrets {
  const { node, paths } = loaded;
  const secrets: Secrets = {};
  const refuse = (message: string): never => {
    forgetSecrets(secrets);
    throw new DaemonConfigError([message]);
  };
  if (node.identity) {
    try {
      secrets.identity = loadIdentity(paths.key!, paths.cert!);
      secrets.certs = new CertCache(loadCertificate(paths.ca!));
    } catch (err) {
      refuse(`${o.configPath}: identity: ${(err as Error).message}`);
    }
  }
  if (node.role === 'sgw') return secrets;
  if (!o.mnHaKeyFile) {
    const peers = node.role === 'ha' ? 'its mobile nodes' : 'its home agent';
    const keys = `the MN-HA keys it shares with ${peers} (RFC 5944 §3.5)`;
    refuse(`mipsec ${node.role} needs --mn-ha-key FILE: ${keys}, one line '<home address> <SPI> <key hex>', mode 0600`);
  }
  try {
    secrets.mnHaKeys = loadMnHaKeys(o.mnHaKeyFile!);
  } catch (err) {
    refuse((err as Error).message);
  }
  return secrets;
}

function forgetSecrets(secrets: Secrets): void {
  secrets.identity?.secretKey.fill(0);
  for (const e of secrets.mnHaKeys ?? []) e.auth.key.fill(0);
}

/** What every start step reads. */
interface StartContext {
  loaded: LoadedNode;
  clock: Clock;
  log: Logger;
  secrets: Secrets;
}

/** The pieces a started daemon runs. */
interface Parts {
  endpoints: OperatorEndpoints;
  marks?: ReplayMarks;
  engine: TrackedEngine;
  host: DaemonHost;
  role: RunningRole;
}

/** A named closing step; stop() and a failed start run theirs even if one before fails. */
type CloseStep = readonly [what: string, close: () => unknown];

async function closeEach(steps: readonly CloseStep[], log: Logger, event: string): Promise<void> {
  for (const [what, close] of steps) {
    try {
      await close();
    } catch (err) {
      log.error({ event, step: what, error: (err as Error).message }, `closing the ${what} failed`);
    }
  }
}

/**
 * Starts the daemon's pieces in order. The operator endpoints come first: a second daemon for the same node stops
 * there, before it touches the network. If a step fails, what started before it is closed again, newest first.
 */
async function startParts(o: DaemonOptions, c: StartContext, answerStatus: () => Status): Promise<Parts> {
  const started: CloseStep[] = [['secrets', () => forgetSecrets(c.secrets)]];
  try {
    const endpoints = await serveEndpoints({
      socketPath: o.statusSocket === false ? undefined : (o.statusSocket ?? defaultSocketPath(c.loaded.node.name)),
      metrics: o.metrics,
      labels: { node: c.loaded.node.name, role: c.loaded.node.role },
      status: answerStatus,
    });
    started.push(['endpoints', () => endpoints.close()]);
    const marks = openReplayMarks(o, c);
    const raw = createEngine(o.engine);
    const engine = trackedEngine(o.wrapEngine ? o.wrapEngine(raw) : raw, c, marks);
    started.push(['engine', () => engine.close()]);
    const host = await o.host(c.loaded, raw);
    started.push(['host', () => host.close?.()]);
    const role = startRole(o, c, host, engine);
    return { endpoints, marks, engine, host, role };
  } catch (err) {
    await closeEach(started.reverse(), c.log, 'start_undo_failed');
    throw err;
  } finally {
    // The role keeps the identity (its keying zeroes it on close) and copies of its MN-HA keys.
    for (const e of c.secrets.mnHaKeys ?? []) e.auth.key.fill(0);
  }
}

/** The replay high-water marks of the state directory (none without one). */
function openReplayMarks(o: DaemonOptions, c: StartContext): ReplayMarks | undefined {
  if (o.stateDir === undefined) return undefined;
  const unreadable = (message: string) => c.log.error({ event: 'replay_marks_unreadable' }, message);
  try {
    return new ReplayMarks(o.stateDir, c.loaded.node.name, () => c.clock.now(), unreadable, nativeSha256());
  } catch (err) {
    throw new DaemonConfigError([`state directory ${o.stateDir}: ${(err as Error).message}`]);
  }
}

/** The role's engine, logging every SA installed and retired. */
function trackedEngine(engine: Engine, c: StartContext, marks: ReplayMarks | undefined): TrackedEngine {
  const { log } = c;
  return new TrackedEngine(
    engine,
    {
      installed: (sa) =>
        log.info(
          {
            event: 'sa_installed',
            sa: sa.id,
            direction: sa.direction,
            layer: sa.role,
            mode: sa.mode,
            peer: sa.peer,
            src: sa.src,
            dst: sa.dst,
          },
          'SA installed',
        ),
      retired: (sa) =>
        log.info(
          { event: 'sa_retired', sa: sa.id, direction: sa.direction, layer: sa.role, peer: sa.peer },
          'SA retired',
        ),
    },
    () => c.clock.now(),
    marks,
  );
}

function startRole(o: DaemonOptions, c: StartContext, host: DaemonHost, engine: TrackedEngine): RunningRole {
  const { identity, certs, mnHaKeys } = c.secrets;
  try {
    return buildRole({
      loaded: c.loaded,
      host,
      clock: c.clock,
      engine,
      identity,
      certs,
      mnHaKeys,
      stateDir: o.stateDir,
      onEvent: ({ event, ...fields }) => c.log.info({ event, ...fields }, event.replace(/_/g, ' ')),
    });
  } catch (err) {
    throw new DaemonConfigError([`${o.configPath}: ${(err as Error).message}`]);
  }
}

/** A started daemon: its pieces and the config state its reloads change. */
interface Running extends Parts {
  initial: Snapshot;
  clock: Clock;
  log: Logger;
  certs?: CertCache;
}

/** The config in force and what reloads did to it (status shows it). */
interface ConfigState {
  current: Snapshot;
  loadedAt: Date;
  reloads: number;
  restartNeededFor: string[];
}

function runningDaemon(o: DaemonOptions, r: Running): Daemon {
  const intervalMs = o.rateIntervalMs ?? 10_000;
  const config: ConfigState = { current: r.initial, loadedAt: new Date(), reloads: 0, restartNeededFor: [] };
  const sampler = new RateSampler(r.engine, () => r.engine.list().map((s) => s.id), intervalMs);
  const timers = [writeMarksEverySecond(r), logFailuresSent(r, intervalMs)];
  const status = statusReader(o, r, sampler, config);
  const reload = () => reloadConfig(o, r, config);
  let offSignals = () => {};
  const { stop, stopped } = stopOnce(async (reason) => {
    r.log.info({ event: 'stopping', reason }, 'stopping');
    offSignals();
    await leavePeers(o, r);
    sampler.close();
    for (const timer of timers) clearInterval(timer);
    await closeParts(r);
    r.log.info({ event: 'stopped' }, 'stopped');
    r.log.flush();
  });
  if (o.handleSignals) {
    const stopOn = (signal: NodeJS.Signals) => () => void stop(signal);
    offSignals = onSignals({ SIGTERM: stopOn('SIGTERM'), SIGINT: stopOn('SIGINT'), SIGHUP: () => void reload() });
  }
  return {
    node: r.initial.loaded.node.name,
    role: r.initial.loaded.node.role,
    log: r.log,
    socketPath: r.endpoints.socketPath,
    metricsAddress: r.endpoints.metricsAddress,
    status,
    sas: () => r.engine.list(),
    reload,
    stop,
    stopped,
  };
}

/** A stop that runs `run` once however often it is called (later calls get the same promise); `stopped` follows it. */
function stopOnce(run: (reason: string) => Promise<void>): Pick<Daemon, 'stop' | 'stopped'> {
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const stop = (reason = 'stop requested') => (stopping ??= run(reason).then(resolveStopped));
  return { stop, stopped };
}

/** Handles each signal until the returned function removes the handlers again. */
function onSignals(handlers: Partial<Record<NodeJS.Signals, () => void>>): () => void {
  const entries = Object.entries(handlers) as [NodeJS.Signals, () => void][];
  for (const [signal, handler] of entries) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of entries) process.off(signal, handler);
  };
}

/** Every second, so a SIGKILL loses at most about a second of replay marks (covered by their margin). */
function writeMarksEverySecond(r: Running): NodeJS.Timeout | undefined {
  const { marks, engine, log } = r;
  if (!marks) return undefined;
  const timer = setInterval(() => {
    try {
      marks.sample((id) => engine.saStats(id));
    } catch (err) {
      log.error(
        { event: 'replay_marks_not_written', error: (err as Error).message },
        'could not write the replay marks',
      );
    }
  }, 1000);
  return timer.unref();
}

/** Failure messages (ICMP 40) are counted by the role per packet; the log gets one summary per interval. */
function logFailuresSent(r: Running, intervalMs: number): NodeJS.Timeout {
  let before: Record<string, number> = {};
  const timer = setInterval(() => {
    const now = Object.fromEntries(Object.entries(r.role.counters()).filter(([name]) => name.startsWith('icmp40_')));
    const increments = Object.entries(now).map(([name, n]) => [name, n - (before[name] ?? 0)] as const);
    const sent = Object.fromEntries(increments.filter(([, n]) => n > 0));
    before = now;
    if (Object.keys(sent).length === 0) return;
    r.log.info({ event: 'failures_sent', counts: sent, intervalMs }, 'ICMP security failures sent');
  }, intervalMs);
  return timer.unref();
}

function statusReader(o: DaemonOptions, r: Running, sampler: RateSampler, config: ConfigState): () => Status {
  const { node } = r.initial.loaded;
  const { engine, role, host } = r;
  const startedAt = new Date();
  const started = performance.now();
  return () =>
    readStatus({
      node: node.name,
      role: node.role,
      startedAt,
      started,
      engine,
      sas: () => engine.list(),
      sampler,
      config: () => {
        const { loadedAt, reloads, restartNeededFor } = config;
        return { file: o.configPath, loadedAt: loadedAt.toISOString(), reloads, restartNeededFor };
      },
      manualSas: role.manualSas && (() => role.manualSas!()),
      bindings: () => role.bindings(),
      roleCounters: () => role.counters(),
      hostCounters: () => host.counters(),
      tables: () => engine.tableSizes(),
      ioCounters: host.ioCounters && (() => host.ioCounters!()),
    });
}

/**
 * Reads the config again. The certificate cache drops what has expired; the role puts in force the changes inside
 * the fields it declares live (SAs already installed stay); every other difference from the config the role started
 * with (identity, interfaces, role, the network map, …) waits for a restart, as does all of it if the role refuses.
 */
async function reloadConfig(o: DaemonOptions, r: Running, config: ConfigState): Promise<ReloadResult> {
  const { log, role } = r;
  let next: Snapshot;
  try {
    next = await loadSnapshot(o.configPath);
  } catch (err) {
    const errors = err instanceof DaemonConfigError ? err.lines : [(err as Error).message];
    const message = 'reload refused: the new config is not valid; still running with the previous one';
    log.error({ event: 'reload_refused', errors }, message);
    return { ok: false, errors };
  }
  const changed = changedFields(config.current, next);
  const { applied, refused } = applyLive(r, next, changed);
  const restartNeededFor = changedFields(r.initial, next).filter((f) => refused || !isLive(f, role.liveFields));
  config.current = next;
  config.loadedAt = new Date();
  config.reloads++;
  config.restartNeededFor = restartNeededFor;
  const message = changed.length ? `reloaded: ${changed.length} field(s) changed` : 'reloaded: no change';
  log.info({ event: 'reload', changed, applied, restartNeededFor, sas: r.engine.list().length }, message);
  return { ok: true, applied, restartNeededFor };
}

/** What a reload can put in force while running: expired certificates dropped, the role's live fields. */
function applyLive(r: Running, next: Snapshot, changed: readonly string[]): { applied: string[]; refused: boolean } {
  const applied: string[] = [];
  const pruned = r.certs?.prune(Math.floor(r.clock.now() / 1000)) ?? [];
  if (pruned.length > 0) applied.push(`certificates (expired dropped: ${pruned.join(', ')})`);
  try {
    applied.push(...r.role.reconfigure(next.loaded, new LiveChanges(changed, r.role.liveFields)));
    return { applied, refused: false };
  } catch (err) {
    const error = (err as Error).message;
    const message = 'the role could not apply the new config; the changes wait for a restart';
    r.log.error({ event: 'reload_not_applied', error }, message);
    return { applied, refused: true };
  }
}

/** What the role owes its peers before it stops (the SMN deregisters). */
async function leavePeers(o: DaemonOptions, r: Running): Promise<void> {
  try {
    await r.role.leave(o.leaveTimeoutMs ?? 2000);
  } catch (err) {
    r.log.warn({ event: 'leave_failed', error: (err as Error).message }, 'could not deregister');
  }
}

/** Every piece closes, the engine last whatever failed before it (its keys are zeroed). */
async function closeParts(r: Running): Promise<void> {
  await closeEach(
    [
      ['role', () => r.role.close()],
      ['replay marks', () => r.marks?.close((id) => r.engine.saStats(id))],
      ['host', () => r.host.close?.()],
      ['endpoints', () => r.endpoints.close()],
      ['engine', () => r.engine.close()],
    ],
    r.log,
    'stop_failed',
  );
}

/** Dotted paths of the node fields and file digests that differ between two loads. */
function changedFields(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string) => {
    if (
      x !== null &&
      y !== null &&
      typeof x === 'object' &&
      typeof y === 'object' &&
      Array.isArray(x) === Array.isArray(y)
    ) {
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)]))
        walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      out.push(path);
    }
  };
  walk(a.loaded.node, b.loaded.node, '');
  for (const [file, d] of Object.entries(b.digests))
    if (a.digests[file] !== d && !out.includes(file)) out.push(`${file} (file contents)`);
  return out;
}
