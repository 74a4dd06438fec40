// The mobile node's side of Mobile IPv4 with a co-located care-of address (RFC 5944, draft §2.1):
// a registration client (D flag, retransmission with exponential back-off, re-registration before
// expiry, identification resync on 133, deregistration at home) that talks through a small
// transport, so the SMN can carry registrations inside its SKIP/AH/ESP stack (draft §4.4). The plain UDP
// transport is registration-transport.ts; the MN's end of the HA's tunnel, tunnel-endpoint.ts.
import { randomInt } from 'node:crypto';
import type { Clock, Timer } from '../../net/types.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import {
  decodeReply,
  encodeRequest,
  idHigh,
  idLow,
  isAccepted,
  LIFETIME_INFINITE,
  ntpFromUnixMs,
  ReplyCode,
  RequestFlag,
  verifyMnHaAuth,
  type MnHaKey,
} from '../../wire/mobileip.js';

/** How registration messages leave and reach the mobile node. */
export interface RegistrationTransport {
  /** Sends a Registration Request (the UDP payload) to the home agent with IP source `source`. */
  send(request: Uint8Array, source: string): void;
  /** Receives Registration Reply payloads; returns a function that stops it. */
  onReply(handler: (reply: Uint8Array) => void): () => void;
}

export interface RegistrationClientOptions {
  clock: Clock;
  transport: RegistrationTransport;
  homeAddress: string;
  homeAgent: string;
  /** MN-HA security association. The client keeps its own copy and zeroes it on stop(). */
  auth: MnHaKey;
  /** Lifetime asked for, seconds (default 600). */
  lifetime?: number;
  /** First retransmission timeout (default 1000 ms), doubled per attempt up to maxRetransmitMs (default 32000 ms). */
  initialRetransmitMs?: number;
  maxRetransmitMs?: number;
  /** Deregistration attempts before giving up on the HA's answer (default 4). */
  deregistrationAttempts?: number;
  /** Re-register after this fraction of the granted lifetime (default 0.8). */
  reregisterAt?: number;
  /** Ask the HA to accept reverse-tunnelled packets (T flag, RFC 3024). */
  reverseTunnel?: boolean;
  /** Error of this node's clock against true time, ms (tests: a skewed MN that must resync on 133). */
  clockErrorMs?: number;
}

export type RegistrationState = 'home' | 'registering' | 'registered' | 'deregistering' | 'denied' | 'stopped';

export type RegistrationEvent =
  | { type: 'registered'; careOf: string; lifetime: number }
  | { type: 'deregistered' }
  | { type: 'denied'; code: number }
  | { type: 'retransmit'; attempt: number; timeoutMs: number }
  | { type: 'resync'; correctionMs: number }
  | { type: 'gave_up' };

export interface RegistrationCounters {
  requests: number;
  retransmissions: number;
  replies: number;
  /** Replies that failed parsing or authentication, or answered no pending request. */
  ignoredReplies: number;
  resyncs: number;
}

/** 2^22 < 2^32/1000: random fraction bits stay below one millisecond. */
const SUB_MS_FRACTION = 1 << 22;
/** Consecutive 133 answers after which the client stops resyncing (the HA's clock keeps disagreeing). */
const MAX_CONSECUTIVE_RESYNCS = 3;

interface Pending {
  careOf: number;
  lifetime: number;
  /**
   * Every transmission of this request, by the low half of its identification: a late reply to an earlier one counts
   * too.
   */
  sent: Map<number, { identification: bigint; sentAt: number }>;
  attempt: number;
  timeoutMs: number;
  timer?: Timer;
}

export class RegistrationClient {
  private readonly clock: Clock;
  private readonly transport: RegistrationTransport;
  private readonly homeAddress: number;
  private readonly homeAgent: number;
  private readonly auth: MnHaKey;
  private readonly lifetime: number;
  private readonly initialRetransmitMs: number;
  private readonly maxRetransmitMs: number;
  private readonly deregistrationAttempts: number;
  private readonly reregisterAt: number;
  private readonly flags: number;
  private clockCorrectionMs: number;
  private lastIdentification = 0n;
  private consecutiveResyncs = 0;
  private pending?: Pending;
  private renewTimer?: Timer;
  private currentState: RegistrationState = 'home';
  private binding?: { careOf: number; lifetime: number; expiresAt: number };
  private readonly listeners = new Set<(event: RegistrationEvent) => void>();
  private readonly stopReceiving: () => void;
  private readonly stats: RegistrationCounters = {
    requests: 0,
    retransmissions: 0,
    replies: 0,
    ignoredReplies: 0,
    resyncs: 0,
  };

