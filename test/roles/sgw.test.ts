// SecurityGateway mechanics on the Figure 6 world: one engine call per clock tick for a burst of
// packets, failure messages within the per-destination token bucket, counters for every decision.
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engine/index.js';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { probe } from '../../src/lab/traffic.js';
import { buildWorld, type World } from '../../src/lab/world.js';
import { lanDiscovery } from './discovery-fixture.js';
import { UdpSourceNat } from '../../src/roles/sgw/nat.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';
import { RateLimiter } from '../../src/roles/common/ratelimit.js';
import { VirtualClock } from '../../src/net/clock.js';

process.env.MIPSEC_NATIVE = '1';

describe.each(['native', 'ts'] as const)('SecurityGateway on the %s engine', (impl) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('a burst of 40 packets in one tick costs one engine call per stage, not one per packet', async () => {
    world = buildWorld({ map: await figure6Map(), engine: impl });
    const w = world;
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    const sgw1 = w.engines[1];
    let calls = 0;
    const process = sgw1.process.bind(sgw1);
    (sgw1 as { process: Engine['process'] }).process = (batch) => {
      calls++;
      process(batch);
    };
    for (let i = 0; i < 40; i++) w.smn.send(probe(F6.home, F6.ch0, i));
    w.network.runFor(SETTLE_MS);
    // 40 requests reach SGW1 in one tick (one relay stage), 40 replies in another.
    expect(calls).toBeLessThanOrEqual(4);
    expect(w.sgws.get('sgw1')!.counters().relay).toBeGreaterThanOrEqual(80);
  });

  it('failure messages are rate-limited per destination: a flood of plain packets from a visitor gets a burst of code 4, the rest counted', async () => {
    world = buildWorld({ map: await figure6Map(), engine: impl, smn: { procedure: 'three-step' } });
    const w = world;
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    const before = w.sgws.get('sgw1')!.counters();
    // A new destination each time, so the SMN stays at step 1 (plain) for every packet of the flood.
    for (let i = 0; i < 30; i++) w.smnHost.send(probe(F6.home, `10.0.0.${50 + i}`, i), { bypassHooks: true });
    w.network.runFor(100);
    const after = w.sgws.get('sgw1')!.counters();
    expect(after['need-nexthop-auth'] - (before['need-nexthop-auth'] ?? 0)).toBe(30);
    expect(after.icmp40_sent_code4 - (before.icmp40_sent_code4 ?? 0)).toBe(4);
    expect(after.icmp40_rate_limited).toBe(26);
  });
});

describe('RateLimiter', () => {
  it('refills at its rate and keeps destinations apart', () => {
    const clock = new VirtualClock(0);
    const limiter = new RateLimiter(clock, { burst: 2, perSecond: 10 });
    expect([limiter.allow('a'), limiter.allow('a'), limiter.allow('a'), limiter.allow('b')]).toEqual([
      true,
      true,
      false,
      true,
    ]);
    clock.run(99);
    expect(limiter.allow('a')).toBe(false);
    clock.run(100);
    expect(limiter.allow('a')).toBe(true);
  });

  it('forgets the oldest destination beyond its bound', () => {
    const clock = new VirtualClock(0);
    const limiter = new RateLimiter(clock, { burst: 1, maxDestinations: 2 });
    limiter.allow('a');
    limiter.allow('b');
    limiter.allow('c');
    expect(limiter.allow('a')).toBe(true);
  });
});

describe('CertificateDiscovery bounds', () => {
  it('holds at most 64 packets per exchange and 256 exchanges; the rest fail at once with a reason', () => {
    const { net, d, outcomes, record } = lanDiscovery();
    for (let i = 0; i < 70; i++) d.fetch({ nsid: 0, address: 0x0a000002 }, '10.0.0.2', record);
    expect(outcomes).toEqual(Array(6).fill('discovery_queue_full'));
    for (let i = 0; i < 300; i++) d.fetch({ nsid: 1, address: 0x0a010000 + i }, '10.0.0.3', record);
    expect(outcomes.filter((o) => o === 'discovery_busy')).toHaveLength(300 - 255);
    net.runFor(5000);
    expect(outcomes.filter((o) => o === 'discovery_timeout')).toHaveLength(64 + 255);
    d.close();
  });
});

describe('UdpSourceNat (§3.5)', () => {
  it('maps an inside address and port (per remote end) to one global port, answers come back, anything else is left alone', () => {
    const clock = new VirtualClock(0);
    const nat = new UdpSourceNat(clock, ipToU32('198.18.1.1'));
    const out1 = nat.outbound(
      buildUdpDatagram(
        { src: ipToU32('10.1.0.100'), dst: ipToU32('198.18.9.10'), srcPort: 4000, dstPort: 7 },
        new Uint8Array(4),
      ),
    );
    const out2 = nat.outbound(
      buildUdpDatagram(
        { src: ipToU32('10.1.0.100'), dst: ipToU32('198.18.9.10'), srcPort: 4000, dstPort: 7 },
        new Uint8Array(4),
      ),
    );
    const other = nat.outbound(
      buildUdpDatagram(
        { src: ipToU32('10.1.0.101'), dst: ipToU32('198.18.9.10'), srcPort: 4000, dstPort: 7 },
        new Uint8Array(4),
      ),
    );
    const sent = [out1, out2, other].map((p) => parseUdpDatagram(p!)).map((u) => (u.ok ? u.udp : undefined));
    expect(sent.map((u) => u?.src)).toEqual(Array(3).fill(ipToU32('198.18.1.1')));
    const [port, samePort, otherPort] = sent.map((u) => u!.srcPort);
    expect(samePort).toBe(port);
    expect(otherPort).not.toBe(port);
    const answer = (dstPort: number) =>
      buildUdpDatagram(
        { src: ipToU32('198.18.9.10'), dst: ipToU32('198.18.1.1'), srcPort: 7, dstPort },
        new Uint8Array(4),
      );
    const back = nat.inbound(answer(port));
    const u = parseUdpDatagram(back!);
    expect(u.ok && [u.udp.dst, u.udp.dstPort]).toEqual([ipToU32('10.1.0.100'), 4000]);
    const unmapped = [...Array(10000).keys()].map((i) => 20000 + i).find((p) => p !== port && p !== otherPort)!;
    expect(nat.inbound(answer(unmapped))).toBeUndefined();
    expect(nat.outbound(new Uint8Array(20))).toBeUndefined();
  });
});
