// The certificate cache (draft §2.3): LRU bound, expiry, CA check; and its LruMap.
import { describe, expect, it } from 'vitest';
import { CertCache, LruMap } from '../../src/keys/cache.js';
import { makeCa, makeIdentity, T0 } from './helpers.js';

describe('LruMap', () => {
  it('evicts the least recently used entry and reports it', () => {
    const evicted: string[] = [];
    const m = new LruMap<string, number>(2, (k) => evicted.push(k));
    m.set('a', 1);
    m.set('b', 2);
    expect(m.get('a')).toBe(1); // a is now the most recent
    m.set('c', 3);
    expect(evicted).toEqual(['b']);
    expect(m.peek('b')).toBeUndefined();
    m.set('a', 4); // replacing a value reports the old one
    expect(evicted).toEqual(['b', 'a']);
    expect(m.size).toBe(2);
    m.clear();
    expect(m.size).toBe(0);
    expect(evicted.sort()).toEqual(['a', 'a', 'b', 'c']);
    expect(() => new LruMap(0)).toThrow(/positive integer/);
  });
});

describe('CertCache', () => {
  const ca = makeCa();

  it('holds verified node certificates by SKIP name, bounded by LRU', () => {
    const cache = new CertCache(ca.cert, 2);
    const [a, b, c] = ['sgw:198.18.0.1', 'smn:10.0.0.100', 'sgw:198.18.1.1'].map((n) => makeIdentity(ca, n));
    for (const id of [a, b]) expect(cache.add(id.cert, T0)).toEqual({ ok: true });
    expect(cache.get(a.name, T0)).toBe(a.cert); // a becomes most recent
    cache.add(c.cert, T0);
    expect(cache.size).toBe(2);
    expect(cache.lookup(b.name, T0)).toEqual({ ok: false, reason: 'unknown_certificate' });
    expect(cache.get(a.name, T0)).toBe(a.cert);
    expect(cache.get(c.name, T0)).toBe(c.cert);
    expect(cache.delete(c.name)).toBe(true);
    expect(cache.get(c.name, T0)).toBeUndefined();
  });

  it('never returns an expired certificate, keeps a not-yet-valid one out of use', () => {
    const cache = new CertCache(ca.cert);
    const short = makeIdentity(ca, 'smn:10.0.0.100', T0 - 10, T0 + 10);
    expect(cache.add(short.cert, T0)).toEqual({ ok: true });
    expect(cache.get(short.name, T0 + 10)).toBe(short.cert);
    expect(cache.lookup(short.name, T0 + 11)).toEqual({ ok: false, reason: 'expired_certificate' });
    expect(cache.lookup(short.name, T0)).toEqual({ ok: false, reason: 'unknown_certificate' });
    expect(cache.lookup(short.name, T0 - 11)).toEqual({ ok: false, reason: 'unknown_certificate' });
    const future = makeIdentity(ca, 'smn:10.0.0.101', T0 + 100, T0 + 1000);
    cache.add(future.cert, T0 + 100);
    expect(cache.lookup(future.name, T0)).toEqual({ ok: false, reason: 'certificate_not_yet_valid' });
    expect(cache.prune(T0 + 2000)).toEqual(['smn:10.0.0.101']);
    expect(cache.size).toBe(0);
  });

  it('an older certificate for a name never replaces a newer one', () => {
    const cache = new CertCache(ca.cert);
    const older = makeIdentity(ca, 'sgw:198.18.0.9', T0 - 1000, T0 + 1000);
    const newer = makeIdentity(ca, 'sgw:198.18.0.9', T0 - 10, T0 + 1000);
    expect(cache.add(newer.cert, T0)).toEqual({ ok: true });
    expect(cache.add(older.cert, T0)).toMatchObject({ ok: false, reason: 'superseded' });
    expect(cache.get(newer.name, T0)).toBe(newer.cert);
    const newest = makeIdentity(ca, 'sgw:198.18.0.9', T0 - 5, T0 + 1000);
    expect(cache.add(newest.cert, T0)).toEqual({ ok: true });
    expect(cache.get(newer.name, T0)).toBe(newest.cert);
  });

  it('refuses certificates of another CA, expired ones, altered ones and CA certificates', () => {
    const cache = new CertCache(ca.cert);
    const other = makeCa('Other');
    expect(cache.add(makeIdentity(other, 'sgw:198.18.0.1').cert, T0)).toMatchObject({
      ok: false,
      reason: 'foreign_ca',
    });
    expect(cache.add(makeIdentity(ca, 'sgw:198.18.0.2', T0 - 100, T0 - 1).cert, T0)).toMatchObject({
      ok: false,
      reason: 'expired',
    });
    const good = makeIdentity(ca, 'sgw:198.18.0.3');
    expect(cache.add({ ...good.cert, publicKey: new Uint8Array(32).fill(9) }, T0)).toMatchObject({
      ok: false,
      reason: 'bad_signature',
    });
    expect(cache.add(ca.cert, T0)).toMatchObject({ ok: false, reason: 'not_a_node_certificate' });
    expect(cache.size).toBe(0);
    expect(() => new CertCache(good.cert)).toThrow(/trust anchor must be a CA/);
  });
});
