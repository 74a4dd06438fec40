// Two `mipsec sgw` daemons on real interfaces, only ever inside namespaces the calling test creates: two SGW
// namespaces joined by a veth (the Internet), a host namespace behind each (Figure 6's sgw0 and sgw1 sites).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Status } from '../../src/daemon/status.js';
import { addVeth, ROOT, run } from './netns.js';

export { ROOT, run, waitFor } from './netns.js';

export interface Started {
  child: ChildProcess;
  socket: string;
  out: () => string;
  exited: Promise<number | null>;
}

export type Node = 'sgw0' | 'sgw1' | 'h0' | 'h1';

export interface SgwNamespaces {
  tag: string;
  ns: Record<Node, string>;
  ipIn(name: string, ...args: string[]): string;
  inNs(name: string, cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }>;
  addNs(name: string): void;
  veth(a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string): void;
  /** The four namespaces, the links between them and the routes a real gateway's kernel would have. */
  build(): void;
  startSgw(node: 'sgw0' | 'sgw1', config: string, socket: string): Started;
  /** Kills what startSgw started and deletes every namespace made here. */
  removeAll(): void;
}

export function sgwNamespaces(prefix: string): SgwNamespaces {
  const tag = randomBytes(3).toString('hex');
  const named = (node: Node) => `${prefix}-${tag}-${node}`;
  const ns: Record<Node, string> = { sgw0: named('sgw0'), sgw1: named('sgw1'), h0: named('h0'), h1: named('h1') };
  const made: string[] = [];
  const started: Started[] = [];
  let links = 0;
  const ipIn = (name: string, ...args: string[]) => execFileSync('ip', ['-n', name, ...args], { encoding: 'utf8' });
  const self: SgwNamespaces = {
    tag,
    ns,
    ipIn,
    inNs: (name, cmd, args) => run('ip', ['netns', 'exec', name, cmd, ...args], { encoding: 'utf8', timeout: 20_000 }),
    addNs(name) {
      execFileSync('ip', ['netns', 'add', name]);
      made.push(name);
      ipIn(name, 'link', 'set', 'lo', 'up');
    },
    veth(a, ifA, cidrA, b, ifB, cidrB) {
      addVeth(`${tag}${links++}`, a, ifA, cidrA, b, ifB, cidrB);
    },
    build() {
      for (const name of Object.values(ns)) self.addNs(name);
      self.veth(ns.sgw0, 'outside', '198.18.0.1/16', ns.sgw1, 'outside', '198.18.1.1/16');
      self.veth(ns.sgw0, 'inside', '10.0.0.1/16', ns.h0, 'eth0', '10.0.0.10/16');
      self.veth(ns.sgw1, 'inside', '10.1.0.1/16', ns.h1, 'eth0', '10.1.0.10/16');
      ipIn(ns.h0, 'route', 'add', 'default', 'via', '10.0.0.1');
      ipIn(ns.h1, 'route', 'add', 'default', 'via', '10.1.0.1');
      // As on a real gateway: the kernel knows where the other site is; the daemon reads it.
      ipIn(ns.sgw0, 'route', 'add', '10.1.0.0/16', 'via', '198.18.1.1');
      ipIn(ns.sgw1, 'route', 'add', '10.0.0.0/16', 'via', '198.18.0.1');
    },
    startSgw(node, config, socket) {
      // Durable state (replay marks) in the test's own directory, not the default /var/lib/mipsec.
      const args = [
        'netns',
        'exec',
        ns[node],
        process.execPath,
        'bin/mipsec.js',
        'sgw',
        '--config',
        config,
        '--status-socket',
        socket,
        '--state-dir',
        `${socket}.state`,
      ];
      const child = spawn('ip', args, { cwd: ROOT });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const s = { child, socket, out: () => out, exited };
      started.push(s);
      return s;
    },
    removeAll() {
      for (const s of started) s.child.kill('SIGKILL');
      for (const name of made.reverse()) execFileSync('ip', ['netns', 'del', name]);
    },
  };
  return self;
}

/** `mipsec status --json` of the daemon behind `socket`. */
export async function statusJson(socket: string): Promise<Status> {
  const args = ['bin/mipsec.js', 'status', '--json', '--socket', socket];
  const { stdout } = await run(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(stdout);
}

/** Whether dist/ (what bin/mipsec.js runs) is older than the daemon's sources. */
export function distIsStale(): boolean {
  const built = (f: string) => statSync(join(ROOT, 'dist', f), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = (dir: string) =>
    Math.max(...readdirSync(join(ROOT, 'src', dir)).map((f) => statSync(join(ROOT, 'src', dir, f)).mtimeMs));
  const sources = ['daemon', 'cli', 'net/linux', 'engine', 'config', 'roles'];
  return built('net/linux/attached.js') < Math.max(...sources.map(newest));
}

/** Rebuilds dist/ when it is stale (the daemons run bin/mipsec.js). */
export async function freshDist(): Promise<boolean> {
  if (distIsStale()) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(() => undefined);
  return !distIsStale();
}
