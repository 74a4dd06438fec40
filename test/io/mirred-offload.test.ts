// TUN offload on a TUN fed by tc mirred redirect, as the daemons feed theirs (src/net/linux/attached.ts): a veth's
// ingress is redirected (u32 match-all + mirred egress redirect) into a loop's TUN opened with offload. A TCP stream
// from the other namespace arrives as the sender's TSO super-packets, which veth hands over unsegmented; the TUN
// (IFF_VNET_HDR, TSO4) passes them to the loop whole with their virtio_net_hdr, and the loop splits them into MSS
// segments before OUTBOUND. A bypass policy FORWARDs every segment to its destination (this namespace's own veth
// address, so the kernel's TCP takes it): the stream completes only if every segment was split right.
process.env.MIPSEC_NATIVE = '1';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Reason, Verdict, VERDICT_COUNTER_BASE } from '../../src/engine/index.js';
import { IoLoop } from '../../src/engine/io.js';
import { ingressRedirectArgs } from '../../src/net/linux/interface-loops.js';
import { loopRegistry } from './harness.js';
import { TCP_SINK, TCP_SOURCE, canRunNetns, makePair, pythonInNetns, type Pair } from './topology.js';

const { engineFor, track, closeAll } = loopRegistry();
const tc = (ns: string, ...args: string[]) =>
  execFileSync('ip', ['netns', 'exec', ns, 'tc', ...args], { encoding: 'utf8' });

describe.skipIf(!canRunNetns)('TUN offload behind tc mirred redirect (root, test namespaces only)', () => {
  let pair: Pair;
  beforeAll(() => {
    pair = makePair();
  });
  afterEach(() => closeAll());
  afterAll(() => pair?.remove());

  for (const offload of [true, false]) {
    it(`a TCP stream redirected into the loop's TUN (offload ${offload ? 'on: TSO super-packets arrive and are split' : 'off: the kernel segments first'}) completes intact`, async () => {
      const { a, b } = pair;
      // OUTBOUND on table 0: bypass (sa 0) for b's veth address — FORWARD unchanged, next hop = destination.
      const eb = engineFor([], [], [{ prefix: `${b.outer}/32`, sa: 0 }]);
      const lb = IoLoop.start({
        engine: eb,
        netns: b.ns,
        tun: { name: b.tun, mtu: 1500, offload },
        raw: true,
        bindInterface: b.veth,
        onPunt: () => {},
      });
      track(lb);
      tc(b.ns, 'qdisc', 'add', 'dev', b.veth, 'ingress');
      try {
        tc(b.ns, ...ingressRedirectArgs(b.veth, b.tun, 49001));
        const sink = pythonInNetns(b.ns, TCP_SINK, [b.outer, '5002']);
        await sink.ready;
        const source = pythonInNetns(a.ns, TCP_SOURCE, [b.outer, '5002', '8']);
        const [sent, received] = await Promise.all([source.done, sink.done]);
        expect(received).toEqual(sent);
        expect(sent.bytes).toBe(8 << 20);
      } finally {
        tc(b.ns, 'qdisc', 'del', 'dev', b.veth, 'ingress');
      }
      const s = lb.stats();
      const forwarded = eb.counters()[VERDICT_COUNTER_BASE + Verdict.FORWARD];
      const c = eb.counters();
      expect(
        c[VERDICT_COUNTER_BASE + Verdict.DROP] + c[VERDICT_COUNTER_BASE + Verdict.PUNT],
        'nothing but FORWARD',
      ).toBe(0n);
      expect(c[Reason.no_policy]).toBe(0n);
      expect(s.rxErrors + s.txErrors + s.txTooBig + s.rxTooBig).toBe(0);
      expect(BigInt(s.fastPath)).toBe(forwarded);
      // Every segment the engine saw was one datagram of at most one MSS: 8 MiB needs at least 8 MiB / 1448.
      expect(forwarded).toBeGreaterThanOrEqual(BigInt(Math.ceil((8 << 20) / 1448)));
      if (offload) {
        // Super-packets arrived whole: fewer TUN reads than segments handled.
        expect(s.rxGso, JSON.stringify(s)).toBeGreaterThan(0);
        expect(BigInt(s.rxTun)).toBeLessThan(forwarded);
      } else {
        expect(s.rxGso).toBe(0);
        expect(BigInt(s.rxTun)).toBe(forwarded);
      }
      console.log(
        `offload ${offload}: ${s.rxTun} TUN reads, ${s.rxGso} super-packets, ${forwarded} datagrams forwarded`,
      );
    }, 40_000);
  }
});
