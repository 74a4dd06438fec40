// Role daemons on a MemoryNetwork: sgw0 and sgw1 of Figure 6 run from copies of the example configs
// with fresh keys; traffic between their sites installs SAs; the status socket, the metrics endpoint,
// reloads (good and bad), a graceful stop and the logs are checked on what they show.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Engine } from '../../src/engine/index.js';
import { runDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { redact } from '../../src/daemon/log.js';
import { NoDaemonError, requestStatus } from '../../src/daemon/socket.js';
import { formatStatus, type Status } from '../../src/daemon/status.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { collectEchoes, echoServer, probe } from '../../src/lab/traffic.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';
import { addCorrespondent, figure6Fixture, type Fixture } from './fixture.js';

const CH0 = '10.0.0.10';
const CH1 = '10.1.0.10';
const hex = (u?: Uint8Array) => (u ? Buffer.from(u).toString('hex') : '');

interface Run {
  fx: Fixture;
  sgw0: Daemon;
  sgw1: Daemon;
  logs: string[];
  /** Hex of every key the roles installed, captured at installSa (before the role wipes them). */
  keys: string[];
  installs: number;
  /** Every SA installed (both daemons), in order: who sent on it and its ESP suite. */
  installed: { id: number; direction: string; src: string; suite?: string }[];
}

let run: Run | undefined;
afterEach(async () => {
  await run?.sgw0.stop();
  await run?.sgw1.stop();
  run = undefined;
});

async function start(impl: 'native' | 'ts'): Promise<Run> {
  const fx = figure6Fixture();
  const logs: string[] = [];
  const keys: string[] = [];
  const r = { installs: 0, installed: [] as Run['installed'] };
  const capture = (engine: Engine): Engine => {
    const install = engine.installSa.bind(engine);
    engine.installSa = (sa) => {
      r.installs++;
      r.installed.push({ id: sa.id, direction: sa.direction, src: sa.src, suite: sa.esp?.suite });
      keys.push(...[sa.esp?.key, sa.ah?.key].filter((k): k is Uint8Array => k !== undefined).map(hex));
      install(sa);
    };
    return engine;
  };
  const daemon = (node: string, extra: object = {}) =>
    runDaemon({
      configPath: fx.file(`${node}.yaml`),
      role: 'sgw',
      host: fx.hostFor,
      clock: fx.network.clock,
      engine: impl,
      wrapEngine: capture,
      statusSocket: fx.file(`run/${node}.sock`),
      logDestination: { write: (line: string) => void logs.push(line) },
      rateIntervalMs: 50,
      ...extra,
    });
  const sgw0 = await daemon('sgw0', { metrics: { host: '127.0.0.1', port: 0 } });
  const sgw1 = await daemon('sgw1');
  echoServer(addCorrespondent(fx.network, 'ch0', CH0));
  addCorrespondent(fx.network, 'ch1', CH1);
  run = Object.assign(r, { fx, sgw0, sgw1, logs, keys });
  return run;
}

/** Probes from ch1 to ch0's echo port; returns the sequence numbers echoed back. */
function ping(r: Run, seqs: number[]): number[] {
  const echoes = collectEchoes(r.fx.network.host('ch1'));
  for (const seq of seqs) r.fx.network.host('ch1').send(probe(CH1, CH0, seq));
  r.fx.network.runFor(SETTLE_MS);
  echoes.stop();
  return echoes.seqs;
}

/** Holds back the packet sgw1 sends sgw0 for probe `seq` (a fresh sequence number) and returns it with a forged ICV. */
function forgeFromSgw1(r: Run, seq: number): Uint8Array {
  const internet = r.fx.network.link('internet');
  const toSgw0 = (p: Uint8Array) => p[9] === IPPROTO_SKIP && p.subarray(16, 20).join('.') === '198.18.0.1';
  internet.setLoss((p) => toSgw0(p));
  expect(ping(r, [seq])).toEqual([]);
  internet.setLoss(undefined);
  const held = internet.captures().filter((f) => f.fate === 'lost' && toSgw0(f.packet));
  expect(held).toHaveLength(1);
  const forged = held[0].packet.slice();
  forged[forged.length - 1] ^= 0xff;
  return forged;
}

function scrape(address: { host: string; port: number }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: address.host, port: address.port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** Writes raw bytes to the socket and returns all it answers. */
function rawRequest(path: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => socket.write(text));
    let answer = '';
    socket.on('data', (c) => (answer += c));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** `mipsec status ARGS` in this process, its stdout and exit code. */
async function statusCommand(...args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  try {
    return { code: await main(['status', ...args]), out: out.join('\n') };
  } finally {
    spy.mockRestore();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['native', 'ts'] as const)('SGW daemon on the %s engine', (impl) => {
  it('status over the socket: role, SAs after traffic with their peers and packets, counters, rates', async () => {
    const r = await start(impl);
    expect(statSync(r.sgw0.socketPath!).mode & 0o777).toBe(0o600);
    const before = (await requestStatus(r.sgw0.socketPath!)) as Status;
    expect(before).toMatchObject({ version: 1, node: 'sgw0', role: 'sgw', engine: impl, sas: [], bindings: null });

    expect(ping(r, [1, 2, 3])).toEqual([1, 2, 3]);
    await sleep(120);
    const after = (await requestStatus(r.sgw0.socketPath!)) as Status;
    const inbound = after.sas.filter((s) => s.direction === 'in');
    const outbound = after.sas.filter((s) => s.direction === 'out');
    expect(inbound.length).toBeGreaterThanOrEqual(1);
    expect(outbound.length).toBeGreaterThanOrEqual(1);
    for (const sa of after.sas) {
      expect(sa).toMatchObject({ role: 'end', mode: 'skip', peer: 'sgw:198.18.1.1' });
      expect(Object.keys(sa).sort()).toEqual([
        'bytes',
        'direction',
        'dst',
        'id',
        'mode',
        'packets',
        'packetsPerSecond',
        'peer',
        'role',
        'src',
      ]);
    }
    expect(inbound.reduce((n, s) => n + s.packets, 0)).toBe(3);
    expect(outbound.reduce((n, s) => n + s.packets, 0)).toBe(3);
    expect(after.counters.verdicts.deliver).toBeGreaterThanOrEqual(3);
    expect(after.counters.role.discovery_request_answered).toBeGreaterThanOrEqual(1);
    expect(after.rates.intervalSeconds).toBeGreaterThan(0);
    expect(after.uptimeSeconds).toBeGreaterThan(0);
    // What a soak watches: the process's memory and fds, and the engine's table sizes.
    expect(after.process.rssBytes).toBeGreaterThan(after.process.heapUsedBytes);
    expect(after.process.openFds).toBeGreaterThan(2);
    expect(after.tables).toEqual({ sas: after.sas.length, routes: expect.any(Number), policies: 0 });
    const printed = await statusCommand('--json', '--socket', r.sgw0.socketPath!);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.out)).toMatchObject({
      version: 1,
      node: 'sgw0',
      role: 'sgw',
      sas: after.sas.map((sa) => ({ id: sa.id, peer: sa.peer })),
    });
    const table = await statusCommand('--node', 'sgw0', '--socket', r.sgw0.socketPath!);
    expect(table.out).toMatch(/^node sgw0 \(sgw\)/);
    expect(table.out).toMatch(/^ {2}id {2}dir {2}layer {2}mode {2}peer +src +dst +packets {2}bytes {2}pkt\/s$/m);
    const text = formatStatus(after);
    expect(text).toMatch(/^node sgw0 \(sgw\), pid \d+, up \d+s, engine /);
    expect(text).toMatch(
      /^process: rss [\d.]+ MiB, heap [\d.]+ MiB of [\d.]+ MiB, \d+ open fds; tables: \d+ SAs, \d+ routes, 0 policies$/m,
    );
    expect(text).toContain('sgw:198.18.1.1');
    // Any other request gets an error answer, not a crash; garbage too.
    expect(await requestStatus(r.sgw0.socketPath!, { request: 'keys' })).toEqual({
      error: expect.stringContaining('unknown request "keys"'),
    });
    expect(await rawRequest(r.sgw0.socketPath!, 'status please\n')).toBe(
      '{"error":"the request is not JSON; send {\\"request\\":\\"status\\"} and a newline"}\n',
    );
    expect(await rawRequest(r.sgw0.socketPath!, 'x'.repeat(5000))).toBe('{"error":"request longer than 4096 bytes"}\n');
  });

  it('the status socket: a silent client does not hold up others; a second daemon on the same socket is refused, a stale file replaced', async () => {
    const r = await start(impl);
    const silent = createConnection(r.sgw0.socketPath!);
    await new Promise((resolve) => silent.once('connect', resolve));
    const answered = (await requestStatus(r.sgw0.socketPath!)) as Status;
    expect(answered.node).toBe('sgw0');
    silent.destroy();

    let hostMade = false;
    const second = runDaemon({
      configPath: r.fx.file('sgw0.yaml'),
      clock: r.fx.network.clock,
      engine: impl,
      statusSocket: r.sgw0.socketPath,
      logLevel: 'silent',
      host: () => {
        hostMade = true;
        return r.fx.network.host('sgw0');
      },
    });
    await expect(second).rejects.toThrow(
      `another daemon is already listening on ${r.sgw0.socketPath}; stop it first or give another --status-socket`,
    );
    // Refused before it touched the network.
    expect(hostMade).toBe(false);
    expect(((await requestStatus(r.sgw0.socketPath!)) as Status).node).toBe('sgw0');

    // A socket file left by a crashed daemon (nobody listening) is replaced.
    const stale = r.fx.file('run/stale.sock');
    const crashed = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`,
    ]);
    await new Promise((resolve) => crashed.stdout.once('data', resolve));
    crashed.kill('SIGKILL');
    await new Promise((resolve) => crashed.once('exit', resolve));
    expect(existsSync(stale)).toBe(true);
    await r.sgw1.stop();
    r.sgw1 = await runDaemon({
      configPath: r.fx.file('sgw1.yaml'),
      host: () => r.fx.network.host('sgw1'),
      clock: r.fx.network.clock,
      engine: impl,
      statusSocket: stale,
      logLevel: 'silent',
    });
    expect(((await requestStatus(stale)) as Status).node).toBe('sgw1');
  });

  it('metrics on 127.0.0.1: a forged packet shows up in mipsec_drops_total with its reason', async () => {
    const r = await start(impl);
    expect(ping(r, [1])).toEqual([1]);
    const forged = forgeFromSgw1(r, 2);
    const dropsBefore = r.sgw0.status().counters.engine;
    r.fx.network.host('sgw0').inject(forged, { iface: 'outside' });
    r.fx.network.runFor(100);
    const dropsAfter = r.sgw0.status().counters.engine;
    const grew = Object.keys(dropsAfter).filter((k) => dropsAfter[k] > (dropsBefore[k] ?? 0));
    expect(grew).toEqual(['auth']);
    expect(dropsAfter.auth).toBe(1);
    // A layer that does not verify is answered with code 1 (failed authentication), logged once per interval.
    await sleep(120);
    expect(r.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'failures_sent')).toMatchObject({
      node: 'sgw0',
      counts: { icmp40_sent_code1: 1 },
    });

    expect(r.sgw0.metricsAddress!.host).toBe('127.0.0.1');
    const { status, body } = await scrape(r.sgw0.metricsAddress!);
    expect(status).toBe(200);
    expect(body).toContain('# TYPE mipsec_drops_total counter');
    expect(body).toMatch(/^mipsec_drops_total\{reason="auth",node="sgw0",role="sgw"\} 1$/m);
    expect(body).toMatch(/^mipsec_verdicts_total\{verdict="deliver",node="sgw0",role="sgw"\} [1-9]/m);
    expect(body).toMatch(new RegExp(`^mipsec_sas\\{node="sgw0",role="sgw"\\} ${r.sgw0.sas().length}$`, 'm'));
    const sa = r.sgw0.sas()[0].id;
    expect(body).toMatch(new RegExp(`^mipsec_sa_packets_total\\{sa="${sa}",node="sgw0",role="sgw"\\} 1$`, 'm'));
    expect(body).toMatch(/^mipsec_role_events_total\{event="sa_installed",node="sgw0",role="sgw"\} 1$/m);
    const other = await new Promise<number>((resolve) =>
      get({ ...r.sgw0.metricsAddress!, path: '/' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }),
    );
    expect(other).toBe(404);
  });

  it('a reload applies the failure rate and the ESP suite live: SAs keep their ids and traffic, new SAs use the new suite; a bad config is refused; SIGHUP reloads', async () => {
    const r = await start(impl);
    expect(ping(r, [1, 2])).toEqual([1, 2]);
    const before = r.sgw0.status().sas;
    const ids = before.map((s) => s.id);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    const sgw0Sealed = (from: number) =>
      r.installed.slice(from).filter((sa) => sa.direction === 'out' && sa.src === '198.18.0.1' && sa.suite);
    expect(sgw0Sealed(0).map((sa) => sa.suite)).toEqual(['aes128gcm']);
    const installsBefore = r.installed.length;

    const file = r.fx.file('sgw0.yaml');
    const original = readFileSync(file, 'utf8');
    const live = original.replace('perSecond: 10', 'perSecond: 25').replace('esp: aes128gcm', 'esp: aes256gcm');
    writeFileSync(file, live);
    const good = await r.sgw0.reload();
    expect(good).toEqual({ ok: true, applied: ['policy.esp', 'policy.icmpRateLimit.perSecond'], restartNeededFor: [] });
    expect(r.sgw0.sas().map((s) => s.id)).toEqual(ids);
    expect(ping(r, [3, 4])).toEqual([3, 4]);
    // Every SA installed before is still there under its id; sgw1 (not reloaded) still seals with its
    // SA, so sgw0's inbound SAs from before carry the new packets; sgw0 seals its answers on a new SA.
    const after = r.sgw0.status().sas;
    expect(after.map((s) => s.id)).toEqual(expect.arrayContaining(ids));
    for (const sa of before.filter((s) => s.direction === 'in'))
      expect(after.find((s) => s.id === sa.id)!.packets).toBe(sa.packets + 2);
    expect(sgw0Sealed(installsBefore).map((sa) => sa.suite)).toEqual(['aes256gcm']);

    writeFileSync(file, original.replace('esp: aes128gcm', 'esp: des'));
    const bad = await r.sgw0.reload();
    expect(bad.ok).toBe(false);
    expect(bad.errors).toEqual([
      `${file}: policy.esp: expected one of aes128gcm | aes256gcm | chacha20poly1305, got "des"`,
    ]);
    const refused = r.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'reload_refused');
    expect(refused).toMatchObject({ level: 50, node: 'sgw0', errors: bad.errors });
    const idsNow = r.sgw0.sas().map((s) => s.id);
    expect(ping(r, [5])).toEqual([5]);
    expect(r.sgw0.sas().map((s) => s.id)).toEqual(idsNow);
    expect(r.sgw0.status().config).toMatchObject({ reloads: 1, restartNeededFor: [] });

    // Back to the original knobs, and a change the role fixed at start: that one waits for a restart.
    writeFileSync(file, original.replace('kpRotationPackets: 1048576', 'kpRotationPackets: 2048'));
    expect(await r.sgw0.reload()).toEqual({
      ok: true,
      applied: ['policy.esp', 'policy.icmpRateLimit.perSecond'],
      restartNeededFor: ['policy.kpRotationPackets'],
    });
    expect(r.sgw0.status().config).toMatchObject({ reloads: 2, restartNeededFor: ['policy.kpRotationPackets'] });
    const reloaded = r.logs.map((l) => JSON.parse(l)).filter((l) => l.node === 'sgw0' && l.event === 'reload');
    expect(reloaded.map((l) => [l.changed, l.applied, l.restartNeededFor])).toEqual([
      [['policy.esp', 'policy.icmpRateLimit.perSecond'], ['policy.esp', 'policy.icmpRateLimit.perSecond'], []],
      [
        ['policy.esp', 'policy.icmpRateLimit.perSecond', 'policy.kpRotationPackets'],
        ['policy.esp', 'policy.icmpRateLimit.perSecond'],
        ['policy.kpRotationPackets'],
      ],
    ]);
    await r.sgw1.stop();
    const signalled = await runDaemon({
      configPath: r.fx.file('sgw1.yaml'),
      host: () => r.fx.network.host('sgw1'),
      clock: r.fx.network.clock,
      engine: impl,
      statusSocket: false,
      handleSignals: true,
      logDestination: { write: (line: string) => void r.logs.push(line) },
    });
    r.sgw1 = signalled;
    const reloads = () => r.logs.map((l) => JSON.parse(l)).filter((l) => l.node === 'sgw1' && l.event === 'reload');
    expect(reloads()).toHaveLength(0);
    process.emit('SIGHUP', 'SIGHUP');
    for (let waited = 0; reloads().length === 0 && waited < 2000; waited += 20) await sleep(20);
    expect(reloads()).toHaveLength(1);
  });

  it('a reload that lowers the ICMP burst limits failure messages from then on', async () => {
    const r = await start(impl);
    expect(ping(r, [1])).toEqual([1]);
    const forged = forgeFromSgw1(r, 2);
    const file = r.fx.file('sgw0.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('burst: 20', 'burst: 2'));
    expect(await r.sgw0.reload()).toEqual({ ok: true, applied: ['policy.icmpRateLimit.burst'], restartNeededFor: [] });
    for (let i = 0; i < 5; i++) r.fx.network.host('sgw0').inject(forged.slice(), { iface: 'outside' });
    r.fx.network.runFor(100);
    const { role, engine } = r.sgw0.status().counters;
    expect(engine.auth).toBe(5);
    expect(role).toMatchObject({ icmp40_sent_code1: 2, icmp40_rate_limited: 3 });
  });

  it('stop removes the socket, closes metrics, and the whole log holds no installed key', async () => {
    const r = await start(impl);
    expect(ping(r, [1, 2, 3])).toEqual([1, 2, 3]);
    await r.sgw0.reload();
    const socket = r.sgw0.socketPath!;
    await r.sgw0.stop();
    await r.sgw1.stop();
    expect(existsSync(socket)).toBe(false);
    await expect(requestStatus(socket)).rejects.toThrow(NoDaemonError);
    await expect(scrape(r.sgw0.metricsAddress!)).rejects.toThrow(/ECONNREFUSED/);

    const log = r.logs.join('');
    const events = r.logs.map((l) => JSON.parse(l).event);
    expect(events.filter((e) => e === 'sa_installed')).toHaveLength(r.installs);
    expect(events).toEqual(
      expect.arrayContaining(['started', 'sa_installed', 'sa_retired', 'reload', 'stopping', 'stopped']),
    );
    expect(r.keys.length).toBeGreaterThanOrEqual(4);
    for (const key of r.keys) {
      expect(key).toMatch(/^[0-9a-f]{40,}$/);
      expect(log).not.toContain(key);
      expect(log.toLowerCase()).not.toContain(Buffer.from(key, 'hex').toString('base64').toLowerCase());
    }
  });
});

describe('log redaction', () => {
  it('censors key, secret, kp, salt and psk at any depth, and never prints bytes', () => {
    const input = {
      sa: 3,
      Key: 'aa',
      deep: {
        list: [
          { secret: 's', kp: 'k' },
          { salt: 1, psk: { x: 1 } },
        ],
        ok: 'fine',
      },
      raw: new Uint8Array([1, 2, 3]),
    };
    expect(redact(input)).toEqual({
      sa: 3,
      Key: '[redacted]',
      deep: {
        list: [
          { secret: '[redacted]', kp: '[redacted]' },
          { salt: '[redacted]', psk: '[redacted]' },
        ],
        ok: 'fine',
      },
      raw: '[3 bytes]',
    });
  });
});
