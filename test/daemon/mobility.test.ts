// SMN and HA daemons with the two SGW daemons of Figure 6: the SMN starts visiting site 1, registers
// through sgw1 and sgw0; `status` shows the HA's binding and the SMN's registration; a graceful stop
// of the SMN deregisters it, so the HA's binding goes away.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadedNode } from '../../src/config/index.js';
import { runDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { loadMnHaKeys } from '../../src/daemon/mnha.js';
import { formatStatus, type Status } from '../../src/daemon/status.js';
import { requestStatus } from '../../src/daemon/socket.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import type { Host } from '../../src/net/types.js';
import { figure6Fixture } from './fixture.js';

const CARE_OF = '10.1.0.100';
const MN_HA_KEY = '5a'.repeat(16);

let daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons) await d.stop();
  daemons = [];
});

describe.each(['native', 'ts'] as const)('SMN and HA daemons on the %s engine', (impl) => {
  it('registration through the SGW daemons shows in status on both ends; stopping the SMN deregisters it', async () => {
    const fx = figure6Fixture();
    const keyFile = fx.file('mn-ha.keys');
    writeFileSync(keyFile, `# home address, SPI, HMAC-MD5 key\n10.0.0.100 4096 ${MN_HA_KEY}\n`, { mode: 0o600 });
    const logs: string[] = [];
    // The SMN's machine woke up in site 1: its interface has a care-of address there, not the config's home address.
    const hostFor = (loaded: LoadedNode): Host => {
      if (loaded.node.role !== 'smn') return fx.hostFor(loaded);
      const host = fx.network.addHost('smn');
      host.addInterface('eth0', 'site1', `${CARE_OF}/16`);
      host.addRoute('0.0.0.0/0', { via: '10.1.0.1' });
      return host;
    };
    const start = async (node: string, extra: object = {}) => {
      const d = await runDaemon({
        configPath: fx.file(`${node}.yaml`),
        host: hostFor,
        clock: fx.network.clock,
        engine: impl,
        statusSocket: fx.file(`${node}.sock`),
        logDestination: { write: (line: string) => void logs.push(line) },
        leaveTimeoutMs: 1000,
        ...extra,
      });
      daemons.push(d);
      return d;
    };
    await start('sgw0');
    await start('sgw1');
    const ha = await start('ha', { mnHaKeyFile: keyFile, stateDir: fx.file('state') });
    const smn = await start('smn', { mnHaKeyFile: keyFile });
    fx.network.runFor(2 * SETTLE_MS);

    const haStatus = (await requestStatus(ha.socketPath!)) as Status;
    expect(haStatus).toMatchObject({ role: 'ha', sas: [], bindings: [{ homeAddress: '10.0.0.100', careOf: CARE_OF }] });
    const binding = (haStatus.bindings as { lifetimeSeconds: number; remainingSeconds: number }[])[0];
    expect(binding.lifetimeSeconds).toBeGreaterThan(0);
    expect(binding.remainingSeconds).toBeLessThanOrEqual(binding.lifetimeSeconds);
    expect(haStatus.counters.role.reply_code0).toBe(1);
    const smnStatus = (await requestStatus(smn.socketPath!)) as Status;
    expect(smnStatus).toMatchObject({
      role: 'smn',
      bindings: {
        homeAddress: '10.0.0.100',
        registration: 'registered',
        place: 'visiting',
        site: 'site1',
        careOf: CARE_OF,
      },
    });
    expect(smnStatus.sas.map((s) => `${s.direction} ${s.role} ${s.peer}`).sort()).toEqual(
      expect.arrayContaining(['out end sgw:198.18.0.1', 'out nexthop sgw:198.18.1.1']),
    );
    expect(formatStatus(smnStatus)).toContain(
      `mobility: home 10.0.0.100, visiting (site1), care-of ${CARE_OF}, registration registered`,
    );
    expect(formatStatus(haStatus)).toMatch(
      new RegExp(`10\\.0\\.0\\.100\\s+${CARE_OF.replace(/\./g, '\\.')}\\s+\\d+s\\s+\\d+s`),
    );
    const events = logs.map((l) => JSON.parse(l));
    expect(events.find((e) => e.node === 'smn' && e.event === 'registration_registered')).toMatchObject({
      careOf: CARE_OF,
    });
    expect(events.find((e) => e.node === 'ha' && e.event === 'binding')).toMatchObject({
      homeAddress: '10.0.0.100',
      careOf: CARE_OF,
    });

    // A reload that adds a known Border-SGW is applied at once; the SAs and the registration stay.
    const smnSas = smn.sas().map((s) => s.id);
    const smnFile = fx.file('smn.yaml');
    writeFileSync(smnFile, readFileSync(smnFile, 'utf8').replace('borderSgws: [sgw0]', 'borderSgws: [sgw0, sgw2]'));
    expect(await smn.reload()).toEqual({ ok: true, applied: ['smn.borderSgws'], restartNeededFor: [] });
    expect(smn.sas().map((s) => s.id)).toEqual(smnSas);
    expect(smn.status().bindings).toMatchObject({ registration: 'registered', careOf: CARE_OF });
    expect(logs.map((l) => JSON.parse(l)).find((e) => e.node === 'smn' && e.event === 'reload')).toMatchObject({
      changed: ['smn.borderSgws.1'],
      applied: ['smn.borderSgws'],
    });

    const stopping = smn.stop('SIGTERM');
    fx.network.runFor(2 * SETTLE_MS);
    await stopping;
    expect(ha.status().bindings).toEqual([]);
    // The HA accepted the deregistration (its answer goes to the home address, no longer tunnelled, so the SMN
    // retransmits until its attempts run out: each one is accepted again).
    expect(ha.status().counters.role.reply_code0).toBeGreaterThanOrEqual(2);
    expect(logs.map((l) => JSON.parse(l)).some((e) => e.node === 'ha' && e.event === 'deregistered')).toBe(true);
    expect(logs.join('')).not.toContain(MN_HA_KEY);
  });
});

