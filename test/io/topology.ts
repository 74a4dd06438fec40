// Two namespaces joined by a veth pair, made and removed by the tests themselves (root only).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const canRunNetns = process.getuid?.() === 0 && existsSync('/dev/net/tun');

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

/** Runs a command inside a namespace without blocking the JS thread (punts must be served meanwhile). */
export async function inNetns(
  ns: string,
  cmd: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('ip', ['netns', 'exec', ns, cmd, ...args], {
      timeout: timeoutMs,
      encoding: 'utf8',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

export interface Side {
  ns: string;
  veth: string;
  /** Address on the veth (outer tunnel address). */
  outer: string;
  tun: string;
  /** TUN address (inner), with a /16 that covers the other side's inner /24. */
  inner: string;
}

export interface Pair {
  a: Side;
  b: Side;
  remove(): void;
}

/** mipsec-t-<random>-a and -b, veth 192.168.77.1/24 ↔ .2/24, both up. */
export function makePair(): Pair {
  const tag = randomBytes(3).toString('hex');
  const a: Side = {
    ns: `mipsec-t-${tag}-a`,
    veth: `mva${tag}`,
    outer: '192.168.77.1',
    tun: `mta${tag}`,
    inner: '10.77.1.1',
  };
  const b: Side = {
    ns: `mipsec-t-${tag}-b`,
    veth: `mvb${tag}`,
    outer: '192.168.77.2',
    tun: `mtb${tag}`,
    inner: '10.77.2.1',
  };
  const pair: Pair = {
    a,
    b,
    remove() {
      for (const s of [a, b]) {
        try {
          ip('netns', 'del', s.ns);
        } catch {
          // already gone
        }
      }
    },
  };
  try {
    ip('netns', 'add', a.ns);
    ip('netns', 'add', b.ns);
    ip('link', 'add', a.veth, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.veth, 'netns', b.ns);
    for (const s of [a, b]) {
      ip('-n', s.ns, 'addr', 'add', `${s.outer}/24`, 'dev', s.veth);
      ip('-n', s.ns, 'link', 'set', s.veth, 'up');
      ip('-n', s.ns, 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    pair.remove();
    throw err;
  }
  return pair;
}

/**
 * Runs a python3 script (python3 is there: node-gyp needs it) inside a namespace. The script prints 'ready'
 * once it listens, and its last line as JSON when done.
 */
export function pythonInNetns(
  ns: string,
  script: string,
  args: string[],
): { ready: Promise<void>; done: Promise<any> } {
  const child = execFile('ip', ['netns', 'exec', ns, 'python3', '-c', script, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  let out = '';
  let markReady: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    if (out.startsWith('ready')) markReady();
  });
  const done = new Promise<any>((resolve, reject) => {
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) reject(new Error(`python in ${ns} failed (exit ${code}): ${out}`));
      else resolve(JSON.parse(last));
    });
  });
  return { ready, done };
}

/** Counts IPv4 frames per IP protocol number on a device inside a namespace (AF_PACKET, both directions). */
export function captureProtocols(
  ns: string,
  dev: string,
  seconds: number,
): { ready: Promise<void>; done: Promise<Record<string, number>> } {
  const script = [
    'import json, socket, sys, time',
    // ETH_P_ALL: a socket bound to IPv4 alone misses the frames the namespace sends.
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))',
    's.bind((sys.argv[1], 0)); s.settimeout(0.1)',
    "print('ready', flush=True)",
    'end = time.time() + float(sys.argv[2]); seen = {}',
    'while time.time() < end:',
    '    try: frame = s.recv(65535)',
    '    except socket.timeout: continue',
    '    if len(frame) > 23 and frame[12:14] == b"\\x08\\x00": seen[frame[23]] = seen.get(frame[23], 0) + 1',
    'print(json.dumps(seen), flush=True)',
  ].join('\n');
  return pythonInNetns(ns, script, [dev, String(seconds)]);
}

/** A TCP sink on address:port that reports how many bytes it read and their SHA-256. */
export const TCP_SINK = [
  'import hashlib, json, socket, sys',
  's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)',
  "print('ready', flush=True)",
  'c, _ = s.accept(); h = hashlib.sha256(); n = 0',
  'while True:',
  '    b = c.recv(1 << 16)',
  '    if not b: break',
  '    h.update(b); n += len(b)',
  "print(json.dumps({'bytes': n, 'sha256': h.hexdigest()}), flush=True)",
].join('\n');

/** Sends `megabytes` of deterministic bytes to address:port; reports the count and SHA-256 it sent. */
export const TCP_SOURCE = [
  'import hashlib, json, socket, sys',
  'block = bytes((i * 7 + 3) % 251 for i in range(1 << 16)); h = hashlib.sha256(); n = 0',
  "print('ready', flush=True)",
  'c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)',
  'for _ in range(int(sys.argv[3]) * 16):',
  '    c.sendall(block); h.update(block); n += len(block)',
  'c.close()',
  "print(json.dumps({'bytes': n, 'sha256': h.hexdigest()}), flush=True)",
].join('\n');
