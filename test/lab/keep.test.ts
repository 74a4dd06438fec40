// `mipsec lab --keep --metrics` (root): while the kept case's roles run, `mipsec status` on SGW0's
// socket and its metrics URL both show the traffic the case sent; Ctrl-C (SIGINT) removes the
// namespaces and the sockets.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { listNamespaces } from '../../src/net/netns.js';
import { canRunNetns } from '../io/topology.js';

const ROOT = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

function distIsStale(): boolean {
  const built = statSync(join(ROOT, 'dist/lab/run.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = (dir: string) =>
    Math.max(...readdirSync(join(ROOT, 'src', dir)).map((f) => statSync(join(ROOT, 'src', dir, f)).mtimeMs));
  return built < Math.max(newest('daemon'), newest('cli'), newest('lab'), newest('net/linux'));
}

describe.skipIf(!canRunNetns)('mipsec lab --keep (root)', () => {
  beforeAll(async () => {
    if (distIsStale()) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).catch(() => undefined);
    expect(distIsStale()).toBe(false);
  }, 180_000);

  it('the kept roles answer mipsec status and serve metrics with live counters; SIGINT removes namespaces and sockets', async () => {
    const lab = spawn(
      process.execPath,
      ['bin/mipsec.js', 'lab', '--only', '4.5.2', '--keep', '--metrics', '127.0.0.1:0'],
      { cwd: ROOT },
    );
    let out = '';
    lab.stdout.on('data', (c: Buffer) => (out += c.toString()));
    lab.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((done) => lab.once('exit', (code) => done(code)));
    try {
      for (const end = Date.now() + 60_000; !out.includes('Ctrl-C removes them') && Date.now() < end; )
        await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain('[ 1/1] PASS 4.5.2');
      const line = /--keep: sgw sgw0: mipsec status --socket (\S+); metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(
        out,
      );
      expect(line, out).not.toBeNull();
      const [, socket, url] = line!;
      expect(socket).toBe('/run/mipsec/lab-sgw0.sock');
      expect(out).toMatch(/--keep: smn smn: mipsec status --socket \/run\/mipsec\/lab-smn\.sock; metrics http:/);

      const { stdout } = await run(process.execPath, ['bin/mipsec.js', 'status', '--json', '--socket', socket], {
        cwd: ROOT,
      });
      const status = JSON.parse(stdout) as {
        node: string;
        role: string;
        sas: { mode: string; packets: number }[];
        counters: { verdicts: Record<string, number>; role: Record<string, number> };
      };
      expect(status.node).toBe('sgw0');
      expect(status.role).toBe('sgw');
      // 4.5.2: SGW0 seals the SMN's traffic to CH1 and opens the replies.
      expect(status.counters.verdicts.forward).toBeGreaterThan(0);
      expect(status.counters.role.encap).toBeGreaterThan(0);
      expect(status.sas.filter((sa) => sa.mode === 'skip').reduce((n, sa) => n + sa.packets, 0)).toBeGreaterThan(0);

      const text = await (await fetch(url)).text();
      const forward = /^mipsec_verdicts_total\{verdict="forward",node="sgw0",role="sgw"\} (\d+)$/m.exec(text);
      expect(forward, text).not.toBeNull();
      expect(Number(forward![1])).toBeGreaterThan(0);
      expect(text).toMatch(/^mipsec_sas\{node="sgw0",role="sgw"\} [1-9]\d*$/m);
    } finally {
      lab.kill('SIGINT');
    }
    await exited;
    expect((await listNamespaces()).filter((n) => out.includes(n) && n.startsWith('mlab-'))).toEqual([]);
    expect(existsSync('/run/mipsec/lab-sgw0.sock')).toBe(false);
  }, 120_000);
});
