// The I/O loop's side of issue 10 hole 13 and issue 11 item 5, in two test namespaces (root only). The loop is
// native only (the TS engine has no I/O loop), so these run on the native engine.
process.env.MIPSEC_NATIVE = '1';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Batch, Op, Reason, type NativeEngine } from '../../src/engine/index.js';
import { IoLoop, type PuntedPacket } from '../../src/engine/io.js';
import { endSaPair } from '../engine/fixtures.js';
import { loopRegistry } from '../io/harness.js';
import { canRunNetns, inNetns, ip, makePair, type Pair, type Side } from '../io/topology.js';

const { engineFor, track, closeAll } = loopRegistry();

interface LoopOptions {
  bindInterface?: string;
  onPunt?: (p: PuntedPacket[]) => void;
}

function startLoop(engine: NativeEngine, side: Side, { bindInterface, onPunt = () => {} }: LoopOptions = {}): IoLoop {
  const tun = { name: side.tun, addresses: [`${side.inner}/16`] };
  const loop = IoLoop.start({ engine, netns: side.ns, tun, raw: true, bindInterface, onPunt });
  track(loop);
  return loop;
}

describe.skipIf(!canRunNetns)('I/O loop: arrival interface and path MTU (root, test namespaces only)', () => {
  let pair: Pair;
  beforeAll(() => {
    pair = makePair();
    ip('-n', pair.b.ns, 'link', 'add', 'unnamed0', 'type', 'veth', 'peer', 'name', 'unnamed1'); // an interface no loop is bound to
  });
  afterEach(() => closeAll());
  afterAll(() => pair?.remove());

  const keyed = () => {
    const ab = endSaPair({
      suite: 'aes128gcm',
      ah: 'hmac-sha256-128',
      mode: 'skip',
      id: 1,
      src: pair.a.outer,
      dst: pair.b.outer,
    });
    const ba = endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 2, src: pair.b.outer, dst: pair.a.outer });
    const ea = engineFor([ab.out, ba.in], [pair.a.outer, pair.a.inner], [{ prefix: '10.77.2.0/24', sa: ab.out.id }]);
    const eb = engineFor([ba.out, ab.in], [pair.b.outer, pair.b.inner], [{ prefix: '10.77.1.0/24', sa: ba.out.id }]);
    return { ea, eb, ab };
  };

  it('hole 13: SKIP arriving on an interface the loop is not bound to never reaches the engine, and is counted', async () => {
    const { a, b } = pair;
    const { ea, eb, ab } = keyed();
    startLoop(ea, a);
    const lb = startLoop(eb, b, { bindInterface: 'unnamed0' });
    const ping = await inNetns(a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', b.inner]);
    expect(ping.stdout).toMatch(/2 packets transmitted, 0 received/);
    expect(lb.stats()).toMatchObject({ rxSkip: 2, rxForeignInterface: 2, txTun: 0 });
    expect(eb.saStats(ab.in.id)!.packets).toBe(0n);
  });

  it('hole 13: the same SKIP arriving on the interface the loop is bound to is taken', async () => {
    const { a, b } = pair;
    const { ea, eb } = keyed();
    startLoop(ea, a);
    const lb = startLoop(eb, b, { bindInterface: b.veth });
    const ping = await inNetns(a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', b.inner]);
    expect(ping.stdout, ping.stderr).toMatch(/2 packets transmitted, 2 received/);
    expect(lb.stats()).toMatchObject({ rxForeignInterface: 0 });
  });

  it("path MTU: injected via 'raw', too big for the link: txTooBig, and ICMP 3/4 with the MTU that fits to the DF sender", async () => {
    const { a, b } = pair;
    const { ea, eb, ab } = keyed();
    ea.setPolicies([]); // every datagram is punted, sealed here and re-injected, as the daemons do
    let la: IoLoop | undefined;
    la = startLoop(ea, a, {
      onPunt: (packets) => {
        const batch = new Batch({ capacity: packets.length });
        for (const p of packets) batch.push(Op.ENCAP, p.packet, ab.out.id);
        ea.process(batch);
        la!.inject(packets.map((p, i) => ({ packet: batch.result(i).packet, via: 'raw' as const, carries: p.packet })));
      },
    });
    startLoop(eb, b);
    ip('-n', a.ns, 'link', 'set', a.veth, 'mtu', '1400');
    try {
      const tooBig = await inNetns(a.ns, 'ping', ['-c', '1', '-W', '1', '-s', String(1300 - 28), '-M', 'do', b.inner]);
      const sealedOverhead = 20 + ab.out.skipHeader!.length + 28 + 8 + 8 + 2 + 16 + 2; // IP, SKIP, AH, ESP hdr+IV, pad 2, trailer, tag
      const fits = 1400 - sealedOverhead;
      expect(tooBig.stdout).toContain(`Frag needed and DF set (mtu = ${fits})`);
      expect(la.stats()).toMatchObject({ txTooBig: 1, txFragNeeded: 1, txErrors: 0 });
      const ok = await inNetns(a.ns, 'ping', ['-c', '1', '-W', '1', '-s', String(fits - 28), '-M', 'do', b.inner]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ea.counters()[Reason.no_policy]).toBe(2n);
    } finally {
      ip('-n', a.ns, 'link', 'set', a.veth, 'mtu', '1500');
    }
  });
});
