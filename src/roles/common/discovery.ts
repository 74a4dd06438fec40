// Certificate discovery on UDP 1640 (DESIGN §3): answer requests for our own certificate, and
// fetch a peer's certificate into the cache when keying finds it missing. Codec: src/keys/discovery.ts.
import type { CertCache } from '../../keys/cache.js';
import type { Certificate } from '../../keys/certificate.js';
import { answerDiscovery, decodeDiscovery, DISCOVERY_PORT, encodeDiscovery } from '../../keys/discovery.js';
import { formatName, type SkipName } from '../../keys/names.js';
import type { Clock, Host, Timer } from '../../net/types.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import type { Tally } from './counters.js';

export type DiscoveryOutcome = { ok: true } | { ok: false; reason: string };

/** Exchanges in flight at once, and packets held per exchange: forged SKIP names cannot make either grow without bound. */
const MAX_PENDING = 256;
const MAX_WAITERS = 64;

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
}

interface Pending {
  name: SkipName;
  ask: string;
  id: number;
  attempt: number;
  timer?: Timer;
  waiters: ((outcome: DiscoveryOutcome) => void)[];
}

export class CertificateDiscovery {
  private readonly pending = new Map<string, Pending>();
  private readonly stopListening: () => void;
  private nextId = 1;

  constructor(private readonly o: DiscoveryOptions) {
    this.stopListening = o.host.onDeliver((packet) => this.receive(packet));
  }

  /** Asks `ask` for the certificate of `name`; `done` runs once with the outcome. Concurrent asks share one exchange. */
  fetch(name: SkipName, ask: string, done: (outcome: DiscoveryOutcome) => void): void {
    const key = formatName(name);
    const existing = this.pending.get(key);
    if (existing) {
      if (existing.waiters.length >= MAX_WAITERS) done({ ok: false, reason: 'discovery_queue_full' });
      else existing.waiters.push(done);
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      done({ ok: false, reason: 'discovery_busy' });
      return;
    }
    const p: Pending = { name, ask, id: this.nextId++, attempt: 0, waiters: [done] };
    this.pending.set(key, p);
    this.send(p);
  }

  close(): void {
    this.stopListening();
    for (const p of this.pending.values()) p.timer?.cancel();
    this.pending.clear();
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
    if (m.type === 'request') {
      this.o.tally.add('discovery_request_answered');
      this.udp(u32ToIp(parsed.udp.src), parsed.udp.srcPort, encodeDiscovery(answerDiscovery(m, this.o.own)));
      return;
    }
    const p = this.pending.get(formatName(m.name));
    if (!p || p.id !== m.id) {
      this.o.tally.add('discovery_unsolicited');
      return;
    }
    if (m.type === 'notFound') return this.finish(p, { ok: false, reason: 'discovery_not_found' });
    const added = this.o.cache.add(m.cert, Math.floor(this.o.clock.now() / 1000));
    this.o.tally.add(added.ok ? 'discovery_certificate_added' : `certificate_${added.reason}`);
    this.finish(p, added.ok ? { ok: true } : { ok: false, reason: `certificate_${added.reason}` });
  }

  private udp(to: string, port: number, payload: Uint8Array): void {
    const datagram = buildUdpDatagram({ src: ipToU32(this.o.localAddress()), dst: ipToU32(to), srcPort: DISCOVERY_PORT, dstPort: port }, payload);
    this.o.host.send(datagram, { bypassHooks: true });
  }
}

