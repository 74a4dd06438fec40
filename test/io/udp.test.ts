// The I/O loop's UDP transport (docs/engine.md §9.1) between two namespaces: sealed packets cross the veth whole
// inside UDP datagrams, sent in UDP_SEGMENT batches and received as GRO super-datagrams (as root; CI is root).
process.env.MIPSEC_NATIVE = '1';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NativeEngine, Reason, Verdict, VERDICT_COUNTER_BASE } from '../../src/engine/index.js';
import { IoLoop, type PuntedPacket } from '../../src/engine/io.js';
import { endSaPair } from '../engine/fixtures.js';
import { processTicks } from '../../src/bench/e2e/measure.js';
import { loopRegistry } from './harness.js';
import {
  TCP_SINK,
  TCP_SOURCE,
  canRunNetns,
  captureProtocols,
  inNetns,
  ip,
  makePair,
  pythonInNetns,
  type Pair,
  type Side,
} from './topology.js';

const PORT = 4741;
const { engineFor, track, closeAll } = loopRegistry();

function startLoop(engine: NativeEngine, side: Side, workers = 1, pollMicros = 0): IoLoop {
  const loop = IoLoop.start({
    engine,
    netns: side.ns,
    tun: { name: side.tun, addresses: [`${side.inner}/16`] },
    raw: true,
    udpPort: PORT,
    pollMicros,
    workers,
    onPunt: () => {},
  });
  track(loop);
  return loop;
}

/** SKIP-mode SAs both ways between the veth addresses, and an engine on each side. */
function keyedEngines(pair: Pair) {
  const { a, b } = pair;
  const ab = endSaPair({ suite: 'aes128gcm', ah: 'hmac-sha256-128', mode: 'skip', id: 1, src: a.outer, dst: b.outer });
  const ba = endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 2, src: b.outer, dst: a.outer });
  const ea = engineFor([ab.out, ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: ab.out.id }]);
  const eb = engineFor([ba.out, ab.in], [b.outer, b.inner], [{ prefix: '10.77.1.0/24', sa: ba.out.id }]);
  return { ab, ba, ea, eb };
}

describe('IoLoop UDP transport: options', () => {
  it('a bad udpPort names the field and the range', () => {
    const engine = engineFor();
    for (const udpPort of [0, 70000, 1.5, Number.NaN]) {
      expect(() => IoLoop.start({ engine, tun: { name: 't' }, raw: true, udpPort, onPunt: () => {} })).toThrow(
        /udpPort must be a UDP port 1..65535/,
      );
    }
    for (const pollMicros of [-1, 100_001, 0.5]) {
      expect(() => IoLoop.start({ engine, tun: { name: 't' }, raw: true, pollMicros, onPunt: () => {} })).toThrow(
        /pollMicros must be an integer 0..100000/,
      );
    }
  });
});

