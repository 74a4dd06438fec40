// A node's SKIP keying bound to its engine: outbound SAs on demand, inbound SAs from punted
// headers, each installed once, its keys wiped from JS memory right after, and what each SA id
// means to the role (peer, layer, outer addresses) remembered for policy decisions. Inbound SAs are
// bounded per peer (a new packet key replaces the peer's oldest: SKIP rotates Kp by packet count, so a
// busy peer reaches the bound within the hour's n) and capped overall: each costs a punted packet and an
// install, and a peer may mint packet keys at will (issue 10 hole 11).
import { nativePacketKeys, nativeSha256 } from '../../engine/addon.js';
import { NO_SUCCESSORS } from '../../engine/successors.js';
import type { Engine, PlainDatagrams, SaDesc, SelectorMiss, Selectors, SuccessorPeer } from '../../engine/types.js';
import type { CertCache } from '../../keys/cache.js';
import type { Identity } from '../../keys/keyfile.js';
import { SkipKeying, wipeSaKeys, type KeyingFailure, type OutboundRequest } from '../../keys/keying.js';
import type { SkipName } from '../../keys/names.js';
import { ipToU32, readIp, u32ToIp } from '../../wire/addr.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import type { KeyLog } from './keylog.js';

export interface SaMeta {
  peer: SkipName;
  role: 'end' | 'nexthop';
  direction: 'in' | 'out';
  /** Outer addresses: for an inbound SA from an SMN, src is its care-of address. */
  src: string;
  dst: string;
  /** Out SAs in SKIP mode: what starts each packet they seal after the outer IPv4 header (a quote names it). */
  head?: { skipHeader: Uint8Array; firstProtocol: number; spi: number };
}

/** Why no SA: a keying failure, or an inbound cap reached (counted by the roles as drop_keying_<reason>). */
export type SaFailure = KeyingFailure | 'sa_limit_total';
export type SaLookup = { ok: true; id: number } | { ok: false; reason: SaFailure; message: string };

/** Inbound SAs one peer (SKIP name) may hold: 64 packet keys, far above what a peer rotating Kp needs. */
export const DEFAULT_MAX_INBOUND_PER_PEER = 64;
/** Inbound SAs in all (the engine's SA ids and memory stay bounded). */
export const DEFAULT_MAX_INBOUND = 65536;

/** Ids the engine holds for successor keys at a time: far above the new keys a peer opens between two syncs. */
export const SUCCESSOR_IDS = 16;

/** Sequence numbers back from an SA's last one that a failure message may quote (packets the engine sealed alone). */
export const QUOTABLE_SEQS = 4096;
/**
 * An inbound SA a newer packet key of the same peer and path superseded is retired once it has carried nothing for
 * this long (seconds): a peer seals with one key per path, so only reordered stragglers can still use the old one.
 */
export const SUPERSEDED_IDLE_SECONDS = 5;

export interface SaLimits {
  maxInboundPerPeer?: number;
  maxInbound?: number;
}

/**
 * What an inbound End-End SA from `peer` may deliver by itself (docs/engine.md §4 selectors): the engine (and the I/O
 * loop, without JS) delivers only inside them and punts the rest (`selectorMiss: 'punt'`) to the role's policy.
 */
/** `local`: the SA's own (outer destination) address. */
export type SelectorsFor = (peer: SkipName, local: string) => Selectors;
/**
 * What such an SA does with what lies outside its selectors (default 'punt'): an SGW's §3.3 re-encryption sends it
 * through an outbound policy table instead (`{ outbound: table }`), whose protect policies seal it without JS.
 */
export type SelectorMissFor = (peer: SkipName) => SelectorMiss;
/**
 * What an inbound Next-hop SA from `peer`, keyed by a packet from outer source `src`, does with the plain datagrams
 * its layer protects (docs/engine.md §4 `plain`): undefined (the default) punts every one to the role's policy.
 */
export type PlainFor = (peer: SkipName, src: string) => PlainDatagrams | undefined;

/** What a role keys with: its identity and certificates, its clock, its Kp rotation and key log. */
export interface RoleKeyingOptions {
  identity: Identity;
  certs: CertCache;
  /** Unix ms (the role's clock). */
  now: () => number;
  kpRotationPackets?: number;
  keyLog?: KeyLog;
}

