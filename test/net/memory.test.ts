import { describe, expect, it } from 'vitest';
import { MemoryNetwork, VirtualClock } from '../../src/net/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto, parseIpv4 } from '../../src/wire/ipv4.js';

function datagram(src: string, dst: string, payload = 'x', ttl = 64): Uint8Array {
  return buildIpv4(
    { src: ipToU32(src), dst: ipToU32(dst), protocol: IpProto.UDP, ttl },
    new TextEncoder().encode(payload),
  );
}

function text(packet: Uint8Array): string {
  return new TextDecoder().decode(packet.subarray(20));
}

/** a (10.0.0.1) — lan — r (10.0.0.254 | 198.18.0.1) — wan (p2p) — b (198.18.0.2, 10.9.0.0/16 behind it) */
function twoNetworks() {
  const net = new MemoryNetwork({ startMs: 0 });
  net.addLink('lan');
  net.addLink('wan', { kind: 'p2p', latencyMs: 5 });
  const a = net.addHost('a');
  a.addInterface('eth0', 'lan', '10.0.0.1/24');
  a.addRoute('0.0.0.0/0', { via: '10.0.0.254' });
  const r = net.addHost('r', { forwarding: true });
  r.addInterface('eth0', 'lan', '10.0.0.254/24');
  r.addInterface('eth1', 'wan', '198.18.0.1/30');
  r.addRoute('10.9.0.0/16', { via: '198.18.0.2' });
  const b = net.addHost('b');
  b.addInterface('eth0', 'wan', '198.18.0.2/30');
  b.addRoute('0.0.0.0/0', { via: '198.18.0.1' });
  return { net, a, r, b };
}

describe('VirtualClock', () => {
  it('runs events in time order, same-time events in scheduling order, and honours cancel', () => {
    const clock = new VirtualClock();
    const log: string[] = [];
    clock.setTimer(10, () => log.push(`b@${clock.now()}`));
    clock.setTimer(5, () => {
      log.push(`a@${clock.now()}`);
      clock.setTimer(5, () => log.push(`c@${clock.now()}`));
    });
    clock.setTimer(7, () => log.push('cancelled')).cancel();
    expect(clock.pending()).toBe(3 - 1);
    expect(clock.runFor(9)).toBe(1);
    expect(clock.now()).toBe(9);
    clock.run();
    expect(log).toEqual(['a@5', 'b@10', 'c@10']);
    expect(() => clock.setTimer(-1, () => undefined)).toThrow(/delay/);
  });

  it('refuses to spin forever on a periodic timer', () => {
    const clock = new VirtualClock();
    const tick = () => clock.setTimer(1, tick);
    tick();
    expect(() => clock.run(Infinity, 1000)).toThrow(/runFor/);
  });
});

