// Certificate discovery on UDP 1640 (DESIGN §3): answer requests for a certificate we know, and
// fetch a peer's certificate into the cache when keying finds it missing. Codec: src/keys/discovery.ts.
// Forged SKIP names must not turn this into a flood or an amplifier (issue 10 hole 10): lookups in
// flight are capped per packet source, per node asked and overall, answers are rate-limited per
// requester and overall, and a request is as long as any answer (the codec pads it).
import { randomInt } from 'node:crypto';
import type { CertCache } from '../../keys/cache.js';
import type { Certificate } from '../../keys/certificate.js';
import { answerDiscovery, certifies, decodeDiscovery, DISCOVERY_PORT, encodeDiscovery } from '../../keys/discovery.js';
import { formatName, type SkipName } from '../../keys/names.js';
import type { Clock, Host, Timer } from '../../net/types.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import type { Tally } from './counters.js';
import { RateLimiter, type RateLimitOptions } from './ratelimit.js';

export type DiscoveryOutcome = { ok: true } | { ok: false; reason: string };

/**
 * Exchanges in flight at once, and packets held per exchange: forged SKIP names cannot make either grow without bound.
 */
const MAX_PENDING = 256;
const MAX_WAITERS = 64;
/**
 * Exchanges in flight on behalf of packets: per packet source, per node asked, and overall with room
 * left for the node's own (an SGW named by the map), so forged names never starve those.
 */
const MAX_PER_SOURCE = 4;
const MAX_PER_ASKED = 8;
const RESERVED_FOR_OWN = 32;
/** Answers: a few to one requester, a bounded stream to everyone together. */
const ANSWER_RATE: RateLimitOptions = { burst: 4, perSecond: 2, globalBurst: 16, globalPerSecond: 20 };

export interface DiscoveryOptions {
  host: Host;
  clock: Clock;
  own: Certificate;
  cache: CertCache;
  /** The address requests leave from, and replies are sent from. */
  localAddress: () => string;
  tally: Tally;
  timeoutMs?: number;
  attempts?: number;
  /** Certificates other than our own we answer for (an SGW: the SMNs it holds, see docs/certificates.md §4). */
  vouchesFor?: (name: SkipName) => Certificate | undefined;
  answerRate?: RateLimitOptions;
}

interface Pending {
  name: SkipName;
  ask: string;
  /** The packet source the lookup is for; undefined for the node's own (a peer the map names). */
  source?: string;
  id: number;
  attempt: number;
  timer?: Timer;
  waiters: ((outcome: DiscoveryOutcome) => void)[];
}

export class CertificateDiscovery {
  private readonly pending = new Map<string, Pending>();
  private readonly bySource = new Counts();
  private readonly byAsked = new Counts();
  /**
   * Answers for our own name and for any other spend separate budgets: requests for forged names cannot starve the
   * first.
   */
  private readonly ownAnswers: RateLimiter;
  private readonly otherAnswers: RateLimiter;
  private readonly stopListening: () => void;

  constructor(private readonly o: DiscoveryOptions) {
    this.ownAnswers = new RateLimiter(o.clock, o.answerRate ?? ANSWER_RATE);
    this.otherAnswers = new RateLimiter(o.clock, o.answerRate ?? ANSWER_RATE);
    this.stopListening = o.host.onDeliver((packet) => this.receive(packet));
  }

  /**
   * Asks `ask` for the certificate of `name`, on behalf of a packet from `source` (undefined: for the
   * node itself); `done` runs once with the outcome. Concurrent asks share one exchange.
   */
  fetch(name: SkipName, ask: string, done: (outcome: DiscoveryOutcome) => void, source?: string): void {
    const key = formatName(name);
    const existing = this.pending.get(key);
    if (existing) {
      if (existing.waiters.length >= MAX_WAITERS) done({ ok: false, reason: 'discovery_queue_full' });
      else existing.waiters.push(done);
      return;
    }
    const busy = this.busy(ask, source);
    if (busy) {
      done({ ok: false, reason: busy });
      return;
    }
    const p: Pending = { name, ask, source, id: randomInt(0, 0x1_0000_0000), attempt: 0, waiters: [done] };
    this.pending.set(key, p);
    this.count(p, 1);
    this.send(p);
  }

