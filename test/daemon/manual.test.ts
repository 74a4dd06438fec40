// SGW daemons of examples/spi with manual SPI-mode SAs: `status` lists them (no keys); a reload after
// one entry's key file changed replaces that entry's SAs only, while traffic on the others flows on.
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { formatStatus } from '../../src/daemon/status.js';
import { saveCertificate, saveX25519 } from '../../src/keys/keyfile.js';
import { addSpiEndHosts, addSpiGatewayHost, addSpiLinks, loadSpiExample } from '../../src/lab/spi.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import { makeCa, makeIdentity } from '../../src/lab/world.js';
import { MemoryNetwork } from '../../src/net/memory.js';

/** A second entry for gwa, to a site no traffic goes to in this test. */
const TO_GWC = `manualSas:
  - name: to-gwc
    peer: 198.18.30.1
    local: 10.10.0.0/24
    remote: 10.30.0.0/24
    suite: aes128gcm
    spiOut: 12289
    spiIn: 16386
    keyOut: keys/a-to-c.key
    keyIn: keys/c-to-a.key
`;

const writeKey = (path: string) => {
  const key = randomBytes(20);
  writeFileSync(path, `${key.toString('hex')}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  key.fill(0);
};

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

describe.each(['native', 'ts'] as const)('manual SAs in the SGW daemon on the %s engine', (impl) => {
  it("status lists them without keys; a reload that changes one key replaces only that entry's SAs; traffic keeps flowing", async () => {
    const example = await loadSpiExample();
    const { dir } = example;
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const network = new MemoryNetwork({ startMs: Date.now() });
    const nowS = Math.floor(network.clock.now() / 1000);
    const ca = makeCa(nowS);
    mkdirSync(join(dir, 'ca'));
    saveCertificate(join(dir, 'ca/ca.crt'), ca.cert);
    for (const [node, outside] of [
      ['gwa', '198.18.10.1'],
      ['gwb', '198.18.20.1'],
    ]) {
      const id = makeIdentity(ca.key, `sgw:${outside}`, nowS);
      saveX25519(join(dir, `keys/${node}.key`), id);
      saveCertificate(join(dir, `keys/${node}.crt`), id.cert);
      id.secretKey.fill(0);
    }
    const gwaFile = join(dir, 'gwa.yaml');
    writeFileSync(gwaFile, readFileSync(gwaFile, 'utf8').replace('manualSas:\n', TO_GWC));
    writeKey(join(dir, 'keys/a-to-c.key'));
    writeKey(join(dir, 'keys/c-to-a.key'));
    addSpiLinks(network);

    const logs: string[] = [];
    const daemons: Daemon[] = [];
    for (const node of ['gwa', 'gwb']) {
      daemons.push(
        await runDaemon({
          configPath: join(dir, `${node}.yaml`),
          role: 'sgw',
          clock: network.clock,
          engine: impl,
          statusSocket: false,
          logDestination: { write: (line: string) => void logs.push(line) },
          host: (loaded) => addSpiGatewayHost(network, loaded),
        }),
      );
    }
    cleanup.push(async () => {
      for (const d of daemons) await d.stop();
    });
    const [gwa] = daemons;
    const [hostA] = addSpiEndHosts(network);
    const ping = (seqs: number[]) => {
      const echoes = collectEchoes(hostA);
      for (const seq of seqs) hostA.send(probe('10.10.0.10', '10.20.0.10', seq));
      network.run(network.clock.now() + 1000);
      echoes.stop();
      return echoes.seqs;
    };
    expect(ping([1, 2])).toEqual([1, 2]);

    const before = gwa.status().manualSas;
    expect(before.map((sa) => [sa.name, sa.direction, sa.mode, sa.peer, sa.src, sa.dst])).toEqual([
      ['to-gwc', 'out', 'spi', '198.18.30.1', '198.18.10.1', '198.18.30.1'],
      ['to-gwc', 'in', 'spi', '198.18.30.1', '198.18.30.1', '198.18.10.1'],
      ['to-gwb', 'out', 'spi', '198.18.20.1', '198.18.10.1', '198.18.20.1'],
      ['to-gwb', 'in', 'spi', '198.18.20.1', '198.18.20.1', '198.18.10.1'],
    ]);
    expect(before.map((sa) => sa.packets)).toEqual([0, 0, 2, 2]);
    expect(Object.keys(before[0]).sort()).toEqual([
      'bytes',
      'direction',
      'dst',
      'id',
      'mode',
      'name',
      'packets',
      'peer',
      'role',
      'src',
    ]);
    expect(formatStatus(gwa.status())).toContain('manual SAs (4)');
    // The SKIP SA table is separate: no SKIP traffic ran, so it is empty.
    expect(gwa.status().sas).toEqual([]);

    writeKey(join(dir, 'keys/a-to-c.key'));
    const result = await gwa.reload();
    expect(result).toEqual({
      ok: true,
      applied: ['manualSas (installed: to-gwc; removed: to-gwc)'],
      restartNeededFor: [],
    });
    const after = gwa.status().manualSas;
    expect(after.map((sa) => sa.name)).toEqual(['to-gwc', 'to-gwc', 'to-gwb', 'to-gwb']);
    // to-gwb untouched (same ids, counters kept); to-gwc on new SAs.
    expect(after.slice(2)).toEqual(before.slice(2));
    expect(
      after
        .slice(0, 2)
        .map((sa) => sa.id)
        .some((id) => before.some((b) => b.id === id)),
    ).toBe(false);
    expect(ping([3])).toEqual([3]);
    expect(
      gwa
        .status()
        .manualSas.slice(2)
        .map((sa) => sa.packets),
    ).toEqual([3, 3]);

    // A reload with nothing changed keeps everything.
    expect(await gwa.reload()).toEqual({ ok: true, applied: [], restartNeededFor: [] });
    expect(gwa.status().manualSas.map((sa) => sa.id)).toEqual(after.map((sa) => sa.id));
    const replaced = logs.map((l) => JSON.parse(l)).filter((l) => l.event === 'manual_sas_replaced');
    expect(replaced).toMatchObject([{ node: 'gwa', installed: ['to-gwc'], removed: ['to-gwc'] }]);
    const keyHex = readFileSync(join(dir, 'keys/a-to-c.key'), 'utf8').trim();
    expect(logs.join('\n')).not.toContain(keyHex);
  });
});
