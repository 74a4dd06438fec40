// `mipsec lab --faults`: faults under a live flow, in network namespaces this module makes, with the real
// daemons (`mipsec sgw`, `mipsec ha` processes started from configs and certificates written here), so a fault
// that kills a process kills the product's own process.
//
// Topology (the Figure 2 chain of three SGWs between two hosts, one nested, as Figure 1 nests them):
//
//   h0 10.0.1.10 ── sgw3 (nested, 10.0.1.1 | 10.0.0.3) ── home link (bridge: sgw0 10.0.0.1, ha 10.0.0.2, mn 10.0.0.200)
//      ── sgw0 (home border, outside 198.18.0.1) ══ Internet (bridge; x 198.18.9.10)
//      ══ sgw1 (site 1 border, 198.18.1.1 | 10.1.0.1)
//      ── h1 10.1.0.10
//
// The live flow during every fault: a ping from h0 to h1 every 10 ms and a TCP stream (iperf3) h0 → h1; for the
// HA also Mobile IP registrations from `mn` (back to back, each fsync'd by the HA before its reply).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { daemonProcess } from '../daemon/process-env.js';
import { saveCertificate, saveX25519 } from '../keys/keyfile.js';
import { IMPAIR_PY } from './impair.js';
import { makeCa, makeIdentity } from './world.js';

const BIN = fileURLToPath(new URL('../../bin/mipsec.js', import.meta.url));
// The built script (from src/lab under vitest as from dist/lab): it runs as a process of its own.
const REGISTRAR = fileURLToPath(new URL('../../dist/bench/soak/registrar.js', import.meta.url));

export const FAULT_IDS = ['sgw-kill9', 'sgw-term', 'ha-kill9', 'link-flap', 'netem', 'mtu'] as const;
export type FaultId = (typeof FAULT_IDS)[number];

const FAULT_TITLES: Record<FaultId, string> = {
  'sgw-kill9': 'SGW kill -9 + restart (sgw1, the far border SGW)',
  'sgw-term': 'SGW SIGTERM + restart (sgw1)',
  'ha-kill9': 'HA kill -9 + restart during registrations',
  'link-flap': 'Internet link down 2 s, then up (sgw0 outside)',
  netem: '1 % loss + 5 ms jitter (reordering) on both hops between the 3 SGWs (netem-like)',
  mtu: 'MTU drop to 1280 on the Internet hop: PMTUD through the SGWs',
};

export interface ProbeFigures {
  /** Echo requests sent while the fault and recovery were watched, and how many got no reply. */
  sent: number;
  lost: number;
  /** The longest time between two replies (ms). */
  maxGapMs: number;
}

export interface TcpFigures {
  /** iperf3 exited 0 (the stream completed). */
  completed: boolean;
  /**
   * Mbit/s (iperf3's sender-side 0.5-s intervals) before the fault, during it (from the fault until traffic flowed
   * again, or until the impairment was removed; at least one interval), and overall (received).
   */
  beforeMbps: number | null;
  duringMbps: number | null;
  overallMbps: number | null;
  retransmits: number | null;
  error?: string;
}

export interface FaultResult {
  id: FaultId;
  title: string;
  pass: boolean;
  failures: string[];
  probe: ProbeFigures;
  /**
   * ms from the new process logging "started" (kills) / the link coming back up (link) until the first reply; for
   * the HA until it accepted a registration again (its log's times).
   */
  resumeMs: number | null;
  /** ms from spawning the new process until the first reply (kills). */
  resumeFromSpawnMs: number | null;
  tcp: TcpFigures;
  /** Lines the daemons logged during the fault (a few, warnings and the events that matter). */
  logs: string[];
  /**
   * What the SGWs counted during the fault and recovery (FaultLab.counters: engine reasons, role counters, I/O loop).
   */
  counters: Record<string, number>;
  notes: string[];
  durationMs: number;
}

export interface FaultReport {
  faults: FaultResult[];
}

export type Node = 'h0' | 'sgw3' | 'home' | 'ha' | 'mn' | 'sgw0' | 'inet' | 'x' | 'sgw1' | 'h1';
export type Daemon = 'sgw0' | 'sgw1' | 'sgw3' | 'ha';

interface Running {
  child: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
  spawnedAt: number;
  startedAt: number;
}

/** I/O loop counters that only count traffic (the flow's own packets), not what happened to it. */
const IO_NOISE = new Set([
  'rxTun',
  'rxRaw',
  'txRaw',
  'punted',
  'injected',
  'cpuMicros',
  'rxSkip',
  'rxAh',
  'rxEsp',
  'txTun',
  'rxUdp',
  'txUdp',
]);

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (check()) return;
  throw new Error(`timed out waiting for ${what}`);
}

const NETWORK_MAP = `kind: network-map
name: faults
sites:
  - { name: home, prefixes: [10.0.0.0/16], vpnRoutable: true }
  - { name: site1, prefixes: [10.1.0.0/16], vpnRoutable: true }
sgws:
  - { name: sgw0, site: home, inside: 10.0.0.1, outside: 198.18.0.1, border: true }
  - { name: sgw3, site: home, prefixes: [10.0.1.0/24], inside: 10.0.1.1, outside: 10.0.0.3, behind: sgw0 }
  - { name: sgw1, site: site1, inside: 10.1.0.1, outside: 198.18.1.1, border: true }
homeAgents:
  - { name: ha, address: 10.0.0.2, serves: [10.0.0.128/26] }
`;

const SGWS: Record<
  'sgw0' | 'sgw1' | 'sgw3',
  { inside: string; insideLen: number; outside: string; outsideLen: number }
> = {
  sgw0: { inside: '10.0.0.1', insideLen: 16, outside: '198.18.0.1', outsideLen: 16 },
  sgw3: { inside: '10.0.1.1', insideLen: 24, outside: '10.0.0.3', outsideLen: 16 },
  sgw1: { inside: '10.1.0.1', insideLen: 16, outside: '198.18.1.1', outsideLen: 16 },
};

