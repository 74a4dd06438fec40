// A gateway restart costs seconds, not a re-registration (root, test namespaces only): two `mipsec sgw`
// daemons between two hosts, a ping every 10 ms across them; sgw1 is killed with SIGKILL and started
// again, then stopped with SIGTERM and started again. Traffic flows again by itself (SKIP needs no
// handshake: the first packet re-keys) and the peer does nothing: within 2 s (SIGKILL) and 1 s (SIGTERM) of the new
// daemon saying it started. The time from spawning it is printed too; most of it is Node starting the process, which
// on a loaded 2-core machine alone can take a second, so it is only held to 3 s.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunNetns } from '../io/topology.js';
import { figure6Fixture } from './fixture.js';
import { freshDist, sgwNamespaces, waitFor, type Started } from './sgw-namespaces.js';

const PING_INTERVAL_S = 0.01;

/** Epoch ms of every echo reply in `ping -D` output. */
function replyTimes(output: string): number[] {
  return [...output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
}

describe.skipIf(!canRunNetns)('mipsec sgw restarts under a live flow (root, test namespaces)', () => {
  const lab = sgwNamespaces('mipsec-rs');
  const { ns } = lab;
  const fx = figure6Fixture();

  beforeAll(async () => {
    expect(await freshDist()).toBe(true);
    lab.build();
  }, 60_000);

  afterAll(() => lab.removeAll());

  const startSgw = async (
    node: 'sgw0' | 'sgw1',
  ): Promise<{ daemon: Started; spawnedAt: number; startedAt: number }> => {
    const spawnedAt = Date.now();
    const daemon = lab.startSgw(node, fx.file(`${node}.yaml`), fx.file(`${node}.sock`));
    await waitFor(`${node} to start (${daemon.out()})`, () => daemon.out().includes('"event":"started"'), 30_000);
    return { daemon, spawnedAt, startedAt: Date.now() };
  };

  it('traffic resumes by itself within 2 s of the restarted daemon starting after SIGKILL and 1 s after SIGTERM', async () => {
    await startSgw('sgw0');
    let sgw1 = (await startSgw('sgw1')).daemon;
    const ping = spawn('ip', [
      'netns',
      'exec',
      ns.h0,
      'ping',
      '-D',
      '-n',
      '-i',
      String(PING_INTERVAL_S),
      '-W',
      '1',
      '10.1.0.10',
    ]);
    let out = '';
    ping.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the flow to carry replies', () => replyTimes(out).length > 50, 20_000);
      const resumedAfter = async (
        signal: 'SIGKILL' | 'SIGTERM',
      ): Promise<{ fromSpawn: number; fromStarted: number }> => {
        sgw1.child.kill(signal);
        await sgw1.exited;
        const restart = await startSgw('sgw1');
        sgw1 = restart.daemon;
        await waitFor(
          `replies after the ${signal} restart`,
          () => replyTimes(out).some((t) => t > restart.spawnedAt),
          10_000,
        );
        await new Promise((r) => setTimeout(r, 1000));
        const first = replyTimes(out).find((t) => t > restart.spawnedAt)!;
        console.log(
          `sgw1 ${signal} + restart: traffic again ${(first - restart.spawnedAt).toFixed(0)} ms after the new process started ` +
            `(${(restart.startedAt - restart.spawnedAt).toFixed(0)} ms of it until it logged "started")`,
        );
        return { fromSpawn: first - restart.spawnedAt, fromStarted: first - restart.startedAt };
      };
      const afterKill = await resumedAfter('SIGKILL');
      const afterTerm = await resumedAfter('SIGTERM');
      expect(afterKill.fromStarted).toBeLessThanOrEqual(2000);
      expect(afterTerm.fromStarted).toBeLessThanOrEqual(1000);
      expect(Math.max(afterKill.fromSpawn, afterTerm.fromSpawn)).toBeLessThanOrEqual(3000);
    } finally {
      ping.kill('SIGINT');
    }
  }, 90_000);
});