/**
 * A role's SKIP keying: a received Kp and its traffic keys derived by the engine addon when there is one (a new key's
 * first packet waits on it).
 */
export function roleKeying(o: RoleKeyingOptions): SkipKeying {
  return new SkipKeying({
    identity: o.identity,
    certs: o.certs,
    now: () => Math.floor(o.now() / 1000),
    kpMaxPackets: o.kpRotationPackets,
    keyChain: o.keyLog?.keyChainSink,
    packetKeys: nativePacketKeys(),
    sha256: nativeSha256(),
  });
}

const peerKey = (peer: SkipName): string => `${peer.nsid}/${peer.address}`;
type OutKeyFields = Pick<OutboundRequest, 'role' | 'src' | 'dst' | 'peer'>;
const outKey = (req: OutKeyFields): string => `${req.role}|${req.src}|${req.dst}|${peerKey(req.peer)}`;

export class NodeKeys {
  private readonly metas = new Map<number, SaMeta>();
  /** Outbound SA id per request (role, outer addresses, peer): found without a scan. */
  private readonly outIds = new Map<string, number>();
  /** Inbound SAs installed per peer. */
  private readonly inboundPerPeer = new Map<string, number>();
  /** Inbound SA ids per peer, oldest first: a peer at its cap replaces its oldest packet key. */
  private readonly inboundOrder = new Map<string, number[]>();
  private inboundCount = 0;
  /** Outbound SAs their receiver can no longer use (spend()): the next outbound() for them takes a fresh Kp. */
  private readonly spent = new Set<number>();
  /** Inbound SAs replaced by a newer packet key of the same peer at its cap. */
  evictedInbound = 0;
  /** Inbound SAs retired after a newer key of the same peer and path left them idle (SUPERSEDED_IDLE_SECONDS). */
  retiredInbound = 0;
  /** Superseded inbound SAs: the packets they had carried when last looked at, and when (keying seconds). */
  private readonly superseded = new Map<number, { packets: bigint; since: number }>();
  private lastSweep = 0;
  /** Ids the engine may give successor keys (reserved in the keying, not taken yet). */
  private successorIds: number[] = [];
  /** What setSuccessors was last told (window, ids, peers and templates), to tell it only changes. */
  private successorsSent = '';
  /**
   * The inbound SAs a successor key may inherit from: those inbound() keyed since the last resetSuccessors(), and
   * the successors of those. A reset makes each peer's next key go through inbound() again (new settings apply).
   */
  private readonly templates = new Set<number>();
  private readonly maxInboundPerPeer: number;
  private readonly maxInbound: number;

