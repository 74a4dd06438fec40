// A node's I/O loops: one per interface, all on the node's one native engine (issue 11), and what the loop
// does with a DELIVER when told to route it (deliver: 'route'). Two namespaces joined by two veth pairs (root).
process.env.MIPSEC_NATIVE = '1';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Reason, Verdict, VERDICT_COUNTER_BASE, type NativeEngine } from '../../src/engine/index.js';
import { IoLoop, flatIoStats, type IoLoopOptions, type IoStats, type PuntedPacket } from '../../src/engine/io.js';
import { probe } from '../../src/lab/traffic.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeIpipHeader } from '../../src/wire/ipip.js';
import { IpProto, parseIpv4 } from '../../src/wire/ipv4.js';
import { datagram, endSaPair } from '../engine/fixtures.js';
import { loopRegistry } from './harness.js';
import { canRunNetns, inNetns, ip, makePair, type Pair } from './topology.js';

const { engineFor, track, closeAll } = loopRegistry();

const countFds = () => readdirSync('/proc/self/fd').length;
const countThreads = () => readdirSync('/proc/self/task').length;

describe('flatIoStats', () => {
  it('keeps every counter and adds punted_<reason> for each reason punted at least once', () => {
    const stats = {
      rxTun: 3,
      punted: 5,
      fastPath: 7,
      puntReasons: { no_policy: 4, not_ipsec: 1, auth: 0 },
    } as unknown as IoStats;
    expect(flatIoStats(stats)).toEqual({ rxTun: 3, punted: 5, fastPath: 7, punted_no_policy: 4, punted_not_ipsec: 1 });
  });
});

