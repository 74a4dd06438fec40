// Two `mipsec sgw` daemons between two hosts, every link at the default MTU 1500, only in test namespaces
// (root): issue 11 item 5 (path MTU: ICMP 3/4 with the MTU that fits, a 300 KB TCP transfer completes),
// item 6 (the I/O loops' counters in status --json) and issue 10 hole 13's last point (SKIP arriving on an
// interface the node config does not name is not taken). The daemons run the native engine's I/O loop only.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { figure6Fixture } from '../daemon/fixture.js';
import {
  freshDist,
  sgwNamespaces,
  statusJson,
  waitFor,
  type SgwNamespaces,
  type Started,
} from '../daemon/sgw-namespaces.js';
import { canRunNetns, pythonInNetns } from '../io/topology.js';

const lab = sgwNamespaces('mipsec-dp');
const { ns, inNs } = lab;
const BYTES = 300 * 1024;

/** Sends `bytes` over TCP from h0 to h1; what h1 received. */
async function tcpTransfer(on: SgwNamespaces, bytes: number): Promise<number> {
  const server = pythonInNetns(
    on.ns.h1,
    [
      'import json, socket',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      's.bind(("10.1.0.10", 5201)); s.listen(1); s.settimeout(25)',
      "print('ready', flush=True)",
      'c, _ = s.accept(); c.settimeout(25); n = 0',
      'while True:',
      '    b = c.recv(65536)',
      '    if not b: break',
      '    n += len(b)',
      "print(json.dumps({'received': n}), flush=True)",
    ].join('\n'),
    [],
  );
  await server.ready;
  const client = pythonInNetns(
    on.ns.h0,
    [
      'import json, socket, sys',
      's = socket.create_connection(("10.1.0.10", 5201), timeout=25); s.sendall(b"m" * int(sys.argv[1])); s.shutdown(socket.SHUT_WR)',
      's.settimeout(25); s.recv(1)',
      "print(json.dumps({'sent': int(sys.argv[1])}), flush=True)",
    ].join('\n'),
    [String(bytes)],
  );
  const [{ received }] = await Promise.all([server.done, client.done]);
  return received;
}

/** Starts both SGW daemons of `on` with these node configs and waits until they run. */
async function startDaemons(
  on: SgwNamespaces,
  configs: [string, string],
  sockets: [string, string],
): Promise<Started[]> {
  const started = [on.startSgw('sgw0', configs[0], sockets[0]), on.startSgw('sgw1', configs[1], sockets[1])];
  for (const d of started) {
    await waitFor(
      () => `the daemon on ${d.socket} to start (output: ${d.out()})`,
      () => d.out().includes('"event":"started"'),
      40_000,
    );
  }
  // The first packets of a new key go to certificate discovery: let the keys settle.
  await on.inNs(on.ns.h0, 'ping', ['-c', '3', '-i', '0.3', '-W', '2', '10.1.0.10']).catch(() => undefined);
  return started;
}

