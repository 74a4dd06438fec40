// `mipsec ha` killed with SIGKILL at 20 random points of a 1,000-registration storm (root, in test
// namespaces only): every registration the HA acknowledged is still bound after the restarts, the
// journal reloads whole, and each restart says what it restored.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistrarSpec } from '../../src/bench/soak/registrar.js';
import { canRunNetns } from '../io/topology.js';
import { figure6Fixture } from './fixture.js';
import { daemonStatus, ensureDist, ROOT, startHaInNs, TestNamespaces, waitFor, type StartedDaemon } from './netns.js';

const REGISTRATIONS = 1000;
const KILLS = 20;
const NODES = 50;
const HA_ADDRESS = '10.0.0.2';
const homes = Array.from({ length: NODES }, (_, i) => `10.0.0.${128 + i}`);

describe.skipIf(!canRunNetns)('mipsec ha under SIGKILL during a registration storm (root, test namespaces)', () => {
  const spaces = new TestNamespaces('mipsec-ha');
  const fx = figure6Fixture();
  let haNs = '';
  let clientNs = '';
  let current: StartedDaemon | undefined;

  beforeAll(async () => {
    await ensureDist();
    haNs = spaces.add('ha');
    clientNs = spaces.add('cl');
    spaces.veth(haNs, 'home', `${HA_ADDRESS}/16`, clientNs, 'eth0', '10.0.0.200/16');
    // The HA serves 50 mobile nodes: the map and its node config say so, the key file holds their MN-HA keys.
    for (const file of ['network.yaml', 'ha.yaml']) {
      writeFileSync(
        fx.file(file),
        readFileSync(fx.file(file), 'utf8').replace(/serves: \[10\.0\.0\.100\]/g, 'serves: [10.0.0.128/26]'),
      );
    }
    const keys = homes.map((home, i) => `${home} ${256 + i} ${(i + 16).toString(16).repeat(16)}`);
    writeFileSync(fx.file('mn-ha.keys'), `${keys.join('\n')}\n`, { mode: 0o600 });
  }, 120_000);

  afterAll(() => {
    current?.child.kill('SIGKILL');
    spaces.close();
  });

  const startHa = () => startHaInNs(haNs, (name) => fx.file(name));

  it(`${KILLS} kill -9s during ${REGISTRATIONS} registrations lose no acknowledged binding`, async () => {
    current = await startHa();
    const spec: RegistrarSpec = {
      ha: HA_ADDRESS,
      mode: 'storm',
      count: REGISTRATIONS,
      careOfBase: '10.1.0.1',
      nodes: homes.map((home, i) => ({ home, spi: 256 + i, keyHex: (i + 16).toString(16).repeat(16) })),
    };
    const storm = spawn(
      'ip',
      ['netns', 'exec', clientNs, process.execPath, join(ROOT, 'dist/bench/soak/registrar.js'), JSON.stringify(spec)],
      { cwd: ROOT },
    );
    let out = '';
    let err = '';
    storm.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    storm.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const stormDone = new Promise<number | null>((resolve) => storm.once('exit', resolve));
    const ackedCount = () => out.match(/^ack \d+$/gm)?.length ?? 0;

    // Kill points: 20 distinct acknowledgement counts spread at random over the storm.
    const points = new Set<number>();
    while (points.size < KILLS) points.add(20 + Math.floor(Math.random() * (REGISTRATIONS - 40)));
    const restoredLogs: string[] = [];
    for (const point of [...points].sort((a, b) => a - b)) {
      await waitFor(`${point} acknowledgements (storm stderr: ${err})`, () => ackedCount() >= point, 60_000);
      current.child.kill('SIGKILL');
      await current.exited;
      current = await startHa();
      restoredLogs.push(
        current
          .out()
          .split('\n')
          .find((l) => l.includes('"event":"bindings_restored"')) ?? '',
      );
    }
    expect(await stormDone, err).toBe(0);
    const acked = JSON.parse(
      out
        .split('\n')
        .find((l) => l.startsWith('acked '))!
        .slice('acked '.length),
    ) as Record<string, string>;
    expect(Object.keys(acked).length).toBe(NODES);

    // One more crash after the storm, then compare what the HA holds with what it acknowledged last.
    current.child.kill('SIGKILL');
    await current.exited;
    current = await startHa();
    const status = await daemonStatus<{ bindings: { homeAddress: string; careOf: string }[] }>(fx.file('ha.sock'));
    const bound = Object.fromEntries(status.bindings.map((b) => [b.homeAddress, b.careOf]));
    expect(bound).toEqual(acked);
    // Every restart restored bindings from the journal and said so.
    expect(restoredLogs.every((l) => /"bindings":\d+/.test(l))).toBe(true);
    expect(restoredLogs.at(-1)).toMatch(/"bindings":(4\d|50)/);
  }, 300_000);
});
