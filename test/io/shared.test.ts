// A node's I/O loops: one per interface, all on the node's one native engine (issue 11), and what the loop
// does with a DELIVER when told to route it (deliver: 'route'). Two namespaces joined by two veth pairs (root).
process.env.MIPSEC_NATIVE = '1';
import { readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Reason, Verdict, VERDICT_COUNTER_BASE, type NativeEngine } from '../../src/engine/index.js';
import { IoLoop, flatIoStats, type IoLoopOptions, type IoStats, type PuntedPacket } from '../../src/engine/io.js';
import { datagram, endSaPair } from '../engine/fixtures.js';
import { loopRegistry } from './harness.js';
import { canRunNetns, inNetns, ip, makePair, type Pair } from './topology.js';

const { engineFor, track, closeAll } = loopRegistry();

const countFds = () => readdirSync('/proc/self/fd').length;
const countThreads = () => readdirSync('/proc/self/task').length;

describe('flatIoStats', () => {
  it('keeps every counter and adds punted_<reason> for each reason punted at least once', () => {
    const stats = { rxTun: 3, punted: 5, fastPath: 7, puntReasons: { no_policy: 4, not_ipsec: 1, auth: 0 } } as unknown as IoStats;
    expect(flatIoStats(stats)).toEqual({ rxTun: 3, punted: 5, fastPath: 7, punted_no_policy: 4, punted_not_ipsec: 1 });
  });
});