export const MN_HOMES = Array.from({ length: 8 }, (_, i) => ({
  home: `10.0.0.${128 + i}`,
  spi: 256 + i,
  keyHex: (i + 16).toString(16).repeat(16),
}));

/** What the SGWs' configs set beyond the defaults (src/lab/suites.ts runs every suite through the chain). */
export interface SgwKnobs {
  esp?: string;
  nextHopMac?: string;
  coverage?: string;
  transport?: 'raw' | 'udp';
}

function sgwConfig(name: keyof typeof SGWS, knobs: SgwKnobs = {}): string {
  const s = SGWS[name];
  const policy = Object.entries({ esp: knobs.esp, nextHopMac: knobs.nextHopMac, coverage: knobs.coverage }).filter(
    ([, v]) => v !== undefined,
  );
  return (
    `kind: node
name: ${name}
role: sgw
network: network.yaml
identity: { key: keys/${name}.key, cert: keys/${name}.crt, ca: ca/ca.crt }
interfaces:
  - { name: inside, address: ${s.inside}, prefixLength: ${s.insideLen} }
  - { name: outside, address: ${s.outside}, prefixLength: ${s.outsideLen} }
sgw: { inside: inside, outside: outside }
${policy.length ? `policy: { ${policy.map(([k, v]) => `${k}: ${v}`).join(', ')} }\n` : ''}` +
    `${knobs.transport ? `dataPath: { transport: ${knobs.transport} }\n` : ''}`
  );
}

const HA_CONFIG = `kind: node
name: ha
role: ha
network: network.yaml
interfaces:
  - { name: home, address: 10.0.0.2, prefixLength: 16, gateway: 10.0.0.1 }
ha:
  serves: [10.0.0.128/26]
`;

/** Milliseconds since the epoch of each echo reply in `ping -D` output, with its sequence number. */
export function pingReplies(output: string): { seq: number; t: number }[] {
  return [...output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/gm)].map((m) => ({
    seq: Number(m[2]),
    t: Number(m[1]) * 1000,
  }));
}

/** The "N packets transmitted, M received" summary ping prints when it stops. */
export function pingSummary(output: string): { sent: number; received: number } | undefined {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(output);
  return m ? { sent: Number(m[1]), received: Number(m[2]) } : undefined;
}

interface IperfInterval {
  start: number;
  end: number;
  bytes: number;
}

/** `mipsec status --json` as FaultLab.status returns it: the engine counters typed, the rest read as found. */
type StatusJson = Record<string, unknown> & { counters: { engine: Record<string, number> } };

/** Bits per second over the iperf3 intervals that overlap [from, to) (seconds since the stream started). */
export function goodput(intervals: readonly IperfInterval[], from: number, to: number): number | null {
  const inWindow = intervals.filter((i) => i.end > from && i.start < to);
  if (!inWindow.length) return null;
  const bytes = inWindow.reduce((a, i) => a + i.bytes, 0);
  const seconds = inWindow.at(-1)!.end - inWindow[0].start;
  return seconds > 0 ? (bytes * 8) / seconds / 1e6 : null;
}

/** The namespaces, their links and the daemons; `close()` removes everything it made. */
export class FaultLab {
  readonly tag = randomBytes(3).toString('hex');
  readonly dir = mkdtempSync(join(tmpdir(), 'mipsec-faults-'));
  private readonly made: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private links = 0;
  readonly daemons = new Map<Daemon, Running>();

  ns(node: Node): string {
    return `mf-${this.tag}-${node}`;
  }

  ip(node: Node, ...args: string[]): string {
    return execFileSync('ip', ['-n', this.ns(node), ...args], { encoding: 'utf8' });
  }

