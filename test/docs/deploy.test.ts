// docs/deploy.md, run as written (root, in namespaces this test makes): every ```sh <machine> block runs
// in that machine's namespace (or, for admin, in none), in order, with `mipsec` on the PATH and
// MIPSEC_DIR pointing at a temporary directory; the outputs the page promises are checked.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunNetns } from '../io/topology.js';
import { ensureDist, ipIn, ROOT, TestNamespaces } from '../daemon/netns.js';

const PAGE = join(ROOT, 'docs/deploy.md');

/** The page's runnable blocks: ```sh <machine> … ```. */
function runnableBlocks(markdown: string): { where: string; script: string }[] {
  return [...markdown.matchAll(/^```sh (\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({ where: m[1], script: m[2] }));
}

describe('docs/deploy.md', () => {
  it('has runnable blocks for the admin machine, both gateways and host A, in the order of the page', () => {
    const blocks = runnableBlocks(readFileSync(PAGE, 'utf8'));
    expect(blocks.map((b) => b.where)).toEqual(['admin', 'admin', 'sgwa', 'sgwb', 'hosta', 'sgwa', 'sgwa', 'sgwb']);
  });
});

describe.skipIf(!canRunNetns)('docs/deploy.md run as written (root, test namespaces)', () => {
  const spaces = new TestNamespaces('mipsec-doc');
  const ns: Record<string, string> = {};
  const dir = mkdtempSync(join(tmpdir(), 'mipsec-deploy-'));
  const bin = mkdtempSync(join(tmpdir(), 'mipsec-bin-'));

  beforeAll(async () => {
    await ensureDist();
    for (const m of ['hosta', 'sgwa', 'sgwb', 'hostb']) ns[m] = spaces.add(m);
    // The machines of the page's table.
    spaces.veth(ns.hosta, 'eth0', '10.10.0.10/24', ns.sgwa, 'inside', '10.10.0.1/24');
    spaces.veth(ns.sgwa, 'outside', '192.0.2.1/24', ns.sgwb, 'outside', '192.0.2.2/24');
    spaces.veth(ns.sgwb, 'inside', '10.20.0.1/24', ns.hostb, 'eth0', '10.20.0.10/24');
    ipIn(ns.hosta, 'route', 'add', 'default', 'via', '10.10.0.1');
    ipIn(ns.hostb, 'route', 'add', 'default', 'via', '10.20.0.1');
    // What the page's `ln -s … /usr/local/bin/mipsec` does, without touching this machine's /usr/local.
    writeFileSync(join(bin, 'mipsec'), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'bin/mipsec.js')}" "$@"\n`);
    chmodSync(join(bin, 'mipsec'), 0o755);
  }, 60_000);

  afterAll(() => {
    for (const pid of ['sgwa.pid', 'sgwb.pid'].map((f) => join(dir, f)).filter(existsSync)) {
      try {
        process.kill(Number(readFileSync(pid, 'utf8')), 'SIGKILL');
      } catch {
        // Already stopped by the page's last step.
      }
    }
    spaces.close();
  });

  it('every block succeeds and prints what the page says', () => {
    const env = { ...process.env, MIPSEC_DIR: dir, PATH: `${bin}:${process.env.PATH}` };
    const outputs = runnableBlocks(readFileSync(PAGE, 'utf8')).map(({ where, script }) => {
      const argv =
        where === 'admin'
          ? ['bash', '-euo', 'pipefail', '-c', script]
          : ['ip', 'netns', 'exec', ns[where], 'bash', '-euo', 'pipefail', '-c', script];
      try {
        return execFileSync(argv[0], argv.slice(1), { env, encoding: 'utf8', timeout: 60_000 });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        throw new Error(
          `block on ${where} failed:\n${script}\nstdout: ${e.stdout}\nstderr: ${e.stderr}\nlogs: ${[
            'sgwa.log',
            'sgwb.log',
          ]
            .map((f) => join(dir, f))
            .filter(existsSync)
            .map((f) => readFileSync(f, 'utf8').slice(-1500))
            .join('\n')}`,
        );
      }
    });
    expect(outputs[1]).toMatch(
      /^network\.yaml: ok .*\nsgwa\.yaml: ok \(node sgwa, role sgw\)\nsgwb\.yaml: ok \(node sgwb, role sgw\)\n3 files checked: 3 ok/m,
    );
    expect(outputs[4]).toMatch(/4 packets transmitted, [34] received/);
    expect(outputs[4]).toMatch(/1 packets transmitted, 1 received/);
    expect(outputs[5]).toMatch(/^node sgwa \(sgw\)/);
    expect(outputs[5]).toMatch(/SAs \([1-9]\d*\)/);
    expect(outputs[6].trim()).toBe('1');
    expect(outputs[7].trim()).toBe('1');
  }, 120_000);
});