  constructor(
    readonly keying: SkipKeying,
    private readonly engine: Engine,
    private readonly keyLog?: KeyLog,
    limits: SaLimits = {},
    private readonly selectorsFor?: SelectorsFor,
    private readonly selectorMissFor?: SelectorMissFor,
    private readonly plainFor?: PlainFor,
  ) {
    this.maxInboundPerPeer = limits.maxInboundPerPeer ?? DEFAULT_MAX_INBOUND_PER_PEER;
    this.maxInbound = limits.maxInbound ?? DEFAULT_MAX_INBOUND;
    for (const [name, value] of Object.entries({
      maxInboundPerPeer: this.maxInboundPerPeer,
      maxInbound: this.maxInbound,
    })) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
    }
  }

  /**
   * The outbound SA for `req`, installed in the engine (a fresh one when n moved on or Kp is used up). The SA it
   * replaces is removed at once, or, with `retired`, left installed and its id pushed there: a caller whose engine
   * tables name the old SA publishes the new tables first, then calls retire().
   */
  outbound(req: OutboundRequest, retired?: number[]): SaLookup {
    const current = this.outIds.get(outKey(req));
    const used = (id: number) => (this.spent.has(id) ? Infinity : Number(this.engine.saStats(id)?.packets ?? 0n));
    const sent = current === undefined ? 0 : used(current);
    const r = this.keying.outboundSa(req, sent);
    if (!r.ok) return r;
    if (!r.created) return { ok: true, id: r.id };
    this.install(r.sa, { peer: req.peer, role: req.role, direction: 'out', src: req.src, dst: req.dst });
    if (r.retire !== undefined) {
      if (retired) retired.push(r.retire);
      else this.remove(r.retire);
    }
    return { ok: true, id: r.sa.id };
  }

  /** Whether an outbound SA for `req`'s peer and path was made already (outbound() would not key a new one). */
  hasOutbound(req: OutboundRequest): boolean {
    return this.outIds.has(outKey(req));
  }

  /** The inbound SA for the SKIP layer that starts `datagram` (the engine punted it with unknown_key). */
  inbound(datagram: Uint8Array, coverage: 'full' | 'headers'): SaLookup {
    const ip = parseIpv4(datagram, 0);
    if (!ip.ok || ip.header.protocol !== IPPROTO_SKIP)
      return { ok: false, reason: 'truncated', message: 'punted packet is not an IPv4/SKIP datagram' };
    const { src, dst, headerLength } = ip.header;
    const srcText = u32ToIp(src);
    const h = decodeSkipHeader(datagram, headerLength);
    const peer: SkipName =
      h.ok && h.header.srcNsid === NSID_IPV4
        ? { nsid: NSID_IPV4, address: h.header.srcMkid! }
        : { nsid: NSID_NONE, address: src };
    // Checked before any keying work: a refused packet costs a header parse, not a Diffie-Hellman or unwrap.
    const limit = this.inboundLimit(peer);
    if (limit) return limit;
    const r = this.keying.inboundSa({
      packet: datagram,
      offset: headerLength,
      src: srcText,
      dst: u32ToIp(dst),
      coverage,
    });
    if (!r.ok) return r;
    if (!r.created) return { ok: true, id: r.id };
    this.makeRoomFor(peer);
    if (r.sa.role === 'end' && this.selectorsFor) {
      r.sa.selectors = this.selectorsFor(peer, u32ToIp(dst));
      r.sa.selectorMiss = this.selectorMissFor?.(peer) ?? 'punt';
    }
    const plain = r.sa.role === 'nexthop' ? this.plainFor?.(peer, srcText) : undefined;
    if (plain) r.sa.plain = plain;
    const meta: SaMeta = { peer, role: r.sa.role, direction: 'in', src: srcText, dst: u32ToIp(dst) };
    this.install(r.sa, meta);
    this.supersede(meta, r.sa.id);
    this.templates.add(r.sa.id);
    return { ok: true, id: r.sa.id };
  }

  /**
   * Successor keys (docs/engine.md §4.3): adopts the SAs the engine keyed since the last call (returns how many), then
   * lets it key the next packet keys of each peer with SKIP name NSID 0 (a gateway, found by outer source) that holds
   * an inbound SA — inheriting from the newest of each layer and path — with the Kijn of the window and SUCCESSOR_IDS
   * ids. Tells the engine only what changed. Off with a key log (it records each Kp, which only this side sees).
   */
  syncSuccessors(): number {
    if (this.keyLog) return 0;
    const adopted = this.adoptSuccessors();
    const peers: SuccessorPeer[] = [];
    let window: { windowStart: number; validUntil: number } | undefined;
    for (const ids of this.inboundOrder.values()) {
      const peer = this.metas.get(ids[0])?.peer;
      if (!peer || peer.nsid !== NSID_NONE) continue;
      const newest = new Map<string, number>();
      for (const id of ids) {
        const m = this.metas.get(id)!;
        if (this.templates.has(id)) newest.set(`${m.role}|${m.src}|${m.dst}`, id);
      }
      const w = newest.size > 0 ? this.keying.windowKijns(peer) : undefined;
      if (!w) continue;
      window = w;
      peers.push({ address: u32ToIp(peer.address), templates: [...newest.values()], kijns: w.kijns });
    }
    const room = Math.max(0, Math.min(SUCCESSOR_IDS, this.maxInbound - this.inboundCount));
    if (peers.length === 0 || !window) {
      if (this.successorIds.length === 0) return adopted;
      this.keying.releaseIds(this.successorIds);
      this.successorIds = [];
      this.successorsSent = '';
      this.engine.setSuccessors(NO_SUCCESSORS);
      return adopted;
    }
    // Never more ids than the overall cap leaves room for: an SA the engine keyed counts like one keyed here.
    if (this.successorIds.length < room)
      this.successorIds.push(...this.keying.reserveIds(room - this.successorIds.length));
    else this.keying.releaseIds(this.successorIds.splice(room));
    const sent = JSON.stringify([window.windowStart, this.successorIds, peers.map((p) => [p.address, p.templates])]);
    if (sent !== this.successorsSent) this.engine.setSuccessors({ ...window, ids: this.successorIds, peers });
    this.successorsSent = sent;
    return adopted;
  }

  /** The settings new inbound SAs get changed: each peer's next key goes through inbound() again. */
  resetSuccessors(): void {
    this.templates.clear();
    this.syncSuccessors();
  }

  /** Records the SAs the engine keyed as successors as if inbound() had installed them. */
  private adoptSuccessors(): number {
    let adopted = 0;
    for (const k of this.engine.takeSuccessors()) {
      this.successorIds = this.successorIds.filter((id) => id !== k.id);
      const peer: SkipName = { nsid: NSID_NONE, address: ipToU32(k.src) };
      if (!this.keying.adoptInbound(peer, k.skipHeader, k.id)) {
        // A header that does not parse or a tuple known already: nothing here could account for the SA, so it goes.
        this.engine.removeSa(k.id);
        this.keying.releaseIds([k.id]);
        continue;
      }
      this.makeRoomFor(peer);
      const meta: SaMeta = { peer, role: k.role, direction: 'in', src: k.src, dst: k.dst };
      this.metas.set(k.id, meta);
      this.countInbound(meta.peer, +1, k.id);
      this.supersede(meta, k.id);
      if (this.templates.has(k.template)) this.templates.add(k.id);
      adopted++;
    }
    return adopted;
  }

  meta(id: number): SaMeta | undefined {
    return this.metas.get(id);
  }

  /**
   * The outbound SA (of `among`, default all) that sealed the datagram a failure message quotes: the quote starts with
   * its outer addresses, its SKIP header (the wrapped Kp), its SPI and one of its last QUOTABLE_SEQS sequence
   * numbers — what only a packet it really sent carries.
   */
  quotedOutbound(quote: Uint8Array, among: Iterable<number> = this.metas.keys()): number | undefined {
    if (quote.length < 20 || quote[9] !== IPPROTO_SKIP) return undefined;
    const ihl = (quote[0] & 0x0f) * 4;
    const src = readIp(quote, 12);
    const dst = readIp(quote, 16);
    const view = new DataView(quote.buffer, quote.byteOffset, quote.byteLength);
    for (const id of among) {
      const meta = this.metas.get(id);
      const head = meta?.head;
      if (!head || ipToU32(meta.src) !== src || ipToU32(meta.dst) !== dst) continue;
      const at = ihl + head.skipHeader.length;
      const spiAt = head.firstProtocol === IpProto.AH ? at + 4 : at;
      if (quote.length < spiAt + 8) continue;
      if (!head.skipHeader.every((b, i) => quote[ihl + i] === b) || view.getUint32(spiAt) !== head.spi) continue;
      const seq = view.getUint32(spiAt + 4);
      const stats = this.engine.saStats(id);
      const last = stats ? (head.firstProtocol === IpProto.AH ? stats.ahSeq : stats.espSeq) : 0;
      if (seq >= 1 && seq <= last && last - seq < QUOTABLE_SEQS) return id;
    }
    return undefined;
  }

  /** The receiver of outbound SA `id` lost its state (it restarted): the next outbound() for it takes a fresh Kp. */
  spend(id: number): void {
    if (this.metas.get(id)?.direction === 'out') this.spent.add(id);
  }

  /** Removes an SA outbound() replaced (see its `retired`). */
  retire(id: number): void {
    this.remove(id);
  }

  /** Removes SAs whose SKIP counter left the window, and retires idle superseded ones (call once per flush; cheap). */
  expire(): void {
    for (const id of this.keying.expire()) this.remove(id);
    this.retireSuperseded();
  }

  /**
   * Once a second at most: retires the inbound SAs a newer key of the same peer and path superseded that carried
   * nothing for SUPERSEDED_IDLE_SECONDS. Without it every Kp rotation of a busy peer would hold an SA until the
   * hour's n moves on.
   */
  retireSuperseded(): void {
    const now = this.keying.now();
    if (now === this.lastSweep) return;
    this.lastSweep = now;
    for (const [id, seen] of this.superseded) {
      if (now - seen.since < SUPERSEDED_IDLE_SECONDS) continue;
      const packets = this.packets(id);
      if (packets !== seen.packets) {
        this.superseded.set(id, { packets, since: now });
        continue;
      }
      this.keying.retireInbound(id);
      this.remove(id);
      this.retiredInbound++;
    }
  }

  close(): void {
    this.keying.releaseIds(this.successorIds);
    this.successorIds = [];
    for (const id of [...this.metas.keys()]) this.remove(id);
    this.keying.close();
  }

  /**
   * A peer at its cap rotated Kp again (kpRotationPackets at line rate reaches 64 keys within the hour's n): only a
   * holder of the pairwise key mints a key that unwraps, so the new key replaces that peer's oldest, never another's.
   */
  private makeRoomFor(peer: SkipName): void {
    const held = this.inboundOrder.get(peerKey(peer)) ?? [];
    if (held.length < this.maxInboundPerPeer) return;
    const oldest = held[0];
    this.keying.retireInbound(oldest);
    this.remove(oldest);
    this.evictedInbound++;
  }

  private inboundLimit(peer: SkipName): SaLookup | undefined {
    const held = this.inboundPerPeer.get(peerKey(peer)) ?? 0;
    if (held < this.maxInboundPerPeer && this.inboundCount >= this.maxInbound) {
      return {
        ok: false,
        reason: 'sa_limit_total',
        message: `already ${this.inboundCount} inbound SAs (limit ${this.maxInbound})`,
      };
    }
    return undefined;
  }

  private install(sa: SaDesc, meta: SaMeta): void {
    if (meta.direction === 'out' && sa.skipHeader) {
      meta.head = {
        skipHeader: sa.skipHeader.slice(),
        firstProtocol: sa.ah ? IpProto.AH : IpProto.ESP,
        spi: sa.ah ? sa.ah.spi : sa.esp!.spi,
      };
    }
    this.keyLog?.record(sa);
    this.engine.installSa(sa);
    wipeSaKeys(sa);
    this.metas.set(sa.id, meta);
    if (meta.direction === 'out') this.outIds.set(outKey(meta), sa.id);
    else this.countInbound(meta.peer, +1, sa.id);
  }

  /** Marks the other inbound SAs of `meta`'s peer and path superseded by `id`. */
  private supersede(meta: SaMeta, id: number): void {
    for (const older of this.inboundOrder.get(peerKey(meta.peer)) ?? []) {
      const m = this.metas.get(older);
      if (older === id || this.superseded.has(older) || !m) continue;
      if (m.role !== meta.role || m.src !== meta.src || m.dst !== meta.dst) continue;
      this.superseded.set(older, { packets: this.packets(older), since: this.keying.now() });
    }
  }

  private packets(id: number): bigint {
    return this.engine.saStats(id)?.packets ?? 0n;
  }

  private remove(id: number): void {
    this.superseded.delete(id);
    this.templates.delete(id);
    this.engine.removeSa(id);
    this.spent.delete(id);
    const meta = this.metas.get(id);
    this.metas.delete(id);
    if (!meta) return;
    if (meta.direction === 'in') this.countInbound(meta.peer, -1, id);
    else if (this.outIds.get(outKey(meta)) === id) this.outIds.delete(outKey(meta));
  }

  private countInbound(peer: SkipName, delta: number, id: number): void {
    const key = peerKey(peer);
    const order = this.inboundOrder.get(key) ?? [];
    if (delta > 0) order.push(id);
    else order.splice(order.indexOf(id), 1);
    if (order.length > 0) this.inboundOrder.set(key, order);
    else this.inboundOrder.delete(key);
    const held = (this.inboundPerPeer.get(key) ?? 0) + delta;
    if (held > 0) this.inboundPerPeer.set(key, held);
    else this.inboundPerPeer.delete(key);
    this.inboundCount += delta;
  }
}
