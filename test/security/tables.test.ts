// Issue 10 hole 11: tables that grew without bound, and an install that copied the whole table. Inbound SAs are
// capped per peer and overall (NodeKeys), learned routes are capped and expire (LearnedRoutes), and an SA
// install costs the same at 32k SAs as at 1k (both engines).
import { describe, expect, it } from 'vitest';
import { installCostUs, probeSa } from '../../src/bench/install.js';
import { createEngine, type Engine, type EngineImpl } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying } from '../../src/keys/keying.js';
import type { Clock } from '../../src/net/types.js';
import { Tally } from '../../src/roles/common/counters.js';
import { NodeKeys, SUPERSEDED_IDLE_SECONDS, type SaLimits, type SaLookup } from '../../src/roles/common/keys.js';
import { LearnedRoutes } from '../../src/roles/sgw/learned.js';
import type { Sgw } from '../../src/topology/map.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4 } from '../../src/wire/ipv4.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';
import { makeCa, makeIdentity, T0 } from '../keys/helpers.js';

const SGW = '198.18.0.1';

/** An SGW's NodeKeys on `engine`, and per named peer a source of SKIP datagrams, each under a fresh packet key. */
function keyedGateway(engine: Engine, peers: string[], limits?: SaLimits, now: () => number = () => T0) {
  const ca = makeCa();
  const sgwId = makeIdentity(ca, `sgw:${SGW}`);
  const sgwCerts = new CertCache(ca.cert);
  const senders = new Map<string, () => Uint8Array>();
  for (const address of peers) {
    const id = makeIdentity(ca, `sgw:${address}`);
    sgwCerts.add(id.cert, T0);
    const certs = new CertCache(ca.cert);
    certs.add(sgwId.cert, T0);
    // kpMaxPackets 1: every request after a packet was sent mints a new Kp, as a flooding peer would.
    const keying = new SkipKeying({ identity: id, certs, now: () => T0, kpMaxPackets: 1 });
    senders.set(address, () => {
      const r = keying.outboundSa({ peer: sgwId.name, src: address, dst: SGW, role: 'end', esp: 'aes128gcm' }, 1);
      if (!r.ok || !r.created) throw new Error(`expected a fresh outbound SA, got ${JSON.stringify(r)}`);
      const payload = new Uint8Array(r.sa.skipHeader!.length + 32);
      payload.set(r.sa.skipHeader!);
      return buildIpv4({ protocol: IPPROTO_SKIP, src: ipToU32(address), dst: ipToU32(SGW), ttl: 64 }, payload);
    });
  }
  const keys = new NodeKeys(new SkipKeying({ identity: sgwId, certs: sgwCerts, now }), engine, undefined, limits);
  return {
    keys,
    send: (peer: string) => keys.inbound(senders.get(peer)!(), 'full'),
    packet: (peer: string) => senders.get(peer)!(),
  };
}

const reasons = (results: SaLookup[]): string[] => results.map((r) => (r.ok ? 'ok' : r.reason));

describe.each(['native', 'ts'] as const)('hole 11: inbound SAs per peer and overall (%s engine)', (impl) => {
  it('hole 11: a flood of new packet keys from one peer holds at most 64 of its SAs (each new one replaces its oldest); another peer still keys', () => {
    const engine = createEngine(impl);
    const { keys, send } = keyedGateway(engine, ['198.18.0.2', '198.18.0.3']);
    const other = send('198.18.0.3');
    const flood = Array.from({ length: 80 }, () => send('198.18.0.2'));
    expect(reasons(flood)).toEqual(Array(80).fill('ok'));
    const ids = flood.map((r) => (r.ok ? r.id : 0));
    // The 16 oldest of the flooding peer are gone, its 64 newest installed; the other peer's SA untouched.
    for (const id of ids.slice(0, 16)) expect(engine.saStats(id)).toBeUndefined();
    for (const id of ids.slice(16)) expect(engine.saStats(id)).toBeDefined();
    expect(keys.evictedInbound).toBe(16);
    expect(other.ok && engine.saStats(other.id)).toBeTruthy();
    expect(send('198.18.0.3').ok).toBe(true);
    keys.close();
    engine.close();
  });

  it('hole 11: a packet key superseded by a newer one of the same peer and path is retired once idle, and never keys again (no fresh replay window)', () => {
    const engine = createEngine(impl);
    let now = T0;
    const { keys, packet } = keyedGateway(engine, ['198.18.0.2', '198.18.0.3'], undefined, () => now);
    const first = packet('198.18.0.2');
    const [a, b, other] = [
      keys.inbound(first, 'full'),
      keys.inbound(packet('198.18.0.2'), 'full'),
      keys.inbound(packet('198.18.0.3'), 'full'),
    ];
    if (!a.ok || !b.ok || !other.ok) throw new Error('expected three SAs');
    keys.expire();
    expect(engine.saStats(a.id)).toBeDefined(); // idle for less than SUPERSEDED_IDLE_SECONDS
    now = T0 + SUPERSEDED_IDLE_SECONDS;
    keys.expire();
    expect(engine.saStats(a.id)).toBeUndefined();
    expect(keys.retiredInbound).toBe(1);
    // The newest key of each peer stays, however idle: nothing superseded it.
    expect(engine.saStats(b.id)).toBeDefined();
    expect(engine.saStats(other.id)).toBeDefined();
    // A replayed packet under the retired key does not re-derive it with a fresh replay window.
    const again = keys.inbound(first, 'full');
    expect(again.ok ? 'ok' : again.reason).toBe('retired_key');
    // Remembered as a number, not a long string per tuple (4,096 of those held 1.7 MB of a soaking SGW's heap).
    const retired = (keys.keying as unknown as { retired: Map<unknown, number> }).retired;
    expect([...retired.keys()].map((k) => typeof k)).toEqual(['number']);
    keys.close();
    engine.close();
  });

  it('hole 11: the overall inbound SA cap refuses a new key from any peer as sa_limit_total, and frees with close', () => {
    const engine = createEngine(impl);
    const { keys, send } = keyedGateway(engine, ['198.18.0.2', '198.18.0.3'], { maxInbound: 3 });
    const sent = [send('198.18.0.2'), send('198.18.0.2'), send('198.18.0.3'), send('198.18.0.3'), send('198.18.0.2')];
    expect(reasons(sent)).toEqual(['ok', 'ok', 'ok', 'sa_limit_total', 'sa_limit_total']);
    keys.close();
    engine.close();
  });
});

