// The certificate cache (draft §2.3): verified certificates of the nodes we talk to, keyed by
// SKIP name, bounded (least recently used goes first) and expiry-aware. It holds no mobility
// state: care-of addresses and bindings live in the roles, not here.
import {
  type Certificate,
  isCaSubject,
  isoTime,
  subjectText,
  verifyCertificate,
  type CertificateCheck,
} from './certificate.js';
import { formatName, type SkipName } from './names.js';

/** A Map bounded to `capacity` entries, least recently used evicted first (`onEvict` sees it go). */
export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(
    readonly capacity: number,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`LRU capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, marked as most recently used. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** The value without touching its recency. */
  peek(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      if (old !== value) this.onEvict?.(key, old);
    }
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) {
      const [oldestKey, oldestValue] = this.entries.entries().next().value as [K, V];
      this.entries.delete(oldestKey);
      this.onEvict?.(oldestKey, oldestValue);
    }
  }

  delete(key: K): boolean {
    const value = this.entries.get(key);
    if (value === undefined) return false;
    this.entries.delete(key);
    this.onEvict?.(key, value);
    return true;
  }

  keys(): IterableIterator<K> {
    return this.entries.keys();
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
  }
}

export type CacheLookup =
  | { ok: true; cert: Certificate }
  | { ok: false; reason: 'unknown_certificate' | 'expired_certificate' | 'certificate_not_yet_valid' };

export type CacheAdd =
  | CertificateCheck
  | { ok: false; reason: 'not_a_node_certificate' | 'superseded'; message: string };

export const DEFAULT_CACHE_CAPACITY = 1024;

export class CertCache {
  private readonly certs: LruMap<string, Certificate>;

  /** `ca` is the organization CA certificate every cached certificate must be signed by. */
  constructor(
    private readonly ca: Certificate,
    capacity = DEFAULT_CACHE_CAPACITY,
  ) {
    if (!isCaSubject(ca.subject))
      throw new RangeError(`the cache's trust anchor must be a CA certificate, got ${subjectText(ca.subject)}`);
    this.certs = new LruMap(capacity);
  }

  get size(): number {
    return this.certs.size;
  }

  /** Verifies `cert` against the CA at `now` (unix seconds) and caches it under its name. */
  add(cert: Certificate, now: number): CacheAdd {
    if (isCaSubject(cert.subject)) {
      return {
        ok: false,
        reason: 'not_a_node_certificate',
        message: `${subjectText(cert.subject)} is a CA certificate; the cache holds SGW and SMN certificates`,
      };
    }
    const check = verifyCertificate(cert, this.ca, now);
    if (!check.ok) return check;
    const key = formatName(cert.subject);
    const cached = this.certs.peek(key);
    // An older certificate never replaces a newer one: a replayed discovery reply cannot roll back a rekeyed node.
    if (cached && cached.notBefore > cert.notBefore && now <= cached.notAfter) {
      return {
        ok: false,
        reason: 'superseded',
        message: `${key} already has a newer certificate (valid from ${isoTime(cached.notBefore)})`,
      };
    }
    this.certs.set(key, cert);
    return check;
  }

  /** The certificate of `name` if it is valid at `now`; an expired one is dropped and never returned. */
  lookup(name: SkipName, now: number): CacheLookup {
    const key = formatName(name);
    const cert = this.certs.get(key);
    if (cert === undefined) return { ok: false, reason: 'unknown_certificate' };
    if (now > cert.notAfter || now > this.ca.notAfter) {
      this.certs.delete(key);
      return { ok: false, reason: 'expired_certificate' };
    }
    if (now < cert.notBefore) return { ok: false, reason: 'certificate_not_yet_valid' };
    return { ok: true, cert };
  }

  get(name: SkipName, now: number): Certificate | undefined {
    const found = this.lookup(name, now);
    return found.ok ? found.cert : undefined;
  }

  delete(name: SkipName): boolean {
    return this.certs.delete(formatName(name));
  }

  /** Drops every certificate expired at `now`; returns their names. */
  prune(now: number): string[] {
    const gone: string[] = [];
    for (const key of [...this.certs.keys()]) {
      const cert = this.certs.peek(key)!;
      if (now > cert.notAfter || now > this.ca.notAfter) {
        this.certs.delete(key);
        gone.push(key);
      }
    }
    return gone;
  }
}
