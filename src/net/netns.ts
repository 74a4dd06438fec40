// Linux network namespaces for benchmarks and the lab: namespaces, veth pairs, addresses, routes and
// processes inside them, every one recorded in a session that removes them again — on close(), on
// SIGINT/SIGTERM, and (synchronously, best effort) when the process exits after an exception.
// Everything goes through iproute2 (`ip -n NS …`, `ip -j` to read); needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Linux IFNAMSIZ − 1. */
const MAX_IFNAME = 15;
/** How long a tracked process gets after SIGTERM before SIGKILL. */
const TERM_GRACE_MS = 2000;
const OUTPUT_LIMIT = 64 * 1024 * 1024;

/** A command that failed: names the command line, its exit status and the tail of its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    /** What it printed to stdout before failing (some tools, e.g. `iperf3 -J`, report errors there). */
    readonly stdout = '',
  ) {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    super(`\`${command}\` failed (${exitCode === null ? 'killed' : `exit ${exitCode}`})${tail ? `: ${tail}` : ''}`);
  }
}

export interface RunOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with CommandError on a non-zero exit or a timeout. */
export function runCommand(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: OUTPUT_LIMIT,
        env: options.env ?? process.env,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const code =
            typeof (err as NodeJS.ErrnoException).code === 'number' ? (err as unknown as { code: number }).code : null;
          const why =
            (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd}: not found (install it)` : stderr || err.message;
          reject(new CommandError([cmd, ...args].join(' '), code, why, stdout));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/** runCommand() without awaiting: returns stdout, throws CommandError. */
export function runCommandSync(cmd: string, args: readonly string[], timeoutMs = 30_000): string {
  return runProcessSync(cmd, args, undefined, timeoutMs, () => [cmd, ...args].join(' '));
}

/**
 * Several `ip` or `tc` commands in one process (`-batch -`), in order: a daemon's start spawns a few processes, not
 * one per rule and filter (each costs ~10 ms). The first that fails stops the rest (with continueOnError, `-force`:
 * the rest still run); the CommandError names it. netns: in that namespace (`-n`) rather than the caller's.
 */
export function runBatchSync(
  cmd: 'ip' | 'tc',
  commands: readonly (readonly string[])[],
  {
    continueOnError = false,
    netns,
    timeoutMs = 30_000,
  }: { continueOnError?: boolean; netns?: string; timeoutMs?: number } = {},
): string {
  if (commands.length === 0) return '';
  const lines = commands.map((args) => {
    if (args.some((a) => a === '' || /\s/.test(a)))
      throw new Error(`${cmd} -batch: an argument is empty or has spaces`);
    return args.join(' ');
  });
  const batch = [...(netns ? ['-n', netns] : []), ...(continueOnError ? ['-force'] : []), '-batch', '-'];
  return runProcessSync(cmd, batch, `${lines.join('\n')}\n`, timeoutMs, (stderr) => {
    const failed = lines[Number(/Command failed -:(\d+)/.exec(stderr)?.[1] ?? 0) - 1];
    return failed === undefined ? `${cmd} -batch (${lines.length} commands)` : `${cmd} ${failed}`;
  });
}

function runProcessSync(
  cmd: string,
  args: readonly string[],
  input: string | undefined,
  timeoutMs: number,
  describe: (stderr: string) => string,
): string {
  try {
    return execFileSync(cmd, args, {
      timeout: timeoutMs,
      maxBuffer: OUTPUT_LIMIT,
      encoding: 'utf8',
      ...(input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input, stdio: ['pipe', 'pipe', 'pipe'] }),
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; stderr?: string; stdout?: string };
    const why = e.code === 'ENOENT' ? `${cmd}: not found (install it)` : e.stderr || e.message;
    throw new CommandError(describe(String(e.stderr ?? '')), e.status ?? null, String(why), e.stdout ?? '');
  }
}

/** Parses `ip -j` output; iproute2 prints nothing at all for an empty list. */
function parseIpJson<T>(text: string, what: string): T[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    const value: unknown = JSON.parse(trimmed);
    if (!Array.isArray(value)) throw new Error('not an array');
    return value as T[];
  } catch (err) {
    throw new Error(`ip -j ${what}: unreadable JSON (${(err as Error).message})`);
  }
}

/** The names of all network namespaces (`ip -j netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await runCommand('ip', ['-j', 'netns', 'list']);
  return parseIpJson<{ name: string }>(stdout, 'netns list').map((n) => n.name);
}

/** A short random suffix for names that must not collide with another run's. */
export function randomSuffix(bytes = 2): string {
  return randomBytes(bytes).toString('hex');
}

function checkIfname(name: string): void {
  if (name.length === 0 || name.length > MAX_IFNAME || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new Error(`interface name '${name}': must be 1..${MAX_IFNAME} characters of [A-Za-z0-9_.-] (Linux IFNAMSIZ)`);
  }
}

export interface LinkInfo {
  ifname: string;
  operstate?: string;
  mtu?: number;
  flags?: string[];
}