  constructor(options: RegistrationClientOptions) {
    this.clock = options.clock;
    this.transport = options.transport;
    this.homeAddress = ipToU32(options.homeAddress);
    this.homeAgent = ipToU32(options.homeAgent);
    this.auth = { spi: options.auth.spi, key: options.auth.key.slice() };
    this.lifetime = options.lifetime ?? 600;
    if (!Number.isInteger(this.lifetime) || this.lifetime < 1 || this.lifetime > LIFETIME_INFINITE) {
      throw new RangeError(`registration lifetime must be an integer 1..65535 seconds, got ${this.lifetime}`);
    }
    this.initialRetransmitMs = options.initialRetransmitMs ?? 1000;
    this.maxRetransmitMs = options.maxRetransmitMs ?? 32_000;
    if (!(this.initialRetransmitMs > 0) || !(this.maxRetransmitMs >= this.initialRetransmitMs)) {
      throw new RangeError(
        `retransmission timeouts need 0 < initialRetransmitMs <= maxRetransmitMs, got ${this.initialRetransmitMs} ` +
          `and ${this.maxRetransmitMs}`,
      );
    }
    this.deregistrationAttempts = options.deregistrationAttempts ?? 4;
    this.reregisterAt = options.reregisterAt ?? 0.8;
    if (!(this.reregisterAt > 0 && this.reregisterAt < 1))
      throw new RangeError(`reregisterAt must be a fraction in (0, 1), got ${this.reregisterAt}`);
    this.flags = RequestFlag.D | (options.reverseTunnel ? RequestFlag.T : 0);
    this.clockCorrectionMs = options.clockErrorMs ?? 0;
    this.stopReceiving = this.transport.onReply((reply) => this.handleReply(reply));
  }

  get state(): RegistrationState {
    return this.currentState;
  }

  /** The binding the HA granted: care-of address, lifetime (s), local expiry time (ms). */
  get registration(): { careOf: string; lifetime: number; expiresAt: number } | undefined {
    return (
      this.binding && {
        careOf: u32ToIp(this.binding.careOf),
        lifetime: this.binding.lifetime,
        expiresAt: this.binding.expiresAt,
      }
    );
  }

  counters(): RegistrationCounters {
    return { ...this.stats };
  }