describe.skipIf(!canRunNetns)('IoLoop UDP transport in two namespaces (root)', () => {
  let pair: Pair;

  beforeAll(() => {
    pair = makePair();
  });
  afterEach(() => closeAll());
  afterAll(() => {
    pair?.remove();
  });

  for (const workers of [1, 2]) {
    it(`${workers} worker(s): a TCP stream arrives intact; the veth carries only UDP; sends are segmented batches, receives GRO`, async () => {
      const { a, b } = pair;
      const { ab, ea, eb } = keyedEngines(pair);
      const la = startLoop(ea, a, workers);
      const lb = startLoop(eb, b, workers);
      const capture = captureProtocols(b.ns, b.veth, 4);
      await capture.ready;
      const sink = pythonInNetns(b.ns, TCP_SINK, [b.inner, '5001']);
      await sink.ready;
      const source = pythonInNetns(a.ns, TCP_SOURCE, [b.inner, '5001', '16']);
      const [sent, received] = await Promise.all([source.done, sink.done]);
      expect(received).toEqual(sent);
      expect(sent.bytes).toBe(16 << 20);
      const seen = await capture.done;
      expect(Object.keys(seen), `only UDP on the veth: ${JSON.stringify(seen)}`).toEqual(['17']);

      const sa = la.stats();
      const sb = lb.stats();
      // The workers' CPU time: some, less than the wall time of the run per worker, and kept after stop().
      expect(sa.cpuMicros).toBeGreaterThan(1000);
      la.stop();
      expect(la.stats().cpuMicros).toBeGreaterThanOrEqual(sa.cpuMicros);
      expect(sa.txRaw + sb.txRaw, 'nothing left by the raw socket').toBe(0);
      expect(sa.rxRaw + sb.rxRaw).toBe(0);
      // 16 MiB in ~1.2 kB segments: over 13,000 sealed packets A → B, sent mostly as UDP_SEGMENT batches.
      expect(sa.txUdp).toBeGreaterThan(13_000);
      expect(sa.txUdpGso).toBeGreaterThan(0);
      expect(sa.txUdpGso).toBeLessThan(sa.txUdp / 2);
      expect(sb.rxUdp).toBe(Number(eb.saStats(ab.in.id)!.packets));
      expect(sb.rxUdpGro, 'B read several packets per datagram').toBeGreaterThan(0);
      for (const [s, e] of [
        [sa, ea],
        [sb, eb],
      ] as const) {
        expect(s.rxErrors + s.txErrors + s.txTooBig).toBe(0);
        expect(e.counters()[Reason.auth] + e.counters()[Reason.replay] + e.counters()[Reason.truncated]).toBe(0n);
        expect(e.counters()[VERDICT_COUNTER_BASE + Verdict.DROP], 'no drops at all').toBe(0n);
      }
    });
  }

  it('pollMicros: workers poll for the window after traffic, then sleep (their CPU time stops growing)', async () => {
    const { a, b } = pair;
    const { ea, eb } = keyedEngines(pair);
    startLoop(ea, a, 1, 20_000);
    startLoop(eb, b, 1, 20_000);
    /** CPU ticks of this process's I/O worker threads. */
    const workerTicks = (): number =>
      readdirSync('/proc/self/task')
        .map((tid) => {
          try {
            return readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
          } catch {
            return ''; // the thread ended meanwhile
          }
        })
        .filter((stat) => stat.includes('(mipsec-io'))
        .reduce((sum, stat) => sum + processTicks(stat), 0);
    const before = workerTicks();
    const ping = await inNetns(a.ns, 'ping', ['-c', '5', '-i', '0.1', '-W', '1', b.inner]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const busy = workerTicks() - before;
    // 2 workers × 10 packets, each followed by a 20 ms window: about 40 ticks of 10 ms; at least a few.
    expect(busy).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 100));
    const idleStart = workerTicks();
    await new Promise((r) => setTimeout(r, 600));
    expect(workerTicks() - idleStart, 'idle workers sleep').toBeLessThanOrEqual(2);
  });

  it('a sealed packet too big for the link: counted, and the DF sender learns the MTU that fits with the 28 UDP bytes', async () => {
    const { a, b } = pair;
    const { ab, ea, eb } = keyedEngines(pair);
    const la = startLoop(ea, a);
    startLoop(eb, b);
    ip('-n', a.ns, 'link', 'set', a.veth, 'mtu', '1400');
    try {
      const tooBig = await inNetns(a.ns, 'ping', ['-c', '1', '-W', '1', '-s', String(1300 - 28), '-M', 'do', b.inner]);
      expect(tooBig.code).not.toBe(0);
      const sealedOverhead = 20 + ab.out.skipHeader!.length + 28 + 8 + 8 + 2 + 16 + 2; // IP, SKIP, AH, ESP hdr+IV, pad 2, trailer, tag
      const fits = 1400 - 28 - sealedOverhead;
      expect(tooBig.stdout).toContain(`Frag needed and DF set (mtu = ${fits})`);
      expect(la.stats()).toMatchObject({ txTooBig: 1, txFragNeeded: 1 });
      const ok = await inNetns(a.ns, 'ping', ['-c', '1', '-W', '1', '-s', String(fits - 28), '-M', 'do', b.inner]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    } finally {
      ip('-n', a.ns, 'link', 'set', a.veth, 'mtu', '1500');
    }
  });

  it('plain IP-in-IP, by the raw socket or the UDP transport, never reaches the TUN: punted as not_ipsec and counted', async () => {
    const { a, b } = pair;
    const { ea, eb } = keyedEngines(pair);
    startLoop(ea, a);
    const punts: PuntedPacket[] = [];
    const lb = IoLoop.start({
      engine: eb,
      netns: b.ns,
      tun: { name: b.tun, addresses: [`${b.inner}/16`] },
      raw: true,
      udpPort: PORT,
      onPunt: (p) => punts.push(...p),
    });
    track(lb);
    const listener = pythonInNetns(
      b.ns,
      [
        'import json, socket, sys',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 4343)); s.settimeout(1.5)',
        "print('ready', flush=True)",
        'got = []',
        'try:',
        '    while True: got.append(s.recv(2048).hex())',
        'except socket.timeout: pass',
        "print(json.dumps({'got': got}), flush=True)",
      ].join('\n'),
      [b.inner],
    );
    await listener.ready;
    // An inner IPv4/UDP datagram a.inner → b.inner:4343, once inside IP-in-IP from the kernel (raw socket,
    // protocol 4) and once as a whole IPv4 protocol-4 packet in a datagram to the transport's port.
    const sender = pythonInNetns(
      a.ns,
      [
        'import socket, struct, sys',
        'def csum(b):',
        '    s = sum(struct.unpack("!10H", b)); s = (s & 0xffff) + (s >> 16); return (~((s & 0xffff) + (s >> 16))) & 0xffff',
        'def ip(proto, src, dst, payload):',
        '    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))',
        '    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload',
        "inner = ip(17, sys.argv[1], sys.argv[2], struct.pack('!HHHH', 4000, 4343, 12, 0) + b'hiya')",
        'r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4); r.sendto(inner, (sys.argv[3], 0))',
        'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(ip(4, sys.argv[4], sys.argv[3], inner), (sys.argv[3], int(sys.argv[5])))',
        "print('ready', flush=True)",
        "print('{}', flush=True)",
      ].join('\n'),
      [a.inner, b.inner, b.outer, a.outer, String(PORT)],
    );
    await sender.done;
    const { got } = (await listener.done) as { got: string[] };
    expect(got, 'nothing unauthenticated reached the socket behind the TUN').toEqual([]);
    const s = lb.stats();
    expect(s).toMatchObject({ rxUnauthenticated: 2, rxIpip: 1, rxUdp: 1 });
    expect(punts.map((p) => [p.reason, p.from, p.sa, Array.from(p.packet.subarray(16, 20)).join('.')])).toEqual([
      ['not_ipsec', 'raw', 0, b.inner],
      ['not_ipsec', 'raw', 0, b.inner],
    ]);
  });

  it('hostile datagrams on the port (empty, garbage, misaddressed, a 60 KB blob, a forged SKIP packet) are dropped and counted; traffic goes on', async () => {
    const { a, b } = pair;
    const { ea, eb } = keyedEngines(pair);
    startLoop(ea, a);
    const lb = startLoop(eb, b);
    const flood = [
      'import socket, sys, os',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      "print('ready', flush=True)",
      'to = (sys.argv[1], int(sys.argv[2]))',
      'def hdr(proto, dst): return bytes([0x45, 0, 0, 120, 0, 0, 0x40, 0, 64, proto, 0, 0]) + socket.inet_aton(sys.argv[3]) + socket.inet_aton(dst)',
      // Too short to carry a destination: the engine drops them as truncated.
      "s.sendto(b'', to)",
      'for n in (1, 19): s.sendto(os.urandom(n), to)',
      // Random bytes (their "destination" is not B's address), and well-formed packets addressed past B:
      // dropped before the engine as misaddressed.
      'for n in (20, 64, 1400, 3000): s.sendto(b"\\x45" + os.urandom(15) + b"\\0\\0\\0\\0" + os.urandom(n - 20), to)',
      's.sendto(hdr(4, sys.argv[4]) + os.urandom(100), to)',
      "s.sendto(hdr(57, '198.51.100.9') + os.urandom(100), to)",
      // Addressed to B: a 60 KB blob (over a slot: truncated) and a SKIP header of noise (the engine's to judge).
      's.sendto(hdr(57, sys.argv[1]) + os.urandom(60000), to)',
      's.sendto(hdr(57, sys.argv[1]) + os.urandom(100), to)',
      "print('{}', flush=True)",
    ].join('\n');
    const sender = pythonInNetns(a.ns, flood, [b.outer, String(PORT), a.outer, b.inner]);
    await sender.done;
    await new Promise((r) => setTimeout(r, 200));
    const s = lb.stats();
    expect(s.rxUdp).toBe(11);
    expect(s.rxUdpMisaddressed).toBe(6);
    // The other five reached the engine and were dropped by reason; none was delivered, forwarded or punted.
    expect(eb.counters()[VERDICT_COUNTER_BASE + Verdict.DROP]).toBe(5n);
    expect(
      eb.counters()[VERDICT_COUNTER_BASE + Verdict.DELIVER] + eb.counters()[VERDICT_COUNTER_BASE + Verdict.FORWARD],
    ).toBe(0n);
    expect(eb.counters()[VERDICT_COUNTER_BASE + Verdict.PUNT]).toBe(0n);
    expect(s.rxTooBig, 'the 60 KB blob is over a slot').toBe(1);
    const ping = await inNetns(a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', b.inner]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
  });
});