export interface AddressInfo {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

export interface RouteSpec {
  /** 'a.b.c.d/len' or 'default'. */
  prefix: string;
  via?: string;
  dev?: string;
  table?: number;
  /** Extra `ip route` words, e.g. ['mtu', '1400']. */
  extra?: string[];
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep the last this many bytes of stdout+stderr for error messages (default 16 KiB). */
  keepOutput?: number;
  /** Written to its stdin, which is then closed (e.g. keys, so they never touch a file). */
  input?: string;
}

/** A process started in a namespace and tracked by its session until it exits. */
export class ManagedProcess {
  private output = '';
  private readonly keep: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
    keepOutput: number,
  ) {
    this.keep = keepOutput;
    const collect = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-this.keep);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.output += `\n${err.message}`;
        this.exitStatus ??= { code: null, signal: null };
        resolve(this.exitStatus);
      });
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
  }

  /** The process id (the command itself: `ip netns exec` execs it in place). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === undefined && this.child.pid !== undefined;
  }

  /** The last bytes it wrote to stdout and stderr. */
  recentOutput(): string {
    return this.output;
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves once it has exited. */
  async stop(graceMs = TERM_GRACE_MS): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

interface CleanupAction {
  label: string;
  run: () => Promise<void>;
  runSync?: () => void;
}

const openSessions = new Set<NetnsSession>();
let signalHandlersInstalled = false;

function onSignal(signal: NodeJS.Signals): void {
  const code = 128 + (signal === 'SIGINT' ? 2 : 15);
  process.stderr.write(`\n${signal}: removing namespaces and processes…\n`);
  void Promise.allSettled([...openSessions].map((s) => s.close())).then(() => process.exit(code));
}

/** Last resort when the process exits with sessions still open (uncaught exception, process.exit). */
function onExit(): void {
  for (const session of openSessions) session.closeSync();
}

function trackSession(session: NetnsSession, open: boolean): void {
  if (open) openSessions.add(session);
  else openSessions.delete(session);
  if (openSessions.size > 0 && !signalHandlersInstalled) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('exit', onExit);
    signalHandlersInstalled = true;
  } else if (openSessions.size === 0 && signalHandlersInstalled) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    signalHandlersInstalled = false;
  }
}

/**
 * A set of namespaces and what runs in them, named `<prefix>-<role>`. Everything it creates is
 * removed by close(): tracked processes first (SIGTERM, then SIGKILL), then the registered
 * cleanup actions in reverse order, then the namespaces (which takes their veths with them).
 */
export class NetnsSession {
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<ManagedProcess>();
  private readonly actions: CleanupAction[] = [];
  private closing: Promise<void> | undefined;

  /** prefix: e.g. 'mb-1a2b'; namespace names are `${prefix}-${role}`. */
  constructor(readonly prefix: string) {
    if (!/^[A-Za-z0-9_.-]{1,40}$/.test(prefix))
      throw new Error(`namespace prefix '${prefix}': use 1..40 characters of [A-Za-z0-9_.-]`);
    trackSession(this, true);
  }

  /** The namespaces this session created, in creation order. */
  get names(): readonly string[] {
    return this.namespaces;
  }

  nsName(role: string): string {
    return `${this.prefix}-${role}`;
  }

  private checkOpen(): void {
    if (this.closing) throw new Error(`netns session ${this.prefix} is closed`);
  }

  private checkOwn(ns: string): void {
    if (!this.namespaces.includes(ns)) throw new Error(`namespace '${ns}' was not created by session ${this.prefix}`);
  }