  exec(node: Node, cmd: string, args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.ns(node), cmd, ...args], { encoding: 'utf8', timeout: 20_000 });
  }

  /** exec without blocking the event loop (the flow's output keeps being read meanwhile); output even on failure. */
  async execAsync(node: Node, cmd: string, args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', this.ns(node), cmd, ...args], { encoding: 'utf8', timeout: 20_000 }).then(
      (r) => r.stdout + r.stderr,
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
  }

  private veth(a: Node, ifA: string, cidrA: string | undefined, b: Node, ifB: string, cidrB: string | undefined): void {
    const [ta, tb] = [`fv${this.tag}${this.links}`, `fw${this.tag}${this.links++}`];
    execFileSync('ip', [
      'link',
      'add',
      ta,
      'netns',
      this.ns(a),
      'type',
      'veth',
      'peer',
      'name',
      tb,
      'netns',
      this.ns(b),
    ]);
    this.ip(a, 'link', 'set', ta, 'name', ifA);
    this.ip(b, 'link', 'set', tb, 'name', ifB);
    if (cidrA) this.ip(a, 'addr', 'add', cidrA, 'dev', ifA);
    if (cidrB) this.ip(b, 'addr', 'add', cidrB, 'dev', ifB);
    this.ip(a, 'link', 'set', ifA, 'up');
    this.ip(b, 'link', 'set', ifB, 'up');
  }

  build(): void {
    for (const node of ['h0', 'sgw3', 'home', 'ha', 'mn', 'sgw0', 'inet', 'x', 'sgw1', 'h1'] as Node[]) {
      execFileSync('ip', ['netns', 'add', this.ns(node)]);
      this.made.push(this.ns(node));
      this.ip(node, 'link', 'set', 'lo', 'up');
    }
    // The home link and the Internet: a bridge each, in a namespace of its own, like a switch. Impairments
    // take a port off its bridge and carry its frames themselves (impair.ts).
    for (const sw of ['home', 'inet'] as const) {
      this.ip(sw, 'link', 'add', 'br0', 'type', 'bridge');
      this.ip(sw, 'link', 'set', 'br0', 'up');
    }
    const port = (sw: 'home' | 'inet', node: Node, itf: string, cidr: string, name: string) => {
      this.veth(node, itf, cidr, sw, name, undefined);
      this.ip(sw, 'link', 'set', name, 'master', 'br0');
    };
    port('home', 'sgw0', 'inside', '10.0.0.1/16', 'p-sgw0');
    port('home', 'sgw3', 'outside', '10.0.0.3/16', 'p-sgw3');
    port('home', 'ha', 'home', '10.0.0.2/16', 'p-ha');
    port('home', 'mn', 'eth0', '10.0.0.200/16', 'p-mn');
    // sgw3's side of the home link can be impaired: frames between p-sgw3 and imp0 (imp1 on the bridge).
    this.veth('home', 'imp0', undefined, 'home', 'imp1', undefined);
    this.ip('home', 'link', 'set', 'imp1', 'master', 'br0');
    port('inet', 'sgw0', 'outside', '198.18.0.1/16', 'p-sgw0');
    port('inet', 'sgw1', 'outside', '198.18.1.1/16', 'p-sgw1');
    // An Internet host (the overload bench's flood comes from here, with spoofed sources).
    port('inet', 'x', 'eth0', '198.18.9.10/16', 'p-x');
    this.veth('h0', 'eth0', '10.0.1.10/24', 'sgw3', 'inside', '10.0.1.1/24');
    this.veth('sgw1', 'inside', '10.1.0.1/16', 'h1', 'eth0', '10.1.0.10/16');
    this.ip('h0', 'route', 'add', 'default', 'via', '10.0.1.1');
    this.ip('h1', 'route', 'add', 'default', 'via', '10.1.0.1');
    this.ip('ha', 'route', 'add', 'default', 'via', '10.0.0.1');
    this.ip('mn', 'route', 'add', 'default', 'via', '10.0.0.1');
    this.ip('sgw3', 'route', 'add', 'default', 'via', '10.0.0.1');
    this.ip('sgw0', 'route', 'add', '10.0.1.0/24', 'via', '10.0.0.3');
    this.ip('sgw0', 'route', 'add', '10.1.0.0/16', 'via', '198.18.1.1');
    this.ip('sgw1', 'route', 'add', '10.0.0.0/16', 'via', '198.18.0.1');
    this.ip('x', 'route', 'add', '10.1.0.0/16', 'via', '198.18.1.1');
  }

  /** The SGWs' node configs with these knobs (the next start reads them). */
  writeSgwConfigs(knobs: SgwKnobs = {}): void {
    for (const name of Object.keys(SGWS) as (keyof typeof SGWS)[])
      writeFileSync(join(this.dir, `${name}.yaml`), sgwConfig(name, knobs));
  }

  /** A CA, an identity per SGW, the map, node configs and the HA's MN-HA keys in the lab's directory. */
  writeConfigs(): void {
    const nowS = Math.floor(Date.now() / 1000);
    mkdirSync(join(this.dir, 'keys'), { mode: 0o700 });
    mkdirSync(join(this.dir, 'ca'));
    const ca = makeCa(nowS);
    saveCertificate(join(this.dir, 'ca/ca.crt'), ca.cert);
    for (const name of Object.keys(SGWS) as (keyof typeof SGWS)[]) {
      const id = makeIdentity(ca.key, `sgw:${SGWS[name].outside}`, nowS);
      saveX25519(join(this.dir, `keys/${name}.key`), id);
      saveCertificate(join(this.dir, `keys/${name}.crt`), id.cert);
      id.secretKey.fill(0);
      writeFileSync(join(this.dir, `${name}.yaml`), sgwConfig(name));
    }
    writeFileSync(join(this.dir, 'network.yaml'), NETWORK_MAP);
    writeFileSync(join(this.dir, 'ha.yaml'), HA_CONFIG);
    writeFileSync(
      join(this.dir, 'mn-ha.keys'),
      `${MN_HOMES.map((n) => `${n.home} ${n.spi} ${n.keyHex}`).join('\n')}\n`,
      { mode: 0o600 },
    );
  }

  spawnIn(
    node: Node,
    cmd: string,
    args: string[],
  ): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
    const child = spawn('ip', ['netns', 'exec', this.ns(node), cmd, ...args]);
    this.children.add(child);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    // 'close', not 'exit': the last output (ping's summary) may still be in the pipe when the process exits.
    const exited = new Promise<number | null>((resolve) =>
      child.once('close', (code) => {
        this.children.delete(child);
        resolve(code);
      }),
    );
    return { child, out: () => out, exited };
  }

  /** Starts the daemon `name` in its namespace and waits for its "started" log line. */
  async start(name: Daemon): Promise<Running> {
    const args =
      name === 'ha'
        ? ['ha', '--config', join(this.dir, 'ha.yaml'), '--mn-ha-key', join(this.dir, 'mn-ha.keys')]
        : ['sgw', '--config', join(this.dir, `${name}.yaml`)];
    args.push('--status-socket', join(this.dir, `${name}.sock`), '--state-dir', join(this.dir, `${name}.state`));
    const spawnedAt = Date.now();
    const p = daemonProcess(BIN, args);
    const child = spawn('ip', ['netns', 'exec', this.ns(name), p.command, ...p.args], { env: p.env });
    this.children.add(child);
    const out: string[] = [];
    let partial = '';
    const take = (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) out.push(`${Date.now()} ${l}`);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        this.children.delete(child);
        resolve(code);
      }),
    );
    const running: Running = { child, out, exited, spawnedAt, startedAt: 0 };
    this.daemons.set(name, running);
    await waitFor(
      `mipsec ${name} to start (${out.slice(-3).join(' / ')})`,
      () => out.some((l) => l.includes('"event":"started"')) || child.exitCode !== null,
      30_000,
    );
    if (child.exitCode !== null)
      throw new Error(`mipsec ${name} exited ${child.exitCode}: ${out.slice(-5).join(' / ')}`);
    running.startedAt = Date.now();
    return running;
  }

  async stop(name: Daemon, signal: NodeJS.Signals): Promise<number | null> {
    const d = this.daemons.get(name)!;
    d.child.kill(signal);
    return d.exited;
  }

  /** `mipsec status --json` of a running daemon, with how long the answer took. */
  status(name: Daemon): { status: StatusJson; ms: number } {
    const t = performance.now();
    const out = execFileSync(process.execPath, [BIN, 'status', '--json', '--socket', join(this.dir, `${name}.sock`)], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { status: JSON.parse(out) as StatusJson, ms: performance.now() - t };
  }

  /**
   * What the chain's SGWs counted, as 'sgw0 engine replay', 'sgw0 role relay', 'sgw0 io txTooBig': the engine's
   * reasons (drops and punts), the role's decisions and drops, and the I/O loop's counters.
   */
  counters(): Record<string, number> {
    const all: Record<string, number> = {};
    for (const name of ['sgw0', 'sgw1', 'sgw3'] as const) {
      try {
        const c = this.status(name).status.counters as unknown as Record<
          'engine' | 'role' | 'io',
          Record<string, number>
        >;
        for (const group of ['engine', 'role', 'io'] as const) {
          for (const [k, v] of Object.entries(c[group] ?? {}))
            if (v && !IO_NOISE.has(k)) all[`${name} ${group} ${k}`] = v;
        }
      } catch {
        // a daemon that is down has no counters to read
      }
    }
    return all;
  }

  close(): void {
    for (const c of this.children) c.kill('SIGKILL');
    for (const ns of this.made.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Differences of counters (after − before), only those that grew; a restarted daemon's count from zero. */
function delta(
  before: Record<string, number>,
  after: Record<string, number>,
  restarted: readonly string[] = [],
): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const was = restarted.includes(k.split(' ')[0]) ? 0 : (before[k] ?? 0);
    if (v - was > 0) d[k] = v - was;
  }
  return d;
}

/** Log lines (without the debug noise of every SA) logged by the daemons at or after `since`. */
function logsSince(lab: FaultLab, since: number, names: readonly Daemon[], max = 8): string[] {
  const lines: string[] = [];
  for (const name of names) {
    const d = lab.daemons.get(name);
    if (!d) continue;
    for (const entry of d.out) {
      const sp = entry.indexOf(' ');
      if (Number(entry.slice(0, sp)) < since) continue;
      const line = entry.slice(sp + 1);
      if (/"event":"(sa_installed|sa_retired|binding)"/.test(line)) continue;
      lines.push(`${name}: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`);
    }
  }
  return lines.slice(0, max);
}

export interface FaultOptions {
  only?: readonly FaultId[];
  /**
   * TCP stream rate cap (iperf3 -b), default 20M: the daemons share a small machine with the probes. '0': no stream.
   */
  tcpRate?: string;
  /** Per fault, instead of tcpRate. */
  tcpRateFor?: Partial<Record<FaultId, string>>;
  progress?: (line: string) => void;
}

interface Flow {
  ping: ReturnType<FaultLab['spawnIn']>;
  iperf?: ReturnType<FaultLab['spawnIn']>;
  server?: ReturnType<FaultLab['spawnIn']>;
  startedAt: number;
}

let nextPort = 5300;

/**
 * The ping and (unless rate is '0') a TCP stream to a one-test iperf3 server of its own (a stalled test cannot block
 * the next fault's).
 */
async function startFlow(lab: FaultLab, seconds: number, rate: string): Promise<Flow> {
  const port = String(nextPort++);
  const server = rate === '0' ? undefined : lab.spawnIn('h1', 'iperf3', ['-s', '-1', '-p', port]);
  if (server)
    await waitFor(
      'the iperf3 server',
      () => server.out().includes('listening') || server.child.exitCode !== null,
      5000,
    ).catch(() => undefined);
  const startedAt = Date.now();
  const ping = lab.spawnIn('h0', 'ping', ['-D', '-n', '-i', '0.01', '-W', '1', '10.1.0.10']);
  const iperf = server
    ? lab.spawnIn('h0', 'iperf3', [
        '-c',
        '10.1.0.10',
        '-p',
        port,
        '-t',
        String(seconds),
        '-i',
        '0.5',
        '-b',
        rate,
        '-J',
        '--connect-timeout',
        '3000',
      ])
    : undefined;
  return { ping, iperf, server, startedAt };
}

async function endFlow(flow: Flow): Promise<{
  pingOut: string;
  iperfCode: number | null;
  iperf: { intervals: IperfInterval[]; overallMbps: number | null; retransmits: number | null; error?: string };
}> {
  flow.ping.child.kill('SIGINT');
  await flow.ping.exited;
  if (!flow.iperf)
    return {
      pingOut: flow.ping.out(),
      iperfCode: null,
      iperf: { intervals: [], overallMbps: null, retransmits: null, error: 'no TCP stream (rate 0)' },
    };
  const iperfCode = await Promise.race([flow.iperf.exited, sleep(30_000).then(() => -1)]);
  if (iperfCode === -1) flow.iperf.child.kill('SIGKILL');
  flow.server?.child.kill('SIGKILL');
  let intervals: IperfInterval[] = [];
  let overallMbps: number | null = null;
  let retransmits: number | null = null;
  let error: string | undefined;
  try {
    const j = JSON.parse(flow.iperf.out()) as {
      intervals?: { sum: { start: number; end: number; bytes: number } }[];
      end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
      error?: string;
    };
    intervals = (j.intervals ?? []).map((i) => ({ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }));
    overallMbps = j.end?.sum_received ? j.end.sum_received.bits_per_second / 1e6 : null;
    retransmits = j.end?.sum_sent?.retransmits ?? null;
    error = j.error;
  } catch {
    error = `iperf3 output unreadable: ${flow.iperf.out().slice(0, 200)}`;
  }
  return { pingOut: flow.ping.out(), iperfCode, iperf: { intervals, overallMbps, retransmits, error } };
}

/** Waits until the ping has carried `n` more replies than it had. */
async function flowing(flow: Flow, n = 30, ms = 20_000): Promise<void> {
  const had = pingReplies(flow.ping.out()).length;
  await waitFor('the ping to carry replies', () => pingReplies(flow.ping.out()).length >= had + n, ms);
}

/** One fault: a flow of `seconds`, `inject` between 2 s of flow and its end; figures from the flow. */
async function measureFault(
  lab: FaultLab,
  id: FaultId,
  opts: FaultOptions,
  seconds: number,
  inject: (flow: Flow) => Promise<{
    faultAt: number;
    endAt?: number;
    backAt?: number;
    spawnedAt?: number;
    watch: Daemon[];
    notes?: string[];
    failures?: string[];
  }>,
): Promise<FaultResult> {
  const t0 = Date.now();
  const flow = await startFlow(lab, seconds, opts.tcpRateFor?.[id] ?? opts.tcpRate ?? '20M');
  const failures: string[] = [];
  let injected: Awaited<ReturnType<typeof inject>> | undefined;
  let dropsBefore: Record<string, number> = {};
  try {
    await flowing(flow);
    await sleep(1000);
    dropsBefore = lab.counters();
    injected = await inject(flow);
    failures.push(...(injected.failures ?? []));
  } catch (err) {
    failures.push(`fault: ${(err as Error).message}`);
  }
  const ended = await endFlow(flow);
  const replies = pingReplies(ended.pingOut);
  const summary = pingSummary(ended.pingOut);
  let maxGapMs = 0;
  for (let i = 1; i < replies.length; i++) maxGapMs = Math.max(maxGapMs, replies[i].t - replies[i - 1].t);
  const faultAt = injected?.faultAt ?? Date.now();
  const firstAfter = (t: number) => replies.find((r) => r.t > t)?.t;
  const back = injected?.backAt !== undefined ? firstAfter(injected.backAt) : undefined;
  const resumeMs = injected?.backAt !== undefined && back !== undefined ? back - injected.backAt : null;
  const resumeFromSpawnMs = injected?.spawnedAt !== undefined && back !== undefined ? back - injected.spawnedAt : null;
  // TCP: intervals are seconds since the stream started (≈ the flow's start).
  const rel = (t: number) => (t - flow.startedAt) / 1000;
  // During the fault: until traffic flowed again (kills, link) or until the impairment was removed (netem, MTU).
  const faultEnd = injected?.endAt ?? back ?? faultAt;
  const tcp: TcpFigures = {
    completed: ended.iperfCode === 0 || !flow.iperf,
    beforeMbps: goodput(ended.iperf.intervals, 0, rel(faultAt)),
    duringMbps: goodput(ended.iperf.intervals, rel(faultAt), Math.max(rel(faultEnd), rel(faultAt) + 0.5)),
    overallMbps: ended.iperf.overallMbps,
    retransmits: ended.iperf.retransmits,
    error: ended.iperf.error,
  };
  if (!summary) failures.push('ping printed no summary');
  const result: FaultResult = {
    id,
    title: FAULT_TITLES[id],
    pass: false,
    failures,
    probe: {
      sent: summary?.sent ?? 0,
      lost: summary ? summary.sent - summary.received : 0,
      maxGapMs: Math.round(maxGapMs),
    },
    resumeMs: resumeMs === null ? null : Math.round(resumeMs),
    resumeFromSpawnMs: resumeFromSpawnMs === null ? null : Math.round(resumeFromSpawnMs),
    tcp,
    logs: injected ? logsSince(lab, faultAt, injected.watch) : [],
    counters: delta(
      dropsBefore,
      lab.counters(),
      [...lab.daemons].filter(([, d]) => d.spawnedAt > t0).map(([name]) => name),
    ),
    notes: injected?.notes ?? [],
    durationMs: Date.now() - t0,
  };
  return result;
}

async function restartFault(lab: FaultLab, id: 'sgw-kill9' | 'sgw-term', opts: FaultOptions): Promise<FaultResult> {
  const signal = id === 'sgw-kill9' ? 'SIGKILL' : 'SIGTERM';
  const limit = id === 'sgw-kill9' ? 2000 : 1000;
  const r = await measureFault(lab, id, opts, 12, async (flow) => {
    const faultAt = Date.now();
    const code = await lab.stop('sgw1', signal);
    const restarted = await lab.start('sgw1');
    // Watch up to 20 s for the flow to come back (the replay floor can hold it back that long), then 2 s more.
    await waitFor(
      'replies after the restart',
      () => pingReplies(flow.ping.out()).some((p) => p.t > restarted.startedAt),
      20_000,
    ).catch(() => undefined);
    await sleep(2000);
    return {
      faultAt,
      backAt: restarted.startedAt,
      spawnedAt: restarted.spawnedAt,
      watch: ['sgw1', 'sgw0'],
      notes: [`sgw1 exited with ${code ?? 'a signal'}`],
    };
  });
  // The target counts from the new process's start (spawn), so Node's own start-up is in it, not only ours.
  if (r.resumeMs === null || r.resumeFromSpawnMs === null)
    r.failures.push('traffic did not flow again after the restart');
  else if (r.resumeFromSpawnMs > limit)
    r.failures.push(
      `traffic flowed again ${r.resumeFromSpawnMs} ms after the new sgw1 was spawned (${r.resumeMs} ms after it ` +
        `logged "started"; target ≤ ${limit} ms)`,
    );
  if (!r.tcp.completed) r.failures.push(`the TCP stream did not complete: ${r.tcp.error ?? 'iperf3 failed'}`);
  r.pass = r.failures.length === 0;
  return r;
}

async function haFault(lab: FaultLab, opts: FaultOptions): Promise<FaultResult> {
  const spec = { ha: '10.0.0.2', mode: 'storm', count: 1_000_000, careOfBase: '10.1.0.1', nodes: MN_HOMES };
  const reg = lab.spawnIn('mn', process.execPath, [REGISTRAR, JSON.stringify(spec)]);
  let seen = 0;
  const ackTimes: number[] = [];
  // For the HA, "flowing again" is registrations being accepted (the data flow does not cross it).
  let resume: { fromStarted: number | null; fromSpawn: number | null } = { fromStarted: null, fromSpawn: null };
  reg.child.stdout!.on('data', (c: Buffer) => {
    const n = c.toString().match(/^ack \d+$/gm)?.length ?? 0;
    seen += n;
    for (let i = 0; i < n; i++) ackTimes.push(Date.now());
  });
  try {
    const r = await measureFault(lab, 'ha-kill9', opts, 10, async () => {
      await waitFor('registrations acknowledged', () => seen > 50, 20_000);
      const faultAt = Date.now();
      await lab.stop('ha', 'SIGKILL');
      const restarted = await lab.start('ha');
      // The HA's own log times (ms): its last acceptance before the kill, "started", its first acceptance after.
      const logTime = (line: string | undefined) =>
        line ? Date.parse((JSON.parse(line.slice(line.indexOf(' ') + 1)) as { time: string }).time) : undefined;
      const accepted = (l: string) => l.includes('"event":"reply"') && l.includes('"code":0,');
      await waitFor('the new HA to accept a registration', () => restarted.out.some(accepted), 10_000).catch(
        () => undefined,
      );
      const started = logTime(restarted.out.find((l) => l.includes('"event":"started"')));
      const firstNew = logTime(restarted.out.find(accepted));
      const restoredLine = restarted.out.find((l) => l.includes('"event":"bindings_restored"')) ?? '';
      const restored = Number(/"bindings":(\d+)/.exec(restoredLine)?.[1] ?? -1);
      await sleep(1500);
      // The longest time without an acknowledgement, from the last one before the kill.
      const gap = () => {
        const from = ackTimes.filter((t) => t <= faultAt).at(-1) ?? faultAt;
        const times = [from, ...ackTimes.filter((t) => t > from)];
        return Math.max(0, ...times.slice(1).map((t, i) => t - times[i]));
      };
      const failures: string[] = [];
      const afterStart = firstNew !== undefined && started !== undefined ? firstNew - started : undefined;
      resume = {
        fromStarted: afterStart ?? null,
        fromSpawn: firstNew === undefined ? null : firstNew - restarted.spawnedAt,
      };
      if (afterStart === undefined) failures.push('no registration was accepted after the HA restarted');
      else if (afterStart > 2000)
        failures.push(`registrations accepted again only ${afterStart} ms after the HA started`);
      // Every node was acknowledged at least once before the kill (the storm goes round robin): all must come back.
      if (restored !== MN_HOMES.length)
        failures.push(`the restarted HA restored ${restored} bindings, ${MN_HOMES.length} were acknowledged`);
      return {
        faultAt,
        watch: ['ha'],
        failures,
        notes: [
          `registrations: the new HA accepted one ${afterStart ?? '—'} ms after it logged "started" ` +
            `(its log's times; ${firstNew === undefined ? '—' : firstNew - restarted.spawnedAt} ms after spawn); ` +
            `the client saw no acknowledgement for ${gap()} ms around the kill; ` +
            `${seen} acknowledged in all`,
          `bindings: ${MN_HOMES.length} acknowledged before the kill, ${restored} restored by the new HA from its ` +
            `journal`,
          'the h0 → h1 flow does not cross the HA: its figures show the SGWs carried on',
        ],
      };
    });
    r.resumeMs = resume.fromStarted;
    r.resumeFromSpawnMs = resume.fromSpawn;
    if (r.probe.lost > 0)
      r.notes.push(`the data flow lost ${r.probe.lost} probes while the HA was down (it does not cross the HA)`);
    if (!r.tcp.completed) r.failures.push(`the TCP stream did not complete: ${r.tcp.error ?? 'iperf3 failed'}`);
    r.pass = r.failures.length === 0;
    return r;
  } finally {
    reg.child.kill('SIGKILL');
    await reg.exited;
  }
}

async function linkFault(lab: FaultLab, opts: FaultOptions): Promise<FaultResult> {
  const r = await measureFault(lab, 'link-flap', opts, 10, async () => {
    const faultAt = Date.now();
    lab.ip('sgw0', 'link', 'set', 'outside', 'down');
    await sleep(2000);
    lab.ip('sgw0', 'link', 'set', 'outside', 'up');
    const backAt = Date.now();
    await sleep(3000);
    return { faultAt, backAt, watch: ['sgw0', 'sgw1'] };
  });
  if (r.resumeMs === null) r.failures.push('traffic did not flow again after the link came back');
  if (!r.tcp.completed) r.failures.push(`the TCP stream did not complete: ${r.tcp.error ?? 'iperf3 failed'}`);
  for (const name of ['sgw0', 'sgw1'] as const)
    if (lab.daemons.get(name)?.child.exitCode !== null) r.failures.push(`${name} exited during the link fault`);
  r.pass = r.failures.length === 0;
  return r;
}

/**
 * The two hops between the SGWs of the chain: sgw3 ↔ the home link (its bridge port and imp0) and sgw0 ↔ sgw1
 * (the Internet bridge's two ports). Each is impaired in both directions.
 */
const CHAIN_HOPS: { sw: 'home' | 'inet'; a: string; b: string; detach: string[] }[] = [
  { sw: 'home', a: 'p-sgw3', b: 'imp0', detach: ['p-sgw3'] },
  { sw: 'inet', a: 'p-sgw0', b: 'p-sgw1', detach: ['p-sgw0', 'p-sgw1'] },
];
const IMPAIR = { loss: 0.01, delayMs: 5, jitterMs: 5 };

/**
 * `tc netem delay 5ms 5ms loss 1%` on both hops for `ms` (impair.ts: this kernel has no sch_netem); the impairers'
 * counts.
 */
async function impaired(
  lab: FaultLab,
  ms: number,
): Promise<{ notes: string[]; failures: string[]; reordered: number }> {
  writeFileSync(join(lab.dir, 'impair.py'), IMPAIR_PY);
  const runs: ReturnType<FaultLab['spawnIn']>[] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  let reordered = 0;
  let carrying = false;
  try {
    for (const hop of CHAIN_HOPS) {
      const run = lab.spawnIn(hop.sw, 'python3', [
        join(lab.dir, 'impair.py'),
        hop.a,
        hop.b,
        String(IMPAIR.loss),
        String(IMPAIR.delayMs),
        String(IMPAIR.jitterMs),
      ]);
      runs.push(run);
      await waitFor(
        `the impairer on ${hop.sw} (${run.out()})`,
        () => run.out().includes('ready') || run.child.exitCode !== null,
        10_000,
      );
    }
    // Both running: now move the frames to them (a few ms of `ip`, no bridge carrying them twice).
    carrying = true;
    for (const [i, hop] of CHAIN_HOPS.entries()) {
      for (const dev of hop.detach) lab.ip(hop.sw, 'link', 'set', dev, 'nomaster');
      runs[i].child.kill('SIGUSR1');
    }
    await sleep(ms);
  } catch (err) {
    failures.push(`impairment: ${(err as Error).message}`);
  } finally {
    for (const [i, run] of runs.entries()) {
      const hop = CHAIN_HOPS[i];
      run.child.kill('SIGUSR2');
      if (carrying) for (const dev of hop.detach) lab.ip(hop.sw, 'link', 'set', dev, 'master', 'br0');
    }
    for (const [i, run] of runs.entries()) {
      const hop = CHAIN_HOPS[i];
      run.child.kill('SIGTERM');
      await run.exited;
      const line = run
        .out()
        .split('\n')
        .find((l) => l.startsWith('{'));
      if (!line) {
        failures.push(`the impairer on ${hop.sw} printed no counts: ${run.out().slice(0, 300)}`);
        continue;
      }
      const counts = JSON.parse(line) as Record<
        string,
        { in: number; lost: number; out: number; reordered: number; errors: number; overrun: number }
      >;
      for (const [dir, c] of Object.entries(counts)) {
        reordered += c.reordered;
        notes.push(
          `impaired ${hop.sw} ${dir}: ${c.in} frames, ${c.lost} lost, ${c.reordered} sent after a later one ` +
            `(reordered), ${c.errors} send errors, ${c.overrun} overrun (the stand-in too slow)`,
        );
      }
    }
  }
  return { notes, failures, reordered };
}

async function netemFault(lab: FaultLab, opts: FaultOptions): Promise<FaultResult> {
  const r = await measureFault(lab, 'netem', opts, 14, async () => {
    const faultAt = Date.now();
    const imp = await impaired(lab, 9000);
    return {
      faultAt,
      endAt: Date.now(),
      watch: ['sgw0', 'sgw1', 'sgw3'],
      failures: imp.failures,
      notes: [
        `netem-like delay ${IMPAIR.delayMs} ms ± ${IMPAIR.jitterMs} ms (uniform) and ${IMPAIR.loss * 100} % loss ` +
          `each way on both hops between the SGWs for 9 s`,
        ...imp.notes,
      ],
    };
  });
  if (!r.tcp.completed)
    r.failures.push(`the TCP stream did not complete under netem: ${r.tcp.error ?? 'iperf3 failed'}`);
  const replay = Object.entries(r.counters).filter(([k]) => /replay/.test(k));
  if (replay.length)
    r.failures.push(`replay-window drops under reordering: ${replay.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.probe.sent > 0) {
    // 1 % per hop and direction, 2 hops each way: about 4 % of round trips; more means the SGWs drop too.
    const expected = 1 - 0.99 ** 4;
    r.notes.push(
      `probe loss ${((100 * r.probe.lost) / r.probe.sent).toFixed(1)} % of ${r.probe.sent} (netem alone: ≈ ` +
        `${(100 * expected).toFixed(1)} % of those sent during its 9 s)`,
    );
  }
  r.pass = r.failures.length === 0;
  return r;
}

/** Every device of the Internet link (the bridge takes the smallest MTU of its ports). */
const INTERNET_DEVS: [Node, string, string, string, string][] = [
  ['sgw0', 'link', 'set', 'dev', 'outside'],
  ['sgw1', 'link', 'set', 'dev', 'outside'],
  ['inet', 'link', 'set', 'dev', 'p-sgw0'],
  ['inet', 'link', 'set', 'dev', 'p-sgw1'],
];

async function mtuFault(lab: FaultLab, opts: FaultOptions): Promise<FaultResult> {
  const r = await measureFault(lab, 'mtu', opts, 16, async () => {
    const routeMtuBefore = /mtu (\d+)/.exec(await lab.execAsync('h0', 'ip', ['route', 'get', '10.1.0.10']))?.[1];
    const faultAt = Date.now();
    const failures: string[] = [];
    const notes: string[] = [];
    for (const dev of INTERNET_DEVS) lab.ip(...dev, 'mtu', '1280');
    // A DF datagram that fits the links before but not now: the ICMP 3/4 must reach h0 with the MTU that fits.
    const probeOut = await lab.execAsync('h0', 'ping', [
      '-M',
      'do',
      '-s',
      '1300',
      '-c',
      '3',
      '-i',
      '0.3',
      '-W',
      '1',
      '10.1.0.10',
    ]);
    const frag =
      /From (\S+).*Frag needed and DF set \(mtu = (\d+)\)/.exec(probeOut) ??
      /local error: message too long, mtu=(\d+)/.exec(probeOut);
    const route = await lab.execAsync('h0', 'ip', ['route', 'get', '10.1.0.10']);
    const cached = /mtu (\d+)/.exec(route);
    const mtu = cached ? Number(cached[1]) : undefined;
    const before = routeMtuBefore;
    notes.push(
      `ping -M do -s 1300 from h0: ${frag ? frag[0] : probeOut.split('\n').filter(Boolean).slice(-2).join(' | ')}`,
    );
    notes.push(`h0's path MTU to h1 before the drop: ${before ?? 'none'}, after: ${mtu ?? 'none'}`);
    // The nested SGW learnt the middle one's MTU from its ICMP 3/4 (its kernel keeps it; its loop then tells h0).
    const nested = /mtu (\d+)/.exec(await lab.execAsync('sgw3', 'ip', ['route', 'get', '198.18.0.1']))?.[1];
    notes.push(`sgw3's path MTU toward sgw0 (its Next-hop layers' destination): ${nested ?? 'none'}`);
    // What really crosses now: the largest DF echo (bisected), against what h0 was told.
    const fits = async (size: number) =>
      /[1-9]\d* received/.test(
        await lab.execAsync('h0', 'ping', [
          '-M',
          'do',
          '-s',
          String(size),
          '-c',
          '2',
          '-i',
          '0.2',
          '-W',
          '1',
          '10.1.0.10',
        ]),
      );
    let [lo, hi] = [500, 1473];
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (await fits(mid)) lo = mid;
      else hi = mid;
    }
    const crosses = lo + 28;
    notes.push(`largest DF datagram that crosses the chain now: ${crosses} bytes; h0's path MTU: ${mtu ?? 'none'}`);
    if (mtu === undefined) failures.push('no path MTU reached h0 (its route to h1 carries no mtu)');
    else if (mtu > crosses)
      failures.push(
        `PMTUD broken: h0 holds path MTU ${mtu}, but only datagrams ≤ ${crosses} bytes cross after the drop — ` +
          `${crosses + 1}..${mtu} are black-holed with no ICMP 3/4`,
      );
    else if (mtu < crosses) failures.push(`h0 holds path MTU ${mtu}, smaller than the ${crosses} bytes that cross`);
    await sleep(2500);
    for (const dev of INTERNET_DEVS) lab.ip(...dev, 'mtu', '1500');
    return { faultAt, endAt: Date.now(), watch: ['sgw0', 'sgw1', 'sgw3'], failures, notes };
  });
  if (!r.tcp.completed)
    r.failures.push(`the TCP stream did not complete across the MTU drop: ${r.tcp.error ?? 'iperf3 failed'}`);
  r.pass = r.failures.length === 0;
  return r;
}

