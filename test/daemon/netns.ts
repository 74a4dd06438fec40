// Daemons on real interfaces in namespaces a test makes itself (root only): the namespaces and veths,
// the built CLI started inside one, its status over the socket, and a fresh dist/ to run it from.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const run = promisify(execFile);

export const ipIn = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });

/**
 * A veth between namespaces `a` and `b`, each end renamed, addressed and up. `tmp` makes the names it is created
 * under unique among tests running at the same time.
 */
export function addVeth(
  tmp: string,
  a: string,
  ifA: string,
  cidrA: string,
  b: string,
  ifB: string,
  cidrB: string,
): void {
  const [tmpA, tmpB] = [`v${tmp}`, `w${tmp}`];
  execFileSync('ip', ['link', 'add', tmpA, 'netns', a, 'type', 'veth', 'peer', 'name', tmpB, 'netns', b]);
  ipIn(a, 'link', 'set', tmpA, 'name', ifA);
  ipIn(b, 'link', 'set', tmpB, 'name', ifB);
  ipIn(a, 'addr', 'add', cidrA, 'dev', ifA);
  ipIn(b, 'addr', 'add', cidrB, 'dev', ifB);
  ipIn(a, 'link', 'set', ifA, 'up');
  ipIn(b, 'link', 'set', ifB, 'up');
}

/** Namespaces named `<prefix>-<random tag>-<name>`, removed by close(). */
export class TestNamespaces {
  readonly tag = randomBytes(3).toString('hex');
  private readonly made: string[] = [];

  constructor(private readonly prefix: string) {}

  add(name: string): string {
    const ns = `${this.prefix}-${this.tag}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.made.push(ns);
    ipIn(ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** A veth between two namespaces, each end named and addressed, both up. */
  veth(a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string): void {
    addVeth(this.tag, a, ifA, cidrA, b, ifB, cidrB);
  }

  close(): void {
    for (const ns of this.made.reverse()) execFileSync('ip', ['netns', 'del', ns]);
    this.made.length = 0;
  }
}

/** Whether dist/ is older than the sources the CLI daemons run (then the test rebuilds it). */
function distIsStale(dirs: readonly string[]): boolean {
  const built = statSync(join(ROOT, 'dist', 'cli', 'main.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = (dir: string) =>
    Math.max(
      ...readdirSync(join(ROOT, 'src', dir), { recursive: true, encoding: 'utf8' }).map(
        (f) => statSync(join(ROOT, 'src', dir, f)).mtimeMs,
      ),
    );
  return built < Math.max(...dirs.map(newest));
}

/** Rebuilds dist/ when src/ is newer; throws when it stays stale. */
export async function ensureDist(): Promise<void> {
  const dirs = ['bench', 'cli', 'config', 'daemon', 'net', 'roles', 'wire', 'engine', 'keys'];
  if (distIsStale(dirs)) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(() => undefined);
  if (distIsStale(dirs)) throw new Error('dist/ is older than src/ and tsc did not rebuild it: run npm run build');
}

export interface StartedDaemon {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** `mipsec <args>` from the built CLI inside namespace `ns`, its output kept. */
export function startInNs(ns: string, args: readonly string[]): StartedDaemon {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, 'bin/mipsec.js', ...args], { cwd: ROOT });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

/**
 * `mipsec ha` in namespace `ns` with the files `file` names (ha.yaml, mn-ha.keys, the socket ha.sock, the state
 * directory state), once it logged "started".
 */
export async function startHaInNs(ns: string, file: (name: string) => string): Promise<StartedDaemon> {
  const d = startInNs(ns, [
    'ha',
    '--config',
    file('ha.yaml'),
    '--mn-ha-key',
    file('mn-ha.keys'),
    '--status-socket',
    file('ha.sock'),
    '--state-dir',
    file('state'),
  ]);
  await waitFor(
    () => `the HA to start (output: ${d.out()})`,
    () => d.out().includes('"event":"started"'),
    40_000,
  );
  return d;
}

/** Polls `check` every 20 ms; `what` may be a function so the message shows output gathered while waiting. */
export async function waitFor(what: string | (() => string), check: () => boolean, ms = 15_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (check()) return;
  throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}

/** `mipsec status --json` of the daemon answering on `socket`. */
export async function daemonStatus<T = Record<string, unknown>>(socket: string): Promise<T> {
  const { stdout } = await run(process.execPath, ['bin/mipsec.js', 'status', '--json', '--socket', socket], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return JSON.parse(stdout) as T;
}