describe.skipIf(!canRunNetns)('daemons on 1500-byte links (root, test namespaces only)', () => {
  const fx = figure6Fixture();
  const daemons: Started[] = [];

  beforeAll(async () => {
    expect(await freshDist()).toBe(true);
    lab.build();
    // A third namespace on an sgw1 interface its node config does not name.
    lab.addNs(`${ns.sgw1}-x`);
    lab.veth(ns.sgw1, 'unnamed', '192.0.2.1/24', `${ns.sgw1}-x`, 'eth0', '192.0.2.2/24');
    daemons.push(
      ...(await startDaemons(
        lab,
        [fx.file('sgw0.yaml'), fx.file('sgw1.yaml')],
        [fx.file('dp0.sock'), fx.file('dp1.sock')],
      )),
    );
  }, 180_000);

  afterAll(() => lab.removeAll());

  it('path MTU: a DF datagram too big for the tunnel gets ICMP 3/4 with the MTU that fits; one that size crosses', async () => {
    const ping = (size: number) =>
      inNs(ns.h0, 'ping', ['-c', '1', '-W', '2', '-s', String(size), '-M', 'do', '10.1.0.10']).catch(
        (err: { stdout: string }) => err,
      );
    const tooBig = await ping(1472);
    const mtu = Number(/Frag needed and DF set \(mtu = (\d+)\)/.exec(tooBig.stdout)?.[1]);
    expect(mtu, tooBig.stdout).toBeGreaterThan(1300);
    expect(mtu).toBeLessThan(1500);
    const fits = await ping(mtu - 28);
    expect(fits.stdout).toMatch(/1 packets transmitted, 1 received/);
    const s = await statusJson(daemons[0].socket);
    expect(s.counters.io.txTooBig).toBeGreaterThanOrEqual(1);
    expect(s.counters.io.txFragNeeded).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('path MTU: a 300 KB TCP transfer between the hosts completes (PMTUD through the daemons)', async () => {
    expect(await tcpTransfer(lab, BYTES)).toBe(BYTES);
  }, 40_000);

  it("status --json shows the I/O loops' counters beside the engine's", async () => {
    const s = await statusJson(daemons[0].socket);
    const names = [
      'rxTun',
      'txRaw',
      'txErrors',
      'txTooBig',
      'txFragNeeded',
      'rxUdpGro',
      'txUdpGso',
      'punted',
      'puntDropped',
      'injected',
    ];
    for (const name of [...names, 'rxForeignInterface']) {
      expect(s.counters.io[name], name).toBeTypeOf('number');
    }
    expect(s.counters.io.punted).toBeGreaterThan(0);
    expect(s.counters.io.injected).toBeGreaterThan(0);
  });

  it('hole 13: a SKIP packet arriving on an interface the node config does not name is not taken', async () => {
    const before = await statusJson(daemons[1].socket);
    const send = await inNs(`${ns.sgw1}-x`, 'python3', [
      '-c',
      [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_RAW, 57)',
        // A SKIP header (version 1, NSIDs 0, Kij alg 0, Crypt alg 0) and 32 bytes: what an attacker off the config's links sends.
        'for _ in range(3): s.sendto(bytes([0x10, 0, 0, 0, 0, 0, 0, 0]) + bytes(32), ("192.0.2.1", 0))',
      ].join('\n'),
    ]);
    expect(send.stderr).toBe('');
    await new Promise((r) => setTimeout(r, 300));
    const after = await statusJson(daemons[1].socket);
    expect(after.counters.io.rxForeignInterface - before.counters.io.rxForeignInterface).toBeGreaterThanOrEqual(3);
    expect(after.counters.io.punted).toBe(before.counters.io.punted);
    expect(after.counters.role).toEqual(before.counters.role);
  });
});

describe.skipIf(!canRunNetns)('daemons with dataPath transport udp (root, test namespaces only)', () => {
  const fx = figure6Fixture();
  const udpLab = sgwNamespaces('mipsec-du');
  let daemons: Started[] = [];

  /** The example node config with the UDP transport on port 4800 and two workers. */
  const withUdp = (name: string) => {
    const doc = parse(readFileSync(fx.file(`${name}.yaml`), 'utf8'));
    doc.dataPath = { transport: 'udp', udpPort: 4800, workers: 2 };
    writeFileSync(fx.file(`${name}-udp.yaml`), stringify(doc));
    return fx.file(`${name}-udp.yaml`);
  };

  beforeAll(async () => {
    expect(await freshDist()).toBe(true);
    udpLab.build();
    daemons = await startDaemons(
      udpLab,
      [withUdp('sgw0'), withUdp('sgw1')],
      [fx.file('du0.sock'), fx.file('du1.sock')],
    );
  }, 180_000);

  afterAll(() => udpLab.removeAll());

  it("the daemons carry the hosts' traffic in UDP port 4800 both ways; a 300 KB TCP transfer completes", async () => {
    expect(await tcpTransfer(udpLab, BYTES)).toBe(BYTES);
    for (const d of daemons) {
      const { io } = (await statusJson(d.socket)).counters;
      expect(io.txUdp, JSON.stringify(io)).toBeGreaterThan(0);
      expect(io.rxUdp, JSON.stringify(io)).toBeGreaterThan(0);
      expect(io.rxForeignInterface).toBe(0);
    }
  }, 40_000);
});
