// The commands as an operator runs them: `node bin/mipsec.js status` without a daemon, and the daemon
// commands refusing bad configs, open private keys and a missing host with exit code 2.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { checkFiles } from '../../src/config/index.js';
import { main } from '../../src/cli/main.js';
import { requestStatus } from '../../src/daemon/socket.js';
import { figure6Fixture } from './fixture.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const run = promisify(execFile);

/** bin/mipsec.js runs dist/: build it (the package's prepare step) when src/daemon or src/cli is newer. */
function distIsStale(): boolean {
  const built = (f: string) => statSync(join(ROOT, 'dist', f), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = (dir: string) =>
    Math.max(...readdirSync(join(ROOT, 'src', dir)).map((f) => statSync(join(ROOT, 'src', dir, f)).mtimeMs));
  return built('cli/status.js') < Math.max(newest('daemon'), newest('cli'));
}

describe('node bin/mipsec.js status', () => {
  beforeAll(async () => {
    if (distIsStale()) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(() => undefined);
    expect(distIsStale()).toBe(false);
  }, 180_000);

  it('with no daemon at the socket: exits non-zero, says none is listening there and how to start one', async () => {
    const r = await run('node', ['bin/mipsec.js', 'status', '--socket', '/nonexistent'], { cwd: ROOT }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'mipsec status: no mipsec daemon is listening on /nonexistent; start one with `mipsec sgw|smn|ha --config FILE` (add --status-socket PATH for another place)\n',
    );
  });
});

describe('a daemon process and its signals', () => {
  beforeAll(async () => {
    if (distIsStale()) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(() => undefined);
  }, 180_000);

  it('SIGHUP reloads, SIGTERM stops: socket removed, JSON log lines on stdout, the process exits 0 on its own', async () => {
    const fx = figure6Fixture();
    const socket = fx.file('sgw0.sock');
    // The built daemon on a MemoryNetwork host made from the config (real interfaces are src/net/linux's job).
    const child = fx.file('child.mjs');
    writeFileSync(
      child,
      `
      const { runDaemon } = await import(${JSON.stringify(join(ROOT, 'dist/daemon/daemon.js'))});
      const { MemoryNetwork } = await import(${JSON.stringify(join(ROOT, 'dist/net/memory.js'))});
      const network = new MemoryNetwork({ startMs: Date.now() });
      network.addLink('internet');
      network.addLink('home');
      const host = (loaded) => {
        const h = network.addHost(loaded.node.name, { forwarding: true });
        for (const i of loaded.node.interfaces) h.addInterface(i.name, i.address.startsWith('198.18.') ? 'internet' : 'home', i.address + '/' + i.prefixLength);
        return h;
      };
      const daemon = await runDaemon({ configPath: ${JSON.stringify(fx.file('sgw0.yaml'))}, statusSocket: ${JSON.stringify(socket)}, handleSignals: true, clock: network.clock, host });
      await daemon.stopped;
    `,
    );
    const proc = spawn(process.execPath, [child], { cwd: ROOT });
    const lines: { event?: string }[] = [];
    let buffered = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) lines.push(JSON.parse(line));
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const waitFor = async (event: string) => {
      for (let waited = 0; !lines.some((l) => l.event === event) && waited < 10_000; waited += 20)
        await new Promise((r) => setTimeout(r, 20));
      expect(lines.map((l) => l.event)).toContain(event);
    };
    await waitFor('started');
    expect(((await requestStatus(socket)) as { node: string }).node).toBe('sgw0');
    proc.kill('SIGHUP');
    await waitFor('reload');
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.map((l) => l.event)).toEqual(['started', 'reload', 'stopping', 'stopped']);
    expect(lines.find((l) => l.event === 'stopping')).toMatchObject({ reason: 'SIGTERM', node: 'sgw0', role: 'sgw' });
    expect(existsSync(socket)).toBe(false);
  });
});

describe('mipsec sgw|smn|ha refusals', () => {
  let err: string[];
  beforeEach(() => {
    err = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
    vi.spyOn(console, 'log').mockImplementation(() => {});
  });
  afterEach(() => vi.restoreAllMocks());

  it('an invalid config: the same lines check-config prints, exit 2', async () => {
    const fx = figure6Fixture();
    const file = fx.file('sgw0.yaml');
    writeFileSync(file, 'kind: node\nname: sgw0\nrole: sgw\nnetwork: network.yaml\ninterfaces: []\nplicy: {}\n');
    const expected = (await checkFiles([file]))[0].errors;
    expect(expected.length).toBeGreaterThanOrEqual(2);
    expect(await main(['sgw', '--config', file])).toBe(2);
    expect(err).toEqual(expected);
  });

  it('a private key readable by others: refused with the chmod fix, exit 2', async () => {
    const fx = figure6Fixture();
    chmodSync(fx.file('keys/sgw0.key'), 0o644);
    expect(await main(['sgw', '--config', fx.file('sgw0.yaml')])).toBe(2);
    expect(err.join('\n')).toContain(
      `is accessible by group or others (mode 0644); fix it with: chmod 600 ${fx.file('keys/sgw0.key')}`,
    );
  });

  it('a config of another role, a missing MN-HA key file: exit 2 with the reason', async () => {
    const fx = figure6Fixture();
    expect(await main(['smn', '--config', fx.file('sgw0.yaml')])).toBe(2);
    expect(err.at(-1)).toBe(
      `${fx.file('sgw0.yaml')}: role: this config is for role sgw; run it with mipsec sgw (or give a config with role: smn)`,
    );
    expect(await main(['ha', '--config', fx.file('ha.yaml')])).toBe(2);
    expect(err.at(-1)).toMatch(/^mipsec ha needs --mn-ha-key FILE/);
    expect(await main(['sgw', '--config', fx.file('sgw0.yaml'), '--metrics', '9100'])).toBe(2);
    expect(err.at(-1)).toMatch(/^mipsec sgw: --metrics expects HOST:PORT such as 127.0.0.1:9571, got "9100"/);
  });
});