/** Builds the lab, runs the chosen faults one after the other on the same daemons, removes everything. */
export async function runFaults(opts: FaultOptions = {}): Promise<FaultReport> {
  const say = opts.progress ?? (() => undefined);
  const lab = new FaultLab();
  const faults: FaultResult[] = [];
  try {
    lab.build();
    lab.writeConfigs();
    for (const name of ['sgw0', 'sgw1', 'sgw3', 'ha'] as const) await lab.start(name);
    say(`faults: namespaces mf-${lab.tag}-*, daemons sgw3 → sgw0 → sgw1 and ha up`);
    for (const id of opts.only ?? FAULT_IDS) {
      const run = {
        'sgw-kill9': () => restartFault(lab, 'sgw-kill9', opts),
        'sgw-term': () => restartFault(lab, 'sgw-term', opts),
        'ha-kill9': () => haFault(lab, opts),
        'link-flap': () => linkFault(lab, opts),
        netem: () => netemFault(lab, opts),
        mtu: () => mtuFault(lab, opts),
      }[id];
      say(`fault ${id} …`);
      const r = await run();
      faults.push(r);
      say(formatFault(r).join('\n'));
    }
  } finally {
    lab.close();
  }
  return { faults };
}

const fmt = (v: number | null, unit: string, digits = 1) => (v === null ? '—' : `${v.toFixed(digits)}${unit}`);

