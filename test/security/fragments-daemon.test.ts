// Issue 10 hole 1 on the daemons (root, in namespaces this test makes): `mipsec sgw` on real interfaces
// with the kernel's 1500-byte MTU. A 3,000-byte UDP datagram from a host behind SGW0 arrives in kernel
// fragments of 1,500 bytes, too big for the link once sealed. SGW0's I/O loop splits each (no DF) into
// fragments that fit and seals them one by one (pre-fragmentation, native/wire/fragment.h); SGW1 opens
// whole SKIP packets on its fast path and delivers the fragments, which h1 reassembles. Nothing of the
// host's UDP crosses between the gateways in clear, and no sealed packet is larger than the link.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/lab/runtime-linux.js';
import { NetnsSession, randomSuffix, runCommand, type ManagedProcess } from '../../src/net/netns.js';
import { figure6Fixture } from '../daemon/fixture.js';
import { canRunNetns } from '../io/topology.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const PYTHON = '/usr/bin/python3';

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (check()) return;
  throw new Error(`timed out waiting for ${what}`);
}

const listen = `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',5201)); s.settimeout(6)
try:
  while True: d,a=s.recvfrom(65535); print(len(d),a[0],flush=True)
except socket.timeout: pass`;
const send = `import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(4): s.sendto(bytes(2972),('10.1.0.10',5201)); time.sleep(0.5)`;

describe.skipIf(!canRunNetns)('hole 1: fragments through the mipsec sgw daemons on real interfaces (root)', () => {
  const fx = figure6Fixture();
  const session = new NetnsSession(`mfragd-${randomSuffix()}`);
  const ns = { sgw0: '', sgw1: '', h0: '', h1: '' };

  beforeAll(async () => {
    // The daemons run from dist/.
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    await runCommand(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { timeoutMs: 170_000 });
    for (const name of ['sgw0', 'sgw1', 'h0', 'h1'] as const) ns[name] = await session.addNamespace(name);
    const link = async (a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string) => {
      await session.addVeth(a, ifA, b, ifB);
      await session.addAddress(a, ifA, cidrA);
      await session.addAddress(b, ifB, cidrB);
    };
    await link(ns.sgw0, 'outside', '198.18.0.1/16', ns.sgw1, 'outside', '198.18.1.1/16');
    await link(ns.sgw0, 'inside', '10.0.0.1/16', ns.h0, 'eth0', '10.0.0.10/16');
    await link(ns.sgw1, 'inside', '10.1.0.1/16', ns.h1, 'eth0', '10.1.0.10/16');
    await session.ip(ns.h0, ['route', 'add', 'default', 'via', '10.0.0.1']);
    await session.ip(ns.h1, ['route', 'add', 'default', 'via', '10.1.0.1']);
    await session.ip(ns.sgw0, ['route', 'add', '10.1.0.0/16', 'via', '198.18.1.1']);
    await session.ip(ns.sgw1, ['route', 'add', '10.0.0.0/16', 'via', '198.18.0.1']);
  }, 180_000);

  afterAll(async () => {
    await session.close();
  });

  it('hole 1: 2,972 UDP bytes h0 → h1 in kernel fragments arrive; between the SGWs only SKIP, split to fit before sealing', async () => {
    const daemon = (node: 'sgw0' | 'sgw1'): ManagedProcess =>
      session.spawn(
        ns[node],
        node,
        process.execPath,
        [
          join(ROOT, 'bin/mipsec.js'),
          'sgw',
          '--config',
          fx.file(`${node}.yaml`),
          '--status-socket',
          fx.file(`${node}.sock`),
        ],
        { cwd: ROOT },
      );
    const daemons = [daemon('sgw0'), daemon('sgw1')];
    for (const d of daemons)
      await until(`${d.label} to start: ${d.recentOutput()}`, () => d.recentOutput().includes('"event":"started"'));
    const fields = ['ip.src', 'ip.dst', 'ip.proto', 'ip.flags.mf', 'ip.len', 'udp.dstport'].flatMap((f) => ['-e', f]);
    const capture = session.spawn(ns.sgw1, 'tshark', 'tshark', [
      '-i',
      'outside',
      '-l',
      '-n',
      '-f',
      'ip',
      '-T',
      'fields',
      ...fields,
    ]);
    await until('tshark to capture', () => capture.recentOutput().includes('Capturing on'));
    const receiver = session.spawn(ns.h1, 'receiver', PYTHON, ['-c', listen]);
    await sleep(300);
    await session.exec(ns.h0, PYTHON, ['-c', send]);
    await receiver.exited;
    await sleep(300);
    await capture.stop();

    // The first may be spent on certificate discovery; the others arrive whole.
    const got = receiver.recentOutput().trim().split('\n').filter(Boolean);
    expect(got.length, receiver.recentOutput()).toBeGreaterThanOrEqual(2);
    for (const line of got) expect(line).toBe('2972 10.0.0.10');
    const frames = capture
      .recentOutput()
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f.length === 6);
    const across = frames.filter(([src, dst]) => src === '198.18.0.1' && dst === '198.18.1.1');
    // SKIP, or the gateways' own certificate discovery (UDP 1640); the host's datagram never in clear.
    const clear = across.filter(([, , proto, , , port]) => proto !== '57' && !(proto === '17' && port === '1640'));
    expect(clear, JSON.stringify(frames)).toEqual([]);
    // Sealed whole: the split happens inside, so (past the first datagram, which keying may take through JS) no
    // SKIP packet is itself a fragment.
    const sealedFragments = across.filter(([, , proto, mf]) => proto === '57' && (mf === '1' || mf === 'True'));
    expect(sealedFragments.length, JSON.stringify(frames)).toBeLessThanOrEqual(3);
    expect(across.filter(([, , proto]) => proto === '57').length).toBeGreaterThanOrEqual(8);
    expect(across.every(([, , , , len]) => Number(len) <= 1500)).toBe(true);
    expect(
      frames.filter(([src]) => src === '10.0.0.10'),
      'h0 in clear on the Internet link',
    ).toEqual([]);

    const args = [join(ROOT, 'bin/mipsec.js'), 'status', '--json', '--socket', fx.file('sgw0.sock')];
    const { stdout } = await runCommand(process.execPath, args);
    const io = (JSON.parse(stdout) as { counters: { io: Record<string, number> } }).counters.io;
    // Each of the later datagrams' two 1,500-byte fragments was split on the fast path.
    expect(io.txSplit, JSON.stringify(io)).toBeGreaterThanOrEqual(4);
    for (const d of daemons) await d.stop();
  }, 120_000);
});