describe.skipIf(!canRunNetns)('one engine, several I/O loops; DELIVER by route (root, test namespaces only)', () => {
  let pair: Pair;
  // A second path between the namespaces: veth 192.168.78.1/24 ↔ .2/24.
  const second = { a: { veth: '', outer: '192.168.78.1', tun: '', inner: '10.78.1.1' }, b: { veth: '', outer: '192.168.78.2', tun: '', inner: '10.78.2.1' } };

  beforeAll(() => {
    pair = makePair();
    const tag = pair.a.veth.slice(3);
    second.a.veth = `mwa${tag}`;
    second.b.veth = `mwb${tag}`;
    second.a.tun = `mua${tag}`;
    second.b.tun = `mub${tag}`;
    ip('link', 'add', second.a.veth, 'netns', pair.a.ns, 'type', 'veth', 'peer', 'name', second.b.veth, 'netns', pair.b.ns);
    for (const [ns, s] of [[pair.a.ns, second.a], [pair.b.ns, second.b]] as const) {
      ip('-n', ns, 'addr', 'add', `${s.outer}/24`, 'dev', s.veth);
      ip('-n', ns, 'link', 'set', s.veth, 'up');
    }
  });
  afterEach(() => closeAll());
  afterAll(() => pair?.remove());

  /** SKIP SAs both ways on each path: path 1 a→b 1 / b→a 2, path 2 a→b 3 / b→a 4 (in: +1000). */
  function keyed() {
    const { a, b } = pair;
    const p1 = { ab: endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 1, src: a.outer, dst: b.outer }), ba: endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 2, src: b.outer, dst: a.outer }) };
    const p2 = { ab: endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 3, src: second.a.outer, dst: second.b.outer }), ba: endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 4, src: second.b.outer, dst: second.a.outer }) };
    return { p1, p2 };
  }

  function loop(engine: NativeEngine, ns: string, tun: string, inner: string, bindInterface: string | undefined, extra: Partial<IoLoopOptions> = {}): IoLoop {
    const l = IoLoop.start({ engine, netns: ns, tun: { name: tun, addresses: [`${inner}/16`] }, raw: true, bindInterface, onPunt: () => {}, ...extra });
    track(l);
    return l;
  }

  const ping = (ns: string, to: string, count = 3) => inNetns(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', to]);

  it('two loops on one engine, one per interface: both paths carry SKIP at once; stopping one leaves the other running', async () => {
    const { a, b } = pair;
    const { p1, p2 } = keyed();
    // A: one policy table per interface, the same prefix in each: only the loop's tunTable tells them apart.
    const ea = engineFor([p1.ab.out, p1.ba.in, p2.ab.out, p2.ba.in], [a.outer, a.inner, second.a.outer, second.a.inner],
      [{ prefix: '10.0.0.0/8', table: 1, sa: p1.ab.out.id }, { prefix: '10.0.0.0/8', table: 2, sa: p2.ab.out.id }]);
    const eb = engineFor([p1.ba.out, p1.ab.in, p2.ba.out, p2.ab.in], [b.outer, b.inner, second.b.outer, second.b.inner],
      [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }, { prefix: '10.78.1.0/24', sa: p2.ba.out.id }]);
    const threads = countThreads();
    const fds = countFds();
    const la1 = loop(ea, a.ns, a.tun, a.inner, a.veth, { tunTable: 1 });
    const la2 = loop(ea, a.ns, second.a.tun, second.a.inner, second.a.veth, { workers: 2, tunTable: 2 });
    const lb1 = loop(eb, b.ns, b.tun, b.inner, b.veth);
    const lb2 = loop(eb, b.ns, second.b.tun, second.b.inner, second.b.veth, { workers: 2 });

    // Loops of one engine in one namespace must each take their own interface; no two may name one TUN.
    expect(() => loop(eb, b.ns, 'mipsec-x9', '10.79.2.1', undefined)).toThrow(/another I\/O loop of this engine already reads interface .*\(bindInterface\)/);
    expect(() => loop(eb, b.ns, 'mipsec-x9', '10.79.2.1', b.veth)).toThrow(/another I\/O loop of this engine already reads interface/);
    expect(() => loop(engineFor(), b.ns, b.tun, '10.79.2.1', undefined)).toThrow(/another running I\/O loop uses TUN/);

    const [r1, r2] = await Promise.all([ping(a.ns, b.inner, 5), ping(a.ns, second.b.inner, 5)]);
    expect(r1.stdout, r1.stderr).toMatch(/5 packets transmitted, 5 received/);
    expect(r2.stdout, r2.stderr).toMatch(/5 packets transmitted, 5 received/);
    for (const [l, foreign] of [[lb1, 5], [lb2, 5], [la1, 5], [la2, 5]] as const) {
      const s = l.stats();
      // Each loop's raw receivers see both paths' SKIP; each takes its own interface's only.
      expect(s.rxSkip, JSON.stringify(s)).toBe(5 + foreign);
      expect(s.rxForeignInterface).toBe(foreign);
      expect(s.txTun).toBe(5);
      expect(s.fastPath).toBe(10); // 5 DELIVER + 5 FORWARD
      expect(s.punted).toBe(0);
    }
    // The engine's counters are one: both loops' verdicts.
    expect(eb.counters()[VERDICT_COUNTER_BASE + Verdict.DELIVER]).toBe(10n);
    expect(eb.counters()[VERDICT_COUNTER_BASE + Verdict.FORWARD]).toBe(10n);
    expect(ea.saStats(p1.ab.out.id)!.packets).toBe(5n);
    expect(ea.saStats(p2.ab.out.id)!.packets).toBe(5n);
    // An injected datagram 'outbound' runs OUTBOUND on the loop's table too: table 2 seals it for path 2.
    expect(la2.inject([{ packet: datagram(100, { src: second.a.inner, dst: second.b.inner, seed: 7 }), via: 'outbound' }])).toBe(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(ea.saStats(p2.ab.out.id)!.packets).toBe(6n);
    expect(lb2.stats().txTun).toBe(6);
    expect(ea.counters()[Reason.no_policy]).toBe(0n);

    lb2.stop();
    la2.stop();
    const [again, gone] = await Promise.all([ping(a.ns, b.inner, 2), ping(a.ns, second.b.inner, 1)]);
    expect(again.stdout, again.stderr).toMatch(/2 packets transmitted, 2 received/);
    expect(gone.code).not.toBe(0); // its TUN (and so the route) went with the loop
    expect(gone.stdout + gone.stderr).toMatch(/Network is unreachable/);
    // A stopped loop's claim is released: a new loop takes its interface (and TUN) on the same engine.
    const lb3 = loop(eb, b.ns, second.b.tun, second.b.inner, second.b.veth);
    const la3 = loop(ea, a.ns, second.a.tun, second.a.inner, second.a.veth, { tunTable: 2 });
    const back = await ping(a.ns, second.b.inner, 2);
    expect(back.stdout, back.stderr).toMatch(/2 packets transmitted, 2 received/);
    expect(lb3.stats().txTun).toBe(2);

    // Closing the engine stops every loop on it, whichever order they were started in.
    eb.close();
    ea.close();
    for (const l of [la1, la2, la3, lb1, lb2, lb3]) expect(l.running).toBe(false);
    await new Promise((r) => setTimeout(r, 50)); // released thread-safe functions finalize
    expect(countThreads()).toBe(threads);
    expect(countFds()).toBe(fds);
  });

  it("deliver 'route': what an SA opened goes to the kernel by route (not into the TUN), and is answered", async () => {
    const { a, b } = pair;
    const { p1 } = keyed();
    const ea = engineFor([p1.ab.out, p1.ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: p1.ab.out.id }]);
    // b.inner is not the engine's: the kernel owns it (the TUN's address), so the datagram is routed to it.
    const eb = engineFor([p1.ba.out, p1.ab.in], [b.outer], [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }]);
    loop(ea, a.ns, a.tun, a.inner, undefined);
    const lb = loop(eb, b.ns, b.tun, b.inner, undefined, { deliver: 'route' });
    const r = await ping(a.ns, b.inner, 3);
    expect(r.stdout, r.stderr).toMatch(/3 packets transmitted, 3 received/);
    const s = lb.stats();
    // 3 requests out of the raw socket to the kernel, 3 sealed replies out to a.
    expect(s).toMatchObject({ rxSkip: 3, txTun: 0, txRaw: 6, fastPath: 6, punted: 0, txErrors: 0, txTooBig: 0 });
    expect(eb.saStats(p1.ab.in.id)!.packets).toBe(3n);
  });

  it("deliver 'route': a DELIVER to one of the engine's own addresses is punted deliver_local with its SA", async () => {
    const { a, b } = pair;
    const { p1 } = keyed();
    const ea = engineFor([p1.ab.out, p1.ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: p1.ab.out.id }]);
    const eb = engineFor([p1.ba.out, p1.ab.in], [b.outer, b.inner], [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }]);
    const punts: PuntedPacket[] = [];
    loop(ea, a.ns, a.tun, a.inner, undefined);
    const lb = loop(eb, b.ns, b.tun, b.inner, undefined, { deliver: 'route', onPunt: (p) => punts.push(...p) });
    const r = await ping(a.ns, b.inner, 2);
    expect(r.stdout).toMatch(/2 packets transmitted, 0 received/);
    expect(punts.map((p) => ({ reason: p.reason, sa: p.sa, from: p.from }))).toEqual([
      { reason: 'deliver_local', sa: p1.ab.in.id, from: 'raw' },
      { reason: 'deliver_local', sa: p1.ab.in.id, from: 'raw' },
    ]);
    expect(punts[0].packet[9]).toBe(1); // the opened ICMP echo request
    expect(Array.from(punts[0].packet.subarray(16, 20)).join('.')).toBe(b.inner);
    const s = lb.stats();
    expect(s).toMatchObject({ txRaw: 0, txTun: 0, fastPath: 0, punted: 2 });
    expect(s.puntReasons.deliver_local).toBe(2);
    expect(flatIoStats(s)).toMatchObject({ punted: 2, punted_deliver_local: 2 });
    expect(eb.counters()[Reason.no_policy]).toBe(0n);
  });
});