describe('MN-HA key file', () => {
  it('refuses open modes, bad lines and short keys with the line and the fix; zeroes nothing it returns', () => {
    const fx = figure6Fixture();
    const file = (name: string, text: string, mode = 0o600) => {
      writeFileSync(fx.file(name), text, { mode });
      return fx.file(name);
    };
    expect(
      loadMnHaKeys(
        file('good', `10.0.0.100 4096 ${MN_HA_KEY}\n\n# note\n10.0.0.101 4097 ${MN_HA_KEY}00 # trailing\n`),
      ).map((e) => [e.homeAddress, e.auth.spi, e.auth.key.length]),
    ).toEqual([
      ['10.0.0.100', 4096, 16],
      ['10.0.0.101', 4097, 17],
    ]);
    expect(() => loadMnHaKeys(file('open', `10.0.0.100 4096 ${MN_HA_KEY}\n`, 0o644))).toThrow(/chmod 600/);
    expect(() => loadMnHaKeys(file('short', '10.0.0.100 4096 abcd\n'))).toThrow(
      /line 1: the key must be 16 to 64 bytes of hex/,
    );
    expect(() => loadMnHaKeys(file('spi', `10.0.0.100 7 ${MN_HA_KEY}\n`))).toThrow(
      /line 1: SPI must be a whole number from 256/,
    );
    expect(() => loadMnHaKeys(file('addr', `\n10.0.0 4096 ${MN_HA_KEY}\n`))).toThrow(
      /line 2: "10.0.0" is not an IPv4 address/,
    );
    expect(() => loadMnHaKeys(file('twice', `10.0.0.100 4096 ${MN_HA_KEY}\n10.0.0.100 4097 ${MN_HA_KEY}\n`))).toThrow(
      /line 2: 10.0.0.100 is listed twice/,
    );
    expect(() => loadMnHaKeys(file('fields', '10.0.0.100 4096\n'))).toThrow(
      /line 1: expected three fields; each line is '<home address> <SPI> <key hex>'/,
    );
  });
});
