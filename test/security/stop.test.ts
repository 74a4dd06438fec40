// Issue 10 hole 12: a stopped gateway must not forward its sites' traffic in clear. Two SGW namespaces
// with ip_forward=1 (as on any router) joined by a veth (the Internet), a host behind each, all made by
// this test; the hosts' echo requests are watched on sgw0's outside link while sgw0 is stopped,
// killed, restarted and uninstalled. Only traffic between these namespaces is sent.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILTER_PREF, RULE_PREF } from '../../src/net/linux/attached.js';
import { figure6Fixture } from '../daemon/fixture.js';
import { canRunNetns } from '../io/topology.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);
const tag = randomBytes(3).toString('hex');
const ns = { sgw0: `mipsec-stop-${tag}-s0`, sgw1: `mipsec-stop-${tag}-s1`, h0: `mipsec-stop-${tag}-h0`, h1: `mipsec-stop-${tag}-h1` };
const made: string[] = [];

const ipIn = (name: string, ...args: string[]) => execFileSync('ip', ['-n', name, ...args], { encoding: 'utf8' });
const inNs = (name: string, cmd: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { encoding: 'utf8' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function addNs(name: string): void {
  execFileSync('ip', ['netns', 'add', name]);
  made.push(name);
  ipIn(name, 'link', 'set', 'lo', 'up');
}

function veth(a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string): void {
  execFileSync('ip', ['link', 'add', `v${tag}`, 'netns', a, 'type', 'veth', 'peer', 'name', `w${tag}`, 'netns', b]);
  ipIn(a, 'link', 'set', `v${tag}`, 'name', ifA);
  ipIn(b, 'link', 'set', `w${tag}`, 'name', ifB);
  ipIn(a, 'addr', 'add', cidrA, 'dev', ifA);
  ipIn(b, 'addr', 'add', cidrB, 'dev', ifB);
  ipIn(a, 'link', 'set', ifA, 'up');
  ipIn(b, 'link', 'set', ifB, 'up');
}

interface Daemon {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

async function startSgw(node: 'sgw0' | 'sgw1', config: string): Promise<Daemon> {
  const child = spawn('ip', ['netns', 'exec', ns[node], process.execPath, 'bin/mipsec.js', 'sgw', '--config', config, '--status-socket', `${config}.sock`], { cwd: ROOT });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (const end = Date.now() + 15_000; !out.includes('"event":"started"'); await sleep(50)) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`${node} did not start: ${out}`);
  }
  return { child, out: () => out, exited };
}

/** Pings h1 from h0 while sgw0's outside link is captured: the received count and the protocols seen there. */
async function pingWatched(count: number): Promise<{ received: number; protocols: string[] }> {
  const capture = spawn('ip', ['netns', 'exec', ns.sgw0, 'tshark', '-i', 'outside', '-l', '-n', '-f', 'ip', '-T', 'fields', '-e', 'ip.proto'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let captured = '';
  let log = '';
  capture.stdout!.on('data', (c: Buffer) => (captured += c.toString()));
  capture.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  for (const end = Date.now() + 15_000; !log.includes('Capturing on'); await sleep(50)) if (Date.now() > end) throw new Error(`tshark: ${log}`);
  await sleep(300);
  const ping = await run('ip', ['netns', 'exec', ns.h0, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', '10.1.0.10'], { encoding: 'utf8' })
    .catch((err: { stdout: string }) => ({ stdout: err.stdout }));
  await sleep(500);
  capture.kill('SIGTERM');
  await new Promise((r) => capture.once('exit', r));
  return { received: Number(/(\d+) received/.exec(ping.stdout)?.[1] ?? 0), protocols: captured.trim().split('\n').filter(Boolean) };
}

const blackholes = () => (JSON.parse(ipIn(ns.sgw0, '-j', 'rule', 'show', 'pref', String(RULE_PREF))) as { iif: string }[]).map((r) => r.iif).sort();
const filters = (dev: string) => inNs(ns.sgw0, 'tc', 'filter', 'show', 'dev', dev, 'ingress');

describe.skipIf(!canRunNetns)('hole 12: a stopped SGW fails closed (root, in test namespaces only)', () => {
  const fx = figure6Fixture();
  const daemons: Daemon[] = [];
  const start = async (node: 'sgw0' | 'sgw1') => {
    const d = await startSgw(node, fx.file(`${node}.yaml`));
    daemons.push(d);
    return d;
  };

  beforeAll(async () => {
    await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT });
    for (const name of Object.values(ns)) addNs(name);
    veth(ns.sgw0, 'outside', '198.18.0.1/16', ns.sgw1, 'outside', '198.18.1.1/16');
    veth(ns.sgw0, 'inside', '10.0.0.1/16', ns.h0, 'eth0', '10.0.0.10/16');
    veth(ns.sgw1, 'inside', '10.1.0.1/16', ns.h1, 'eth0', '10.1.0.10/16');
    ipIn(ns.h0, 'route', 'add', 'default', 'via', '10.0.0.1');
    ipIn(ns.h1, 'route', 'add', 'default', 'via', '10.1.0.1');
    ipIn(ns.sgw0, 'route', 'add', '10.1.0.0/16', 'via', '198.18.1.1');
    ipIn(ns.sgw1, 'route', 'add', '10.0.0.0/16', 'via', '198.18.0.1');
    for (const gw of [ns.sgw0, ns.sgw1]) inNs(gw, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  }, 180_000);

  afterAll(() => {
    for (const d of daemons) d.child.kill('SIGKILL');
    for (const name of made.reverse()) execFileSync('ip', ['netns', 'del', name]);
  });

  it('hole 12: after SIGTERM (ip_forward=1) nothing crosses the outside link in clear; a restart carries traffic again', async () => {
    const sgw0 = await start('sgw0');
    await start('sgw1');
    expect((await pingWatched(5)).received).toBeGreaterThanOrEqual(3);

    sgw0.child.kill('SIGTERM');
    expect(await sgw0.exited).toBe(0);
    expect(filters('inside')).not.toContain(`pref ${FILTER_PREF} `);
    const stopped = await pingWatched(8);
    expect(stopped.protocols.filter((p) => p === '1')).toEqual([]);
    expect(stopped.received).toBe(0);
    expect(blackholes()).toEqual(['inside', 'outside']);

    await start('sgw0');
    const restarted = await pingWatched(5);
    expect(restarted.received).toBeGreaterThanOrEqual(3);
    expect(restarted.protocols.filter((p) => p === '1')).toEqual([]);
    expect(restarted.protocols).toContain('57');
  }, 90_000);

  it('hole 12: after SIGKILL the stale state stays closed and a restart adopts it', async () => {
    const sgw0 = daemons.at(-1)!;
    sgw0.child.kill('SIGKILL');
    await sgw0.exited;
    const killed = await pingWatched(5);
    expect(killed.protocols.filter((p) => p === '1')).toEqual([]);

    await start('sgw0');
    expect(blackholes()).toEqual(['inside', 'outside']);
    const restarted = await pingWatched(5);
    expect(restarted.received).toBeGreaterThanOrEqual(3);
    expect(restarted.protocols.filter((p) => p === '1')).toEqual([]);
  }, 90_000);

  it('hole 12: mipsec sgw --uninstall removes the rules (and a stale filter): the kernel forwards again', async () => {
    const sgw0 = daemons.at(-1)!;
    sgw0.child.kill('SIGKILL');
    await sgw0.exited;
    expect(filters('outside')).toContain(`pref ${FILTER_PREF} `);
    const { stdout } = await run('ip', ['netns', 'exec', ns.sgw0, process.execPath, 'bin/mipsec.js', 'sgw', '--uninstall', '--config', fx.file('sgw0.yaml')], { cwd: ROOT, encoding: 'utf8' });
    expect(stdout).toContain(`ip rule ${RULE_PREF} iif inside blackhole`);
    expect(blackholes()).toEqual([]);
    for (const dev of ['inside', 'outside']) expect(filters(dev)).toBe('');
    // Open again, as the operator asked: the echo requests leave in clear (the test's own namespaces only).
    expect((await pingWatched(3)).protocols).toContain('1');
  }, 60_000);
});