  close(): void {
    this.stopListening();
    for (const p of this.pending.values()) p.timer?.cancel();
    this.pending.clear();
  }

  /** Why a new exchange may not start now, or undefined when it may. */
  private busy(ask: string, source: string | undefined): string | undefined {
    if (this.pending.size >= MAX_PENDING - (source === undefined ? 0 : RESERVED_FOR_OWN)) return 'discovery_busy';
    if (source === undefined) return undefined;
    if (this.bySource.get(source) >= MAX_PER_SOURCE) return 'discovery_busy_source';
    if (this.byAsked.get(ask) >= MAX_PER_ASKED) return 'discovery_busy_asked';
    return undefined;
  }

  private count(p: Pending, n: number): void {
    if (p.source === undefined) return;
    this.bySource.add(p.source, n);
    this.byAsked.add(p.ask, n);
  }

  private send(p: Pending): void {
    p.attempt++;
    this.o.tally.add('discovery_request_sent');
    this.udp(p.ask, DISCOVERY_PORT, encodeDiscovery({ type: 'request', id: p.id, name: p.name }));
    p.timer = this.o.clock.setTimer(this.o.timeoutMs ?? 500, () => {
      if (p.attempt < (this.o.attempts ?? 3)) this.send(p);
      else this.finish(p, { ok: false, reason: 'discovery_timeout' });
    });
  }

  private finish(p: Pending, outcome: DiscoveryOutcome): void {
    p.timer?.cancel();
    this.pending.delete(formatName(p.name));
    this.count(p, -1);
    for (const done of p.waiters) done(outcome);
  }

  private receive(packet: Uint8Array): void {
    const parsed = parseUdpDatagram(packet);
    if (!parsed.ok || parsed.udp.dstPort !== DISCOVERY_PORT) return;
    const msg = decodeDiscovery(parsed.udp.payload);
    if (!msg.ok) {
      this.o.tally.add(`discovery_${msg.reason}`);
      return;
    }
    const m = msg.message;
    const from = u32ToIp(parsed.udp.src);
    if (m.type === 'request') {
      this.answer(m, from, parsed.udp.srcPort);
      return;
    }
    // Only the node asked can answer, under the id we chose at random.
    const p = this.pending.get(formatName(m.name));
    if (!p || p.id !== m.id || p.ask !== from) {
      this.o.tally.add('discovery_unsolicited');
      return;
    }
    if (m.type === 'notFound') return this.finish(p, { ok: false, reason: 'discovery_not_found' });
    const added = this.o.cache.add(m.cert, Math.floor(this.o.clock.now() / 1000));
    this.o.tally.add(added.ok ? 'discovery_certificate_added' : `certificate_${added.reason}`);
    this.finish(p, added.ok ? { ok: true } : { ok: false, reason: `certificate_${added.reason}` });
  }

  private answer(request: Parameters<typeof answerDiscovery>[0], to: string, port: number): void {
    const ours = certifies(this.o.own, request.name);
    const verdict = (ours ? this.ownAnswers : this.otherAnswers).take(to);
    if (verdict !== 'allowed') {
      this.o.tally.add(`discovery_answer_${verdict}`);
      return;
    }
    this.o.tally.add('discovery_request_answered');
    this.udp(
      to,
      port,
      encodeDiscovery(answerDiscovery(request, ours ? this.o.own : this.o.vouchesFor?.(request.name))),
    );
  }

  private udp(to: string, port: number, payload: Uint8Array): void {
    const datagram = buildUdpDatagram(
      { src: ipToU32(this.o.localAddress()), dst: ipToU32(to), srcPort: DISCOVERY_PORT, dstPort: port },
      payload,
    );
    this.o.host.send(datagram, { bypassHooks: true });
  }
}

/** Exchanges in flight per key; a key at zero is forgotten. */
class Counts {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string, n: number): void {
    const value = this.get(key) + n;
    if (value > 0) this.counts.set(key, value);
    else this.counts.delete(key);
  }
}
