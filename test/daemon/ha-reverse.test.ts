// A `mipsec ha` daemon opens its mobile nodes' reverse tunnels (RFC 3024) in its I/O loop, not in JavaScript (root,
// test namespaces only): IP-in-IP from a registered care-of address with the home address inside reaches the
// correspondent on the home link; the same from a spoofed outer source is dropped and counted `untrusted_tunnel`;
// the HA's JS path opens none of them.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistrarSpec } from '../../src/bench/soak/registrar.js';
import { canRunNetns, pythonInNetns } from '../io/topology.js';
import { figure6Fixture } from './fixture.js';
import { daemonStatus, ensureDist, ipIn, ROOT, startHaInNs, TestNamespaces, type StartedDaemon } from './netns.js';

const HA_ADDRESS = '10.0.0.2';
const HOME = '10.0.0.100';
const CARE_OF = '10.1.0.100';
const SPOOFED = '10.1.0.99';
const CH = '10.0.0.200';
const MN_HA_KEY = '5a'.repeat(16);
const PACKETS = 40;

interface HaStatus {
  bindings: { homeAddress: string; careOf: string }[];
  counters: {
    role: Record<string, number>;
    engine: Record<string, number>;
    fastPath: number;
    slowPath: { total: number; reasons: Record<string, number> };
  };
}

/** Sends `count` UDP datagrams HOME → CH:6000 inside IP-in-IP from `outerSrc` to the HA (raw socket, IP_HDRINCL). */
const SENDER = [
  'import socket, struct, sys',
  'def csum(b):',
  '    s = sum(struct.unpack("!10H", b))',
  '    while s >> 16: s = (s & 0xffff) + (s >> 16)',
  '    return ~s & 0xffff',
  'def ip(src, dst, proto, payload, ttl):',
  '    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, 0, ttl, proto, 0,',
  '                    socket.inet_aton(src), socket.inet_aton(dst))',
  '    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload',
  'outer_src, home, ha, ch, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])',
  's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)',
  'for i in range(count):',
  '    data = b"reverse %d" % i',
  '    udp = struct.pack("!HHHH", 4000, 6000, 8 + len(data), 0) + data',
  '    s.sendto(ip(outer_src, ha, 4, ip(home, ch, 17, udp, 30), 64), (ha, 0))',
  'print("{}", flush=True)',
].join('\n');

/** Counts the datagrams that reach CH:6000 within `seconds`, and their sources. */
const RECEIVER = [
  'import json, socket, sys, time',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 6000)); s.settimeout(0.2)',
  "print('ready', flush=True)",
  'end = time.time() + float(sys.argv[2]); n = 0; sources = set()',
  'while time.time() < end:',
  '    try: data, (src, _) = s.recvfrom(2048)',
  '    except socket.timeout: continue',
  '    n += 1; sources.add(src)',
  "print(json.dumps({'received': n, 'sources': sorted(sources)}), flush=True)",
].join('\n');

describe.skipIf(!canRunNetns)('mipsec ha: reverse tunnels in the I/O loop (root, test namespaces)', () => {
  const spaces = new TestNamespaces('mipsec-rt');
  const fx = figure6Fixture();
  let haNs = '';
  let lanNs = '';
  let ha: StartedDaemon | undefined;

  beforeAll(async () => {
    await ensureDist();
    haNs = spaces.add('ha');
    lanNs = spaces.add('lan');
    // One home link: the correspondent and the mobile node's care-of side are both behind it (the care-of addresses
    // routed to the LAN namespace), so every packet the HA handles comes in and goes out on its one interface.
    spaces.veth(haNs, 'home', `${HA_ADDRESS}/16`, lanNs, 'eth0', `${CH}/16`);
    ipIn(lanNs, 'addr', 'add', `${CARE_OF}/32`, 'dev', 'eth0');
    ipIn(haNs, 'route', 'add', '10.1.0.0/16', 'via', CH);
    writeFileSync(fx.file('mn-ha.keys'), `${HOME} 4096 ${MN_HA_KEY}\n`, { mode: 0o600 });
    ha = await startHaInNs(haNs, (name) => fx.file(name));
    // Register HOME at CARE_OF from the LAN namespace, as the mobile node would.
    const spec: RegistrarSpec = {
      ha: HA_ADDRESS,
      mode: 'storm',
      count: 1,
      careOfBase: CARE_OF,
      nodes: [{ home: HOME, spi: 4096, keyHex: MN_HA_KEY }],
    };
    const registrar = spawn(
      'ip',
      ['netns', 'exec', lanNs, process.execPath, join(ROOT, 'dist/bench/soak/registrar.js'), JSON.stringify(spec)],
      { cwd: ROOT },
    );
    let err = '';
    registrar.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    expect(await new Promise((resolve) => registrar.once('exit', resolve)), err).toBe(0);
  }, 120_000);

  afterAll(async () => {
    ha?.child.kill('SIGTERM');
    await ha?.exited;
    spaces.close();
  });

  /** Sends PACKETS reverse-tunnelled datagrams from `outerSrc`; what the correspondent received. */
  async function reverseTunnel(outerSrc: string): Promise<{ received: number; sources: string[] }> {
    const receiver = pythonInNetns(lanNs, RECEIVER, [CH, '2']);
    await receiver.ready;
    await pythonInNetns(lanNs, SENDER, [outerSrc, HOME, HA_ADDRESS, CH, String(PACKETS)]).done;
    return (await receiver.done) as { received: number; sources: string[] };
  }

  it('opens the tunnel from the care-of address natively; drops a spoofed one, counted', async () => {
    const before = await daemonStatus<HaStatus>(fx.file('ha.sock'));
    expect(before.bindings).toEqual([expect.objectContaining({ homeAddress: HOME, careOf: CARE_OF })]);

    const good = await reverseTunnel(CARE_OF);
    expect(good, 'every datagram reached the correspondent, with the home address as its source').toEqual({
      received: PACKETS,
      sources: [HOME],
    });
    const spoofed = await reverseTunnel(SPOOFED);
    expect(spoofed.received, 'nothing from a spoofed outer source').toBe(0);

    const after = await daemonStatus<HaStatus>(fx.file('ha.sock'));
    const delta = (read: (s: HaStatus) => number | undefined) => (read(after) ?? 0) - (read(before) ?? 0);
    expect(
      delta((s) => s.counters.engine.untrusted_tunnel),
      'the spoofed tunnels, dropped by the engine',
    ).toBe(PACKETS);
    for (const name of ['decapsulated', 'drop_untrusted_tunnel'])
      expect(after.counters.role[name]).toBeTypeOf('number');
    expect(
      delta((s) => s.counters.role.decapsulated),
      'the JS path opened none',
    ).toBe(0);
    expect(
      delta((s) => s.counters.role.drop_untrusted_tunnel),
      'nor refused any',
    ).toBe(0);
    expect(
      delta((s) => s.counters.fastPath),
      'both batches handled natively',
    ).toBeGreaterThanOrEqual(2 * PACKETS);
    expect(
      delta((s) => s.counters.slowPath.total),
      'none punted to JavaScript',
    ).toBe(0);
  }, 60_000);
});