describe('MemoryNetwork', () => {
  it('delivers on a LAN, forwards through a router with TTL − 1 and a valid checksum, and captures every frame', () => {
    const { net, a, b } = twoNetworks();
    const received: { packet: Uint8Array; iface?: string; time: number }[] = [];
    b.onDeliver((packet, ctx) => received.push({ packet: packet.slice(), iface: ctx.iface, time: ctx.time }));
    expect(a.send(datagram('10.0.0.1', '198.18.0.2', 'hello'))).toEqual({ ok: true });
    net.run();
    expect(received).toHaveLength(1);
    expect(text(received[0].packet)).toBe('hello');
    expect(received[0].iface).toBe('eth0');
    expect(received[0].time).toBe(1 + 5);
    const ip = parseIpv4(received[0].packet, 0);
    expect(ip.ok && ip.header.ttl).toBe(63);
    const lan = net.link('lan').captures();
    const wan = net.link('wan').captures();
    expect(lan.map((f) => [f.time, f.link, f.from, f.to, f.fate])).toEqual([
      [0, 'lan', 'a/eth0', 'r/eth0', 'delivered'],
    ]);
    expect(wan.map((f) => [f.time, f.link, f.from, f.to, f.fate])).toEqual([
      [1, 'wan', 'r/eth1', 'b/eth0', 'delivered'],
    ]);
    expect(wan[0].packet[8]).toBe(63);
  });

  it('uses the longest prefix match', () => {
    const { net, r } = twoNetworks();
    r.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
    expect(r.lookupRoute('10.9.1.1')).toEqual({ prefix: '10.9.0.0/16', via: '198.18.0.2', iface: 'eth1' });
    expect(r.lookupRoute('10.0.0.77')).toEqual({ prefix: '10.0.0.0/24', iface: 'eth0' });
    expect(r.lookupRoute('8.8.8.8')).toEqual({ prefix: '0.0.0.0/0', via: '10.0.0.1', iface: 'eth0' });
    expect(r.sourceAddressFor('10.9.1.1')).toBe('198.18.0.1');
    r.removeRoute('10.9.0.0/16');
    expect(r.lookupRoute('10.9.1.1')?.prefix).toBe('0.0.0.0/0');
    expect(net.hosts().map((h) => h.name)).toEqual(['a', 'r', 'b']);
  });

  it('counts each drop by reason', () => {
    const { net, a, b, r } = twoNetworks();
    expect(b.send(datagram('198.18.0.2', '10.0.0.99'))).toEqual({ ok: true });
    net.run();
    expect(r.counters().unresolved).toBe(1);
    expect(net.link('lan').captures().at(-1)?.fate).toBe('unresolved');
    expect(r.send(datagram('198.18.0.1', '172.16.0.1'))).toEqual({ ok: false, reason: 'no_route' });
    expect(a.send(new Uint8Array(10))).toEqual({ ok: false, reason: 'bad_ipv4' });
    a.send(datagram('10.0.0.1', '198.18.0.2', 'dies', 1));
    net.run();
    expect(r.counters().ttl_expired).toBe(1);
    // A host that is not a router drops what is not for it.
    r.addRoute('10.7.0.0/16', { via: '10.0.0.1' });
    b.send(datagram('198.18.0.2', '10.7.0.1'));
    net.run();
    expect(a.counters().not_for_us).toBe(1);
    expect(r.counters()).toEqual({
      bad_ipv4: 0,
      no_route: 1,
      ttl_expired: 1,
      not_for_us: 0,
      unresolved: 1,
      too_big: 0,
    });
  });

  it('answers for proxied addresses on a multi-access link', () => {
    const { net, a, r } = twoNetworks();
    const got: string[] = [];
    r.addHook('input', (packet) => {
      const ip = parseIpv4(packet, 0);
      if (ip.ok && ip.header.dst === ipToU32('10.0.0.100')) {
        got.push(text(packet));
        return 'consumed';
      }
      return 'pass';
    });
    a.send(datagram('10.0.0.1', '10.0.0.100', 'to-proxy'));
    net.run();
    expect(got).toEqual([]);
    expect(a.counters().unresolved).toBe(1);
    r.setProxy('10.0.0.100', 'eth0', true);
    a.send(datagram('10.0.0.1', '10.0.0.100', 'to-proxy'));
    net.run();
    expect(got).toEqual(['to-proxy']);
    expect(net.link('lan').captures().at(-1)?.to).toBe('r/eth0');
  });

  it('runs output hooks on locally sent packets, and bypassHooks skips them', () => {
    const { net, a, b } = twoNetworks();
    const seen: string[] = [];
    a.addHook('output', (packet) => {
      seen.push(text(packet));
      if (text(packet) === 'wrap-me') {
        a.send(datagram('10.0.0.1', '198.18.0.2', 'wrapped'), { bypassHooks: true });
        return 'consumed';
      }
      return 'pass';
    });
    const delivered: string[] = [];
    b.onDeliver((packet) => delivered.push(text(packet)));
    a.send(datagram('10.0.0.1', '198.18.0.2', 'wrap-me'));
    a.send(datagram('10.0.0.1', '198.18.0.2', 'plain'));
    net.run();
    expect(seen).toEqual(['wrap-me', 'plain']);
    expect(delivered).toEqual(['wrapped', 'plain']);
  });

  it('delivers to extra local addresses, loops back local sends, and injects through the input path', () => {
    const { net, a } = twoNetworks();
    a.addLocalAddress('10.0.0.100');
    expect(a.isLocal('10.0.0.100')).toBe(true);
    const got: [string, string | undefined][] = [];
    a.onDeliver((packet, ctx) => got.push([text(packet), ctx.iface]));
    a.send(datagram('10.0.0.1', '10.0.0.100', 'loop'));
    a.inject(datagram('198.18.0.2', '10.0.0.100', 'injected'), { iface: 'eth0' });
    net.run();
    expect(got).toEqual([
      ['loop', undefined],
      ['injected', 'eth0'],
    ]);
    a.removeLocalAddress('10.0.0.100');
    a.inject(datagram('198.18.0.2', '10.0.0.100', 'again'));
    net.run();
    expect(a.counters().not_for_us).toBe(1);
  });

  it('moves an interface to another link with a new address (handover); frames in flight to it are lost', () => {
    const net = new MemoryNetwork();
    net.addLink('home', { latencyMs: 10 });
    net.addLink('foreign');
    const mn = net.addHost('mn');
    mn.addInterface('eth0', 'home', '10.0.0.100/16');
    mn.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
    const ch = net.addHost('ch');
    ch.addInterface('eth0', 'home', '10.0.0.5/16');
    const fa = net.addHost('fa');
    fa.addInterface('eth0', 'foreign', '10.1.0.1/16');
    const got: string[] = [];
    mn.onDeliver((packet) => got.push(text(packet)));
    ch.send(datagram('10.0.0.5', '10.0.0.100', 'in-flight'));
    net.runFor(5);
    mn.moveInterface('eth0', 'foreign', '10.1.0.100/16');
    net.run();
    expect(got).toEqual([]);
    expect(mn.interfaces()).toEqual([{ name: 'eth0', link: 'foreign', address: '10.1.0.100', prefixLength: 16 }]);
    expect(mn.routes()).toEqual([{ prefix: '10.1.0.0/16', iface: 'eth0' }]);
    fa.send(datagram('10.1.0.1', '10.1.0.100', 'after-move'));
    net.run();
    expect(got).toEqual(['after-move']);
  });

  it('injects loss deterministically from a seed or a predicate', () => {
    const pattern = (seed: number) => {
      const { net, a } = twoNetworks();
      net.link('lan').setLoss(0.5, seed);
      for (let i = 0; i < 40; i++) a.send(datagram('10.0.0.1', '198.18.0.2', `${i}`));
      net.run();
      return net
        .link('lan')
        .captures()
        .map((f) => f.fate);
    };
    const first = pattern(7);
    expect(pattern(7)).toEqual(first);
    const lost = first.filter((f) => f === 'lost').length;
    expect(lost).toBeGreaterThan(5);
    expect(lost).toBeLessThan(35);
    const { net, a, b } = twoNetworks();
    const got: string[] = [];
    b.onDeliver((packet) => got.push(text(packet)));
    net.link('wan').setLoss((_packet, index) => index % 2 === 0);
    for (let i = 0; i < 4; i++) a.send(datagram('10.0.0.1', '198.18.0.2', `${i}`));
    net.run();
    expect(got).toEqual(['1', '3']);
    expect(() => net.link('wan').setLoss(1)).toThrow(/loss rate/);
  });

  it('reports configuration mistakes by name', () => {
    const { net, a } = twoNetworks();
    expect(() => net.addHost('a')).toThrow(/'a' already exists/);
    expect(() => net.host('zz')).toThrow(/no host named 'zz'/);
    expect(() => a.addInterface('eth1', 'nowhere', '1.2.3.4/8')).toThrow(/no link named 'nowhere'/);
    expect(() => a.addRoute('10.5.0.0/16', { via: '172.16.0.1' })).toThrow(/no interface is on that next hop's subnet/);
    expect(() => a.addInterface('eth1', 'lan', '10.0.0.9')).toThrow(/prefix length/);
    expect(() => net.addHost('x').addInterface('p', 'wan', '198.18.0.9/30')).toThrow(
      /point-to-point and already has two ends/,
    );
  });

  it('sends live frames to a tap until it is removed', () => {
    const { net, a } = twoNetworks();
    const frames: string[] = [];
    const untap = net.link('lan').tap((f) => frames.push(`${f.link}:${f.from}>${f.to}`));
    a.send(datagram('10.0.0.1', '10.0.0.254'));
    untap();
    a.send(datagram('10.0.0.1', '10.0.0.254'));
    net.run();
    expect(frames).toEqual(['lan:a/eth0>r/eth0']);
    expect(net.link('lan').captures()).toHaveLength(2);
    net.link('lan').clearCaptures();
    expect(net.link('lan').captures()).toEqual([]);
  });
});