class FakeClock implements Clock {
  t = 1_000_000;
  now(): number {
    return this.t;
  }
  setTimer(): never {
    throw new Error('not used');
  }
}

const via = (name: string): Sgw => ({ name }) as Sgw;

describe('hole 11: learned routes', () => {
  it('hole 11: learned routes are capped per next-hop peer and overall, refusals counted', () => {
    const tally = new Tally();
    const routes = new LearnedRoutes(new FakeClock(), tally, { perPeer: 3, total: 5 });
    const b = via('sgwB');
    const c = via('sgwC');
    for (let i = 0; i < 10; i++) routes.learn(`10.9.0.${i}/32`, b);
    expect(routes.size).toBe(3);
    expect(tally.get('route_limit_peer')).toBe(7);
    for (let i = 0; i < 4; i++) routes.learn(`10.8.0.${i}/32`, c);
    expect(routes.size).toBe(5);
    expect(tally.get('route_limit_total')).toBe(2);
    expect(routes.intents().filter((r) => r.via === c)).toHaveLength(2);
  });

  it('hole 11: learned routes expire after their lifetime and free their place; changes are reported once per flush', () => {
    const clock = new FakeClock();
    const tally = new Tally();
    const routes = new LearnedRoutes(clock, tally, { perPeer: 2, ttlMs: 60_000 });
    const b = via('sgwB');
    routes.learn('10.9.0.1/32', b);
    routes.learn('10.9.0.2/32', b);
    expect(routes.takeChanges()).toBe(true);
    expect(routes.takeChanges()).toBe(false);
    routes.learn('10.9.0.1/32', b); // known: no change, no new lifetime
    expect(routes.takeChanges()).toBe(false);
    clock.t += 59_999;
    expect(routes.takeChanges()).toBe(false);
    clock.t += 1;
    expect(routes.takeChanges()).toBe(true);
    expect(routes.size).toBe(0);
    expect(tally.get('route_expired')).toBe(2);
    routes.learn('10.9.0.3/32', b);
    expect(routes.intents()).toEqual([{ prefix: '10.9.0.3/32', via: b }]);
  });

  it('a route to forward as it is (no next-hop SGW) is learned like one through an SGW, and counts toward its own peer', () => {
    const tally = new Tally();
    const routes = new LearnedRoutes(new FakeClock(), tally, { perPeer: 1 });
    routes.learn('10.1.0.100/32', undefined);
    expect(routes.takeChanges()).toBe(true);
    expect(routes.intents()).toEqual([{ prefix: '10.1.0.100/32', via: undefined }]);
    routes.learn('10.1.0.101/32', undefined);
    expect(tally.get('route_limit_peer')).toBe(1);
    routes.learn('10.1.0.100/32', via('sgwB'));
    expect(routes.intents()).toEqual([{ prefix: '10.1.0.100/32', via: via('sgwB') }]);
  });
});

describe.each(['native', 'ts'] as const)('hole 11: SA install cost (%s engine)', (impl: EngineImpl) => {
  it('hole 11: an install at 32k SAs costs less than 4× an install at 1k SAs', () => {
    const engine = createEngine(impl);
    const fill = { next: 1 };
    const small = installCostUs(engine, 1024, fill);
    const large = installCostUs(engine, 32768, fill);
    expect(engine.saStats(32768)).toBeDefined();
    engine.close();
    expect(large / small, `${small.toFixed(1)} µs at 1k, ${large.toFixed(1)} µs at 32k`).toBeLessThan(4);
  }, 120_000);
});

describe.each(['native', 'ts'] as const)('hole 11: the incremental SA table (%s engine)', (impl: EngineImpl) => {
  it('hole 11: installs and removes in shuffled order keep every live SA findable by id and its SPI taken, and free the rest', () => {
    const engine = createEngine(impl);
    const ids = Array.from({ length: 5000 }, (_, i) => i + 1);
    let seed = 11;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    for (const id of ids) engine.installSa(probeSa(id));
    const removed = new Set(ids.filter((id) => id % 3 === 0));
    for (const id of removed) engine.removeSa(id);
    for (const id of ids) expect(engine.saStats(id) !== undefined, `SA ${id}`).toBe(!removed.has(id));
    // A removed SA's SPI is free again, a live one's is not.
    for (const id of removed) engine.installSa(probeSa(id));
    expect(() => engine.installSa({ ...probeSa(0x7000000), esp: probeSa(7).esp })).toThrow(/SPI|protocol/);
    engine.close();
  });
});