describe.skipIf(!canRunNetns)('one engine, several I/O loops; DELIVER by route (root, test namespaces only)', () => {
  let pair: Pair;
  // A second path between the namespaces: veth 192.168.78.1/24 ↔ .2/24.
  const second = {
    a: { veth: '', outer: '192.168.78.1', tun: '', inner: '10.78.1.1' },
    b: { veth: '', outer: '192.168.78.2', tun: '', inner: '10.78.2.1' },
  };

  beforeAll(() => {
    pair = makePair();
    const tag = pair.a.veth.slice(3);
    second.a.veth = `mwa${tag}`;
    second.b.veth = `mwb${tag}`;
    second.a.tun = `mua${tag}`;
    second.b.tun = `mub${tag}`;
    ip(
      'link',
      'add',
      second.a.veth,
      'netns',
      pair.a.ns,
      'type',
      'veth',
      'peer',
      'name',
      second.b.veth,
      'netns',
      pair.b.ns,
    );
    for (const [ns, s] of [
      [pair.a.ns, second.a],
      [pair.b.ns, second.b],
    ] as const) {
      ip('-n', ns, 'addr', 'add', `${s.outer}/24`, 'dev', s.veth);
      ip('-n', ns, 'link', 'set', s.veth, 'up');
    }
  });
  afterEach(() => closeAll());
  afterAll(() => pair?.remove());

  /** SKIP SAs both ways on each path: path 1 a→b 1 / b→a 2, path 2 a→b 3 / b→a 4 (in: +1000). */
  function keyed() {
    const { a, b } = pair;
    const p1 = {
      ab: endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 1, src: a.outer, dst: b.outer }),
      ba: endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 2, src: b.outer, dst: a.outer }),
    };
    const p2 = {
      ab: endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 3, src: second.a.outer, dst: second.b.outer }),
      ba: endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 4, src: second.b.outer, dst: second.a.outer }),
    };
    return { p1, p2 };
  }

  function loop(
    engine: NativeEngine,
    ns: string,
    tun: string,
    inner: string,
    bindInterface: string | undefined,
    extra: Partial<IoLoopOptions> = {},
  ): IoLoop {
    const l = IoLoop.start({
      engine,
      netns: ns,
      tun: { name: tun, addresses: [`${inner}/16`] },
      raw: true,
      bindInterface,
      onPunt: () => {},
      ...extra,
    });
    track(l);
    return l;
  }

  /** The nice value of each of this process's I/O worker threads (named mipsec-io<n>). */
  const workerNices = () =>
    readdirSync('/proc/self/task').flatMap((tid) => {
      try {
        if (!readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('mipsec-io')) return [];
        // Fields after the command's closing parenthesis: state is field 3, nice field 19.
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
      } catch {
        return []; // a thread that ended meanwhile
      }
    });

  /** Waits (≤ 2 s) until the workers' nice values are `want` (each worker sets its own as it starts). */
  async function niceOfWorkers(want: number[]): Promise<number[]> {
    for (let i = 0; i < 200 && JSON.stringify(workerNices()) !== JSON.stringify(want); i++)
      await new Promise((r) => setTimeout(r, 10));
    return workerNices();
  }

  it('workerNice: every worker sets it on its own thread; without it, a worker has the starting thread’s', async () => {
    const { a } = pair;
    expect(workerNices()).toEqual([]);
    const own = getPriority();
    try {
      // As a daemon does: its control thread raised above the workers, which are given the daemon's base value.
      setPriority(own + 3);
      const l1 = loop(engineFor(), a.ns, a.tun, a.inner, a.veth, { workers: 2, workerNice: own });
      expect(await niceOfWorkers([own, own])).toEqual([own, own]);
      l1.stop();
      expect(l1.stats().niceRefused).toBe(0);
      const l2 = loop(engineFor(), a.ns, a.tun, a.inner, a.veth, { workers: 2 });
      expect(await niceOfWorkers([own + 3, own + 3])).toEqual([own + 3, own + 3]);
      l2.stop();
    } finally {
      setPriority(own);
    }
    expect(() => loop(engineFor(), a.ns, a.tun, a.inner, a.veth, { workerNice: 20 })).toThrow(
      /workerNice must be an integer -20\.\.19/,
    );
  });

  const ping = (ns: string, to: string, count = 3) =>
    inNetns(ns, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', to]);

  it('two loops on one engine, one per interface: both paths carry SKIP at once; stopping one leaves the other running', async () => {
    const { a, b } = pair;
    const { p1, p2 } = keyed();
    // A: one policy table per interface, the same prefix in each: only the loop's tunTable tells them apart.
    const ea = engineFor(
      [p1.ab.out, p1.ba.in, p2.ab.out, p2.ba.in],
      [a.outer, a.inner, second.a.outer, second.a.inner],
      [
        { prefix: '10.0.0.0/8', table: 1, sa: p1.ab.out.id },
        { prefix: '10.0.0.0/8', table: 2, sa: p2.ab.out.id },
      ],
    );
    const eb = engineFor(
      [p1.ba.out, p1.ab.in, p2.ba.out, p2.ab.in],
      [b.outer, b.inner, second.b.outer, second.b.inner],
      [
        { prefix: '10.77.1.0/24', sa: p1.ba.out.id },
        { prefix: '10.78.1.0/24', sa: p2.ba.out.id },
      ],
    );
    const threads = countThreads();
    const fds = countFds();
    const la1 = loop(ea, a.ns, a.tun, a.inner, a.veth, { tunTable: 1 });
    const la2 = loop(ea, a.ns, second.a.tun, second.a.inner, second.a.veth, { workers: 2, tunTable: 2 });
    const lb1 = loop(eb, b.ns, b.tun, b.inner, b.veth);
    const lb2 = loop(eb, b.ns, second.b.tun, second.b.inner, second.b.veth, { workers: 2 });

    // Loops of one engine in one namespace must each take their own interface; no two may name one TUN.
    expect(() => loop(eb, b.ns, 'mipsec-x9', '10.79.2.1', undefined)).toThrow(
      /another I\/O loop of this engine already reads interface .*\(bindInterface\)/,
    );
    expect(() => loop(eb, b.ns, 'mipsec-x9', '10.79.2.1', b.veth)).toThrow(
      /another I\/O loop of this engine already reads interface/,
    );
    expect(() => loop(engineFor(), b.ns, b.tun, '10.79.2.1', undefined)).toThrow(/another running I\/O loop uses TUN/);

    const [r1, r2] = await Promise.all([ping(a.ns, b.inner, 5), ping(a.ns, second.b.inner, 5)]);
    expect(r1.stdout, r1.stderr).toMatch(/5 packets transmitted, 5 received/);
    expect(r2.stdout, r2.stderr).toMatch(/5 packets transmitted, 5 received/);
    for (const [l, foreign] of [
      [lb1, 5],
      [lb2, 5],
      [la1, 5],
      [la2, 5],
    ] as const) {
      // The other path's last reply reaches this loop's raw socket on its own thread, maybe after ping returned.
      await vi.waitFor(() => expect(l.stats().rxSkip, JSON.stringify(l.stats())).toBe(5 + foreign), { timeout: 2000 });
      const s = l.stats();
      // Each loop's raw receivers see both paths' SKIP; each takes its own interface's only.
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
    expect(
      la2.inject([{ packet: datagram(100, { src: second.a.inner, dst: second.b.inner, seed: 7 }), via: 'outbound' }]),
    ).toBe(1);
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

  it("deliver 'route': what an SA opened goes into the TUN for the kernel to forward, and is answered", async () => {
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
    // 3 requests into the TUN (the kernel's routes carry them on: here to its own b.inner), 3 sealed replies out to a.
    expect(s).toMatchObject({ rxSkip: 3, txTun: 3, txRaw: 3, fastPath: 6, punted: 0, txErrors: 0, txTooBig: 0 });
    expect(eb.saStats(p1.ab.in.id)!.packets).toBe(3n);
  });

  it("deliver 'route': a DELIVER whose TTL runs out here is punted ttl_exceeded with its SA, never handed to the kernel", async () => {
    const { a, b } = pair;
    const { p1 } = keyed();
    const ea = engineFor([p1.ab.out, p1.ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: p1.ab.out.id }]);
    const eb = engineFor([p1.ba.out, p1.ab.in], [b.outer], [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }]);
    const punts: PuntedPacket[] = [];
    loop(ea, a.ns, a.tun, a.inner, undefined);
    const lb = loop(eb, b.ns, b.tun, b.inner, undefined, { deliver: 'route', onPunt: (p) => punts.push(...p) });
    const r = await inNetns(a.ns, 'ping', ['-c', '1', '-W', '1', '-t', '1', b.inner]);
    expect(r.stdout).toMatch(/1 packets transmitted, 0 received/);
    expect(punts.map((p) => ({ reason: p.reason, sa: p.sa, ttl: p.packet[8] }))).toEqual([
      { reason: 'ttl_exceeded', sa: p1.ab.in.id, ttl: 1 },
    ]);
    expect(lb.stats()).toMatchObject({ txTun: 0, fastPath: 0, punted: 1 });
    expect(lb.stats().puntReasons.ttl_exceeded).toBe(1);
  });

  it("deliver 'route': IPv4 fragments read from the TUN meet their datagram's policy; for INBOUND they are punted (fragment, SA 0) to be reassembled", async () => {
    const { b } = pair;
    const eb = engineFor(
      [],
      [b.outer],
      [
        { prefix: '10.77.1.0/25', action: 'drop', sa: 0 },
        { prefix: '10.77.1.128/25', action: 'inbound', sa: 0 },
      ],
    );
    const punts: PuntedPacket[] = [];
    const lb = loop(eb, b.ns, b.tun, b.inner, undefined, { deliver: 'route', onPunt: (p) => punts.push(...p) });
    // 2000 bytes of ICMP through a TUN of MTU 1300: the kernel sends it in two fragments. The policy's drop, on the
    // fast path (a bypass would go round: the kernel routes 10.77.1.0/24 into this TUN):
    await inNetns(b.ns, 'ping', ['-c', '1', '-W', '1', '-s', '2000', '10.77.1.9']);
    expect(punts).toEqual([]);
    expect(lb.stats()).toMatchObject({ rxTun: 2, punted: 0, fastPath: 2 });
    expect(eb.counters()[Reason.policy_drop]).toBe(2n);
    // Under an `inbound` policy (INBOUND opens no fragment): to the role, MF first, then the last.
    await inNetns(b.ns, 'ping', ['-c', '1', '-W', '1', '-s', '2000', '10.77.1.200']);
    expect(punts.map((p) => ({ reason: p.reason, sa: p.sa, from: p.from }))).toEqual([
      { reason: 'fragment', sa: 0, from: 'tun' },
      { reason: 'fragment', sa: 0, from: 'tun' },
    ]);
    expect(punts.map((p) => ((p.packet[6] << 8) | p.packet[7]) & 0x3fff).map((f) => f > 0x1fff)).toEqual([true, false]); // MF, then the last
    expect(lb.stats()).toMatchObject({ rxTun: 4, punted: 2, fastPath: 2 });
    expect(lb.stats().puntReasons.fragment).toBe(2);
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

  it("deliver 'route' with kernelTunnel: the home agent's tunnel to an engine address is peeled for the kernel-owned address; any other tunnel is punted deliver_local", async () => {
    const { a, b } = pair;
    const { p1 } = keyed();
    // b's engine owns b.outer and the tunnel end 10.77.2.200 (a care-of address); the kernel owns b.inner (the TUN's).
    const tunnelEnd = '10.77.2.200';
    const homeAgent = '10.77.1.50';
    const ea = engineFor([p1.ab.out, p1.ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: p1.ab.out.id }]);
    const eb = engineFor([p1.ba.out, p1.ab.in], [b.outer, tunnelEnd], [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }]);
    const punts: PuntedPacket[] = [];
    const la = loop(ea, a.ns, a.tun, a.inner, undefined);
    const lb = loop(eb, b.ns, b.tun, b.inner, undefined, {
      deliver: 'route',
      kernelTunnel: { from: homeAgent, to: b.inner },
      onPunt: (p) => punts.push(...p),
    });
    /** A UDP probe from a.inner to `to` (no listener: the kernel answers ICMP port unreachable) in IP-in-IP from `from`. */
    const tunnelled = (from: string, to: string, seq: number) => {
      const inner = probe(a.inner, to, seq);
      const out = new Uint8Array(20 + inner.length);
      out.set(inner, 20);
      const h = parseIpv4(inner, 0);
      if (!h.ok) throw new Error('bad probe');
      writeIpipHeader(out, 0, h.header, ipToU32(from), ipToU32(tunnelEnd));
      return out;
    };
    // Sealed by a's End-End SA (policy 10.77.2.0/24), opened by b's: only the first is the HA's tunnel for b.inner.
    la.inject([
      { packet: tunnelled(homeAgent, b.inner, 1), via: 'outbound' },
      { packet: tunnelled('10.77.1.51', b.inner, 2), via: 'outbound' },
      { packet: tunnelled(homeAgent, '10.77.2.9', 3), via: 'outbound' },
    ]);
    const until = Date.now() + 3000;
    while ((punts.length < 2 || la.stats().txTun < 1) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    // The peeled probe reached b's kernel (written into the TUN), whose ICMP answer came back sealed to a's TUN.
    expect(lb.stats()).toMatchObject({ rxSkip: 3, txTun: 1, punted: 2 });
    expect(la.stats().txTun).toBe(1);
    const answer = la.stats();
    expect(answer.rxSkip).toBe(1);
    // The others stay the control plane's, whole, with the SA that opened them.
    expect(
      punts.map((p) => ({
        reason: p.reason,
        sa: p.sa,
        proto: p.packet[9],
        src: Array.from(p.packet.subarray(12, 16)).join('.'),
      })),
    ).toEqual([
      { reason: 'deliver_local', sa: p1.ab.in.id, proto: 4, src: '10.77.1.51' },
      { reason: 'deliver_local', sa: p1.ab.in.id, proto: 4, src: homeAgent },
    ]);
    expect(() =>
      loop(engineFor(), b.ns, 'mipsec-x8', '10.79.2.1', undefined, { kernelTunnel: { from: homeAgent, to: b.inner } }),
    ).toThrow(/kernelTunnel needs deliver 'route'/);
  });

  it('kernelTunnel.protocol: only an inner datagram of that protocol is peeled for the kernel, the rest punted', async () => {
    const { a, b } = pair;
    const { p1 } = keyed();
    const tunnelEnd = '10.77.2.200';
    const homeAgent = '10.77.1.50';
    for (const [protocol, peeled] of [
      [IpProto.TCP, false],
      [IpProto.UDP, true],
    ] as const) {
      const ea = engineFor([p1.ab.out, p1.ba.in], [a.outer, a.inner], [{ prefix: '10.77.2.0/24', sa: p1.ab.out.id }]);
      const eb = engineFor([p1.ba.out, p1.ab.in], [b.outer, tunnelEnd], [{ prefix: '10.77.1.0/24', sa: p1.ba.out.id }]);
      const punts: PuntedPacket[] = [];
      const la = loop(ea, a.ns, a.tun, a.inner, undefined);
      const lb = loop(eb, b.ns, b.tun, b.inner, undefined, {
        deliver: 'route',
        kernelTunnel: { from: homeAgent, to: b.inner, protocol },
        onPunt: (p) => punts.push(...p),
      });
      const inner = probe(a.inner, b.inner, 1); // UDP
      const out = new Uint8Array(20 + inner.length);
      out.set(inner, 20);
      const h = parseIpv4(inner, 0);
      if (!h.ok) throw new Error('bad probe');
      writeIpipHeader(out, 0, h.header, ipToU32(homeAgent), ipToU32(tunnelEnd));
      la.inject([{ packet: out, via: 'outbound' }]);
      const until = Date.now() + 3000;
      while (punts.length + lb.stats().txTun < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect([protocol, lb.stats().txTun, punts.map((p) => p.reason)]).toEqual([
        protocol,
        peeled ? 1 : 0,
        peeled ? [] : ['deliver_local'],
      ]);
      la.stop();
      lb.stop();
      ea.close();
      eb.close();
    }
    expect(() =>
      loop(engineFor(), b.ns, 'mipsec-x8', '10.79.2.1', undefined, {
        deliver: 'route',
        kernelTunnel: { from: homeAgent, to: b.inner, protocol: 256 },
      }),
    ).toThrow(/kernelTunnel\.protocol must be an IP protocol 1\.\.255/);
  });
});