  /** Creates `${prefix}-${role}` with its loopback up; returns its name. */
  async addNamespace(role: string): Promise<string> {
    this.checkOpen();
    const ns = this.nsName(role);
    await runCommand('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.ip(ns, ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** addNamespace() for callers that cannot await (the lab's Network builds hosts synchronously). */
  addNamespaceSync(role: string): string {
    this.checkOpen();
    const ns = this.nsName(role);
    runCommandSync('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    this.ipSync(ns, ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** ip() for callers that cannot await. */
  ipSync(ns: string, args: readonly string[]): string {
    this.checkOwn(ns);
    return runCommandSync('ip', ['-n', ns, ...args]);
  }

  /** exec() for callers that cannot await. */
  execSync(ns: string, cmd: string, args: readonly string[]): string {
    this.checkOwn(ns);
    return runCommandSync('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** `ip -n NS args…` in one of this session's namespaces. */
  async ip(ns: string, args: readonly string[]): Promise<RunResult> {
    this.checkOwn(ns);
    return runCommand('ip', ['-n', ns, ...args]);
  }

  /** `ip -j -n NS args…`, parsed. */
  async ipJson<T>(ns: string, args: readonly string[]): Promise<T[]> {
    this.checkOwn(ns);
    const { stdout } = await runCommand('ip', ['-j', '-n', ns, ...args]);
    return parseIpJson<T>(stdout, args.join(' '));
  }

  /** A veth pair with one end in each namespace, both up. */
  async addVeth(nsA: string, ifA: string, nsB: string, ifB: string, mtu?: number): Promise<void> {
    this.checkOwn(nsA);
    this.checkOwn(nsB);
    checkIfname(ifA);
    checkIfname(ifB);
    await runCommand('ip', [
      '-n',
      nsA,
      'link',
      'add',
      ifA,
      ...(mtu ? ['mtu', String(mtu)] : []),
      'type',
      'veth',
      'peer',
      'name',
      ifB,
      'netns',
      nsB,
    ]);
    if (mtu) await this.ip(nsB, ['link', 'set', ifB, 'mtu', String(mtu)]);
    await this.ip(nsA, ['link', 'set', ifA, 'up']);
    await this.ip(nsB, ['link', 'set', ifB, 'up']);
  }

  async addAddress(ns: string, dev: string, cidr: string): Promise<void> {
    await this.ip(ns, ['addr', 'add', cidr, 'dev', dev]);
  }

  private routeWords(route: RouteSpec): string[] {
    return [
      route.prefix,
      ...(route.via ? ['via', route.via] : []),
      ...(route.dev ? ['dev', route.dev] : []),
      ...(route.table !== undefined ? ['table', String(route.table)] : []),
      ...(route.extra ?? []),
    ];
  }

  /** `ip route replace`: adds the route or overwrites the one for the same prefix. */
  async replaceRoute(ns: string, route: RouteSpec): Promise<void> {
    await this.ip(ns, ['route', 'replace', ...this.routeWords(route)]);
  }

  /** Removes a route; a route that is already gone is not an error. */
  async deleteRoute(ns: string, route: Pick<RouteSpec, 'prefix' | 'table'>): Promise<void> {
    try {
      await this.ip(ns, [
        'route',
        'del',
        route.prefix,
        ...(route.table !== undefined ? ['table', String(route.table)] : []),
      ]);
    } catch (err) {
      if (!(err instanceof CommandError && /No such process|not found/i.test(err.stderr))) throw err;
    }
  }

  async links(ns: string): Promise<LinkInfo[]> {
    return this.ipJson<LinkInfo>(ns, ['link', 'show']);
  }

  async addresses(ns: string): Promise<AddressInfo[]> {
    return this.ipJson<AddressInfo>(ns, ['addr', 'show']);
  }

  /** Deletes a link if it exists (a daemon's TUN device that outlived it). */
  async deleteLinkIfPresent(ns: string, dev: string): Promise<void> {
    if ((await this.links(ns)).some((l) => l.ifname === dev)) await this.ip(ns, ['link', 'del', dev]);
  }

  /** Sets a sysctl inside the namespace, e.g. ('net.ipv4.ip_forward', '1'). */
  async sysctl(ns: string, key: string, value: string): Promise<void> {
    await this.exec(ns, 'sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /** Runs a command inside a namespace to completion. */
  async exec(ns: string, cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.checkOwn(ns);
    return runCommand('ip', ['netns', 'exec', ns, cmd, ...args], options);
  }

  /** Starts a long-running command inside a namespace; it is stopped by close() if still running. */
  spawn(ns: string, label: string, cmd: string, args: readonly string[], options: SpawnOptions = {}): ManagedProcess {
    this.checkOpen();
    this.checkOwn(ns);
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    if (options.input !== undefined) {
      // A child that exits before reading its input must not take this process down with EPIPE.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
    const proc = new ManagedProcess(label, child, options.keepOutput ?? 16 * 1024);
    this.processes.add(proc);
    void proc.exited.then(() => this.processes.delete(proc));
    return proc;
  }

  /**
   * Registers an extra undo step (temp files, a route outside the namespaces); run in reverse order.
   * runSync, if given, is what closeSync() does for it when the process exits without close().
   */
  onCleanup(label: string, run: () => Promise<void>, runSync?: () => void): void {
    this.checkOpen();
    this.actions.push({ label, run, runSync });
  }

  /** Removes everything; safe to call more than once. Errors are collected and thrown together at the end. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    const errors: string[] = [];
    await Promise.all([...this.processes].map((p) => p.stop()));
    for (const action of this.actions.splice(0).reverse()) {
      try {
        await action.run();
      } catch (err) {
        errors.push(`${action.label}: ${(err as Error).message}`);
      }
    }
    for (const ns of [...this.namespaces].reverse()) {
      try {
        await runCommand('ip', ['netns', 'del', ns]);
      } catch (err) {
        errors.push(`ip netns del ${ns}: ${(err as Error).message}`);
      }
    }
    this.namespaces.length = 0;
    trackSession(this, false);
    if (errors.length) throw new Error(`netns session ${this.prefix}: cleanup incomplete: ${errors.join('; ')}`);
  }

  /** Synchronous best effort for the 'exit' event: kill processes, delete namespaces. */
  closeSync(): void {
    for (const p of this.processes) {
      if (p.running) p.child.kill('SIGKILL');
    }
    for (const action of this.actions.reverse()) {
      try {
        action.runSync?.();
      } catch {
        // Best effort while exiting.
      }
    }
    this.actions.length = 0;
    for (const ns of this.namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // Nothing more can be done while exiting; the name stays visible in `ip netns list`.
      }
    }
    this.namespaces.length = 0;
    trackSession(this, false);
  }
}