export function formatFault(r: FaultResult): string[] {
  const lines = [`${r.pass ? 'PASS' : 'FAIL'} ${r.id.padEnd(10)} ${r.title} (${(r.durationMs / 1000).toFixed(1)} s)`];
  lines.push(
    `      probes (10 ms): lost ${r.probe.lost}/${r.probe.sent}, longest gap ${r.probe.maxGapMs} ms` +
      (r.resumeMs !== null
        ? `; ${r.id === 'ha-kill9' ? 'registrations accepted again' : 'flowing again'} ` +
          `${r.resumeMs} ms after ${r.id === 'link-flap' ? 'link up' : 'the new process started'}`
        : '') +
      (r.resumeFromSpawnMs !== null ? ` (${r.resumeFromSpawnMs} ms after spawn)` : ''),
  );
  lines.push(
    `      TCP: before ${fmt(r.tcp.beforeMbps, ' Mbit/s')}, during the fault ${fmt(r.tcp.duringMbps, ' Mbit/s')}, ` +
      `overall ${fmt(r.tcp.overallMbps, ' Mbit/s')}, retransmits ${r.tcp.retransmits ?? '—'}, ` +
      `${r.tcp.completed ? 'completed' : 'DID NOT complete'}`,
  );
  const counted = Object.entries(r.counters)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  if (counted) lines.push(`      the SGWs counted meanwhile: ${counted}`);
  for (const n of r.notes) lines.push(`      ${n}`);
  for (const l of r.logs) lines.push(`      log ${l}`);
  for (const f of r.failures) lines.push(`      ✗ ${f}`);
  return lines;
}