  on(listener: (event: RegistrationEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The node is away at `careOf` (co-located): register it, and keep it registered. */
  attach(careOf: string): void {
    this.ensureRunning();
    const careOfU32 = ipToU32(careOf);
    if (careOfU32 === this.homeAddress)
      throw new Error(`care-of address ${careOf} is the home address: call returnHome() instead`);
    this.cancelTimers();
    this.currentState = 'registering';
    this.startRequest(careOfU32, this.lifetime);
  }

  /** The node is back on its home link: deregister (lifetime 0, care-of = home address), sent from the home address. */
  returnHome(): void {
    this.ensureRunning();
    this.cancelTimers();
    this.binding = undefined;
    this.currentState = 'deregistering';
    this.startRequest(this.homeAddress, 0);
  }

  /** Stops all timers and reception and zeroes the key. */
  stop(): void {
    this.cancelTimers();
    this.stopReceiving();
    this.auth.key.fill(0);
    this.currentState = 'stopped';
  }

  private ensureRunning(): void {
    if (this.currentState === 'stopped') throw new Error('registration client was stopped; create a new one');
  }

  private startRequest(careOf: number, lifetime: number): void {
    this.consecutiveResyncs = 0;
    this.pending = { careOf, lifetime, sent: new Map(), attempt: 0, timeoutMs: this.initialRetransmitMs };
    this.transmit();
  }

  /** Sends the pending request with a fresh identification and arms its retransmission timer. */
  private transmit(): void {
    const p = this.pending!;
    const identification = this.nextIdentification();
    p.sent.set(idLow(identification), { identification, sentAt: this.clock.now() });
    const request = encodeRequest(
      {
        flags: this.flags,
        lifetime: p.lifetime,
        homeAddress: this.homeAddress,
        homeAgent: this.homeAgent,
        careOf: p.careOf,
        identification,
      },
      this.auth,
    );
    this.stats.requests++;
    if (p.attempt > 0) this.stats.retransmissions++;
    this.transport.send(request, u32ToIp(p.careOf));
    p.timer = this.clock.setTimer(p.timeoutMs, () => this.onTimeout());
  }

  private onTimeout(): void {
    const p = this.pending!;
    p.attempt++;
    if (p.lifetime === 0 && p.attempt >= this.deregistrationAttempts) {
      // Home already: the HA's binding will expire on its own if it never heard us.
      this.pending = undefined;
      this.currentState = 'home';
      this.emit({ type: 'gave_up' });
      return;
    }
    p.timeoutMs = Math.min(p.timeoutMs * 2, this.maxRetransmitMs);
    this.emit({ type: 'retransmit', attempt: p.attempt, timeoutMs: p.timeoutMs });
    this.transmit();
  }

  /**
   * NTP timestamp from the (corrected) local clock, strictly above any identification sent
   * before. The clock has millisecond resolution, so the fraction's low 22 bits are random
   * (RFC 5944 §5.7), which keeps the reply-matching low half unpredictable.
   */
  private nextIdentification(): bigint {
    let id = ntpFromUnixMs(this.clock.now() + this.clockCorrectionMs) | BigInt(randomInt(SUB_MS_FRACTION));
    if (id <= this.lastIdentification) id = this.lastIdentification + 1n;
    this.lastIdentification = id;
    return id;
  }

  private handleReply(bytes: Uint8Array): void {
    const parsed = decodeReply(bytes);
    const p = this.pending;
    // RFC 5944 §5.7: the low half must echo one of the pending request's, before anything else is believed.
    const answered = parsed.ok ? p?.sent.get(idLow(parsed.message.identification)) : undefined;
    if (
      !parsed.ok ||
      !p ||
      !answered ||
      parsed.message.homeAddress !== this.homeAddress ||
      !verifyMnHaAuth(bytes, parsed.mnHaAuth, this.auth).ok
    ) {
      this.stats.ignoredReplies++;
      return;
    }
    const reply = parsed.message;
    this.stats.replies++;
    if (reply.code === ReplyCode.ID_MISMATCH && this.consecutiveResyncs < MAX_CONSECUTIVE_RESYNCS) {
      this.consecutiveResyncs++;
      this.stats.resyncs++;
      const correctionMs = (idHigh(reply.identification) - idHigh(answered.identification)) * 1000;
      this.clockCorrectionMs += correctionMs;
      this.emit({ type: 'resync', correctionMs });
      p.timer?.cancel();
      p.attempt = 0;
      p.timeoutMs = this.initialRetransmitMs;
      this.transmit();
      return;
    }
    p.timer?.cancel();
    this.pending = undefined;
    if (!isAccepted(reply.code)) {
      this.currentState = 'denied';
      this.binding = undefined;
      this.emit({ type: 'denied', code: reply.code });
      return;
    }
    if (p.lifetime === 0) {
      this.currentState = 'home';
      this.emit({ type: 'deregistered' });
      return;
    }
    if (reply.lifetime === 0) {
      // "Accepted" for no time at all registers nothing; retrying at once would only loop.
      this.currentState = 'denied';
      this.binding = undefined;
      this.emit({ type: 'denied', code: reply.code });
      return;
    }
    // The MN counts the lifetime from when the answered request left, not from the reply (RFC 5944).
    const lifetime = Math.min(reply.lifetime, p.lifetime);
    this.binding = { careOf: p.careOf, lifetime, expiresAt: answered.sentAt + lifetime * 1000 };
    this.currentState = 'registered';
    if (lifetime !== LIFETIME_INFINITE) {
      const renewAt = answered.sentAt + lifetime * 1000 * this.reregisterAt;
      this.renewTimer = this.clock.setTimer(Math.max(0, renewAt - this.clock.now()), () => {
        this.currentState = 'registering';
        this.startRequest(p.careOf, this.lifetime);
      });
    }
    this.emit({ type: 'registered', careOf: u32ToIp(p.careOf), lifetime });
  }

  private cancelTimers(): void {
    this.pending?.timer?.cancel();
    this.pending = undefined;
    this.renewTimer?.cancel();
    this.renewTimer = undefined;
  }

  private emit(event: RegistrationEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }
}
