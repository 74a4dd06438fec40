// SKIP zero-message keying (DESIGN §3): turns a peer's certificate and a counter n into the
// engine's SAs (src/engine/types.ts). The sender picks a random Kp per SA, wraps it under Kijn
// into the SKIP header; the receiver unwraps it from the first packet and derives the same keys.
import { randomFillSync } from 'node:crypto';
import { digest52, nodeSha256, type Sha256 } from './digest52.js';
import { sodium } from './sodium.js';
import { LruMap, type CertCache } from './cache.js';
import type { Identity } from './keyfile.js';
import { formatName, type SkipName } from './names.js';
import {
  counterInWindow,
  deriveKij,
  deriveKijn,
  KP_BYTES,
  skipCounter,
  packetKeys,
  SKIP_COUNTER_SECONDS,
  SKIP_EPOCH_UNIX,
  trafficKey,
  wrapKp,
  COUNTER_WINDOW,
  type PacketKeyDerivation,
  type PacketKeys,
} from './derive.js';
import { KEY_BYTES, SkipAlg, type Coverage, type EspSuite, type MacAlg } from '../wire/algorithms.js';
import type { SaDesc } from './sa.js';
import { decodeSkipHeader, encodeSkipHeader, NSID_IPV4, NSID_NONE, SKIP_SPI, type SkipHeader } from '../wire/skip.js';
import { ipToU32, isIpv4, u32ToIp } from '../wire/addr.js';

const IPPROTO_AH = 51;
const IPPROTO_ESP = 50;
const KIJ_ALG = SkipAlg.kij['aes256-kw'];
const suiteOfCryptAlg = new Map(Object.entries(SkipAlg.crypt).map(([suite, id]) => [id, suite as EspSuite]));
const macOfMacAlg = new Map(Object.entries(SkipAlg.mac).map(([mac, id]) => [id, mac as MacAlg]));

/** Packets an outbound SA carries before its Kp is replaced (SKIP §2.2 asks for a change every 10 MB or 2 minutes). */
export const DEFAULT_KP_MAX_PACKETS = 1 << 20;
/** The most packets an outbound SA seals between its soft limit (a new Kp is installed) and its hard limit. */
export const MAX_KP_ROTATION_HEADROOM = 1 << 16;

/**
 * Where an outbound SA with a hard limit of `maxPackets` asks for its successor (SaDesc.softPackets): a quarter of the
 * limit early, at most MAX_KP_ROTATION_HEADROOM packets (half a second of a 1.5 Gbit/s stream), so the control plane
 * installs the next Kp while the old one keeps sealing. Undefined for a limit of 1: that key rotates on the punt.
 */
export function kpSoftLimit(maxPackets: number): number | undefined {
  if (maxPackets < 2) return undefined;
  return maxPackets - Math.min(Math.ceil(maxPackets / 4), MAX_KP_ROTATION_HEADROOM);
}
export const DEFAULT_MAX_INBOUND_SAS = 65536;

export interface SkipKeyingOptions {
  identity: Identity;
  /** Verified peer certificates; inbound and outbound keying read it, never fill it. */
  certs: CertCache;
  /** A new Kp (and SA) once an outbound SA has carried this many packets. */
  kpMaxPackets?: number;
  /** Bound on remembered inbound SAs (each needs a real peer's Kijn, but a peer may churn Kps). */
  maxInboundSas?: number;
  /** Unix seconds; default: the system clock. */
  now?: () => number;
  /**
   * Source of Kp bytes; default the OS CSPRNG through node:crypto (libsodium-wrappers' randombytes_buf fetches its
   * bytes a few at a time and cost 1.3 ms per Kp, most of a new key's time). Tests inject fixed bytes.
   */
  random?: (length: number) => Uint8Array;
  /** Peers whose Kij (and Kijn for the counters in use) are cached (X25519 per peer is the expensive step). */
  kijCacheSize?: number;
  /**
   * Kp and its traffic keys from a received SKIP header; default derive.ts packetKeys (node:crypto, libsodium). The
   * roles pass the engine addon's (src/engine/addon.ts nativePacketKeys): one call on a new key's first packet.
   */
  packetKeys?: PacketKeyDerivation;
  /** SHA-256 for the digests of retired key tuples; default node:crypto. The roles pass the addon's. */
  sha256?: Sha256;
  /**
   * TEST RUNS ONLY (`mipsec lab --pcap DIR --key-chain`, docs/security.md): called with each new SA and the Kij and
   * Kp it came from, before they are zeroed (copy what you keep), so an independent tool can check the wrapped Kp.
   */
  keyChain?: KeyChainSink;
}

/** What checks a wrapped Kp on the wire: Kijn = H(Kij | n | 0x00) unwraps it to Kp (docs/skip-keying.md §2). */
export interface KeyChain {
  kij: Uint8Array;
  n: number;
  kp: Uint8Array;
}
export type KeyChainSink = (sa: SaDesc, chain: KeyChain) => void;

export interface OutboundRequest {
  /** The peer's SKIP name: its certificate in the cache gives its public key. */
  peer: SkipName;
  /** Outer tunnel addresses (for an SMN peer, dst is its care-of address). */
  src: string;
  dst: string;
  role: 'end' | 'nexthop';
  /** role end: required. */
  esp?: EspSuite;
  /** role nexthop: required; role end: optional (the draft-faithful AH in front of ESP). */
  ah?: MacAlg;
  coverage?: Coverage;
  ttl?: number;
}

export interface InboundRequest {
  /** Bytes holding the SKIP header at `offset` (it may be a whole packet). */
  packet: Uint8Array;
  offset?: number;
  /** Outer IPv4 source (names the peer when the SKIP source NSID is 0) and destination. */
  src: string;
  dst: string;
  /** Next-hop layers: the coverage this node's policy expects (the SKIP header does not carry it). */
  coverage?: Coverage;
  replayWindow?: number;
}

export type KeyingFailure =
  | 'truncated'
  | 'bad_skip'
  | 'unknown_nsid'
  | 'unknown_alg'
  | 'bad_address'
  | 'bad_dst_mkid'
  | 'counter_window'
  | 'unknown_certificate'
  | 'expired_certificate'
  | 'certificate_not_yet_valid'
  | 'bad_peer_key'
  | 'forged_key'
  | 'sa_mismatch'
  | 'too_many_sas'
  | 'retired_key';

export type KeyingResult =
  /** A new SA to install; `retire` is the SA it replaces (remove it once the new one is installed). */
  | { ok: true; created: true; sa: SaDesc; retire?: number }
  /** The SA for this request is already handed out. */
  | { ok: true; created: false; id: number }
  | { ok: false; reason: KeyingFailure; message: string };

/** A peer's pairwise keys: Kij, and Kijn for the few counters n in use (the current hour and its neighbours). */
interface PeerKeys {
  kij: Uint8Array;
  kijns: Map<number, Uint8Array>;
}
/** Kijn kept per peer: n − 1, n and n + 1 are all a receiver accepts (COUNTER_WINDOW). */
const KIJNS_PER_PEER = 2 * COUNTER_WINDOW + 1;
/** Retired key tuples remembered: at 64 per peer a few dozen busy peers' rotations within the window. */
const RETIRED_KEYS = 4096;

/**
 * A retired key tuple is held as digest52 of its key (peer, n, Kij alg, wrapped Kp): a long string per tuple (≈ 400
 * bytes of heap with its parts) made 4,096 of them 1.7 MB, reached within 25 min of a Kp rotation every 50,000 packets.
 * A chance collision (2^-52 per pair) refuses that one new key as retired_key, as a replay would be; only a holder of
 * Kijn mints a tuple that unwraps, so a forger gains nothing from one.
 */

function forgetPeerKeys(keys: PeerKeys): void {
  sodium.memzero(keys.kij);
  for (const kijn of keys.kijns.values()) sodium.memzero(kijn);
  keys.kijns.clear();
}

interface OutboundSlot {
  id: number;
  n: number;
}

interface InboundEntry {
  id: number;
  n: number;
  cryptAlg: number;
  macAlg: number;
}

const fail = (reason: KeyingFailure, message: string): KeyingResult => ({ ok: false, reason, message });

/** Zeroes the key bytes of an SA description once the engine holds its own copy. */
export function wipeSaKeys(sa: SaDesc): void {
  if (sa.ah) sodium.memzero(sa.ah.key);
  if (sa.esp) sodium.memzero(sa.esp.key);
}

export class SkipKeying {
  private readonly identity: Identity;
  private readonly certs: CertCache;
  private readonly kpMaxPackets: number;
  /** Packets after which outboundSa takes a new Kp (kpSoftLimit), before the engine's hard limit stops the SA. */
  private readonly kpSoftPackets: number | undefined;
  private readonly maxInboundSas: number;
  /** Unix seconds (the keying's clock: n and certificate validity are read on it). */
  readonly now: () => number;
  private readonly random: (length: number) => Uint8Array;
  private readonly keyChain: KeyChainSink | undefined;
  private readonly packetKeys: PacketKeyDerivation;
  private readonly sha256: Sha256;
  /** Kij and Kijns per (peer name, peer public key), zeroed when evicted. */
  private readonly peerKeys: LruMap<string, PeerKeys>;
  private readonly outbound = new Map<string, OutboundSlot>();
  private readonly inbound = new Map<string, InboundEntry>();
  /**
   * Key tuples of retired inbound SAs and their n: refused until n leaves the window, so a retired key never comes
   * back with a fresh replay window. At most RETIRED_KEYS, oldest forgotten first.
   */
  private readonly retired = new Map<number, number>();
  private readonly usedIds = new Set<number>();
  private lastId = 0;

  constructor(options: SkipKeyingOptions) {
    this.identity = options.identity;
    this.certs = options.certs;
    this.kpMaxPackets = options.kpMaxPackets ?? DEFAULT_KP_MAX_PACKETS;
    this.maxInboundSas = options.maxInboundSas ?? DEFAULT_MAX_INBOUND_SAS;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.random = options.random ?? ((length) => randomFillSync(new Uint8Array(length)));
    this.keyChain = options.keyChain;
    this.packetKeys = options.packetKeys ?? packetKeys;
    this.sha256 = options.sha256 ?? nodeSha256;
    this.peerKeys = new LruMap(options.kijCacheSize ?? 1024, (_key, keys) => forgetPeerKeys(keys));
    if (!Number.isInteger(this.kpMaxPackets) || this.kpMaxPackets < 1)
      throw new RangeError(`kpMaxPackets must be a positive integer, got ${this.kpMaxPackets}`);
    this.kpSoftPackets = kpSoftLimit(this.kpMaxPackets);
  }

  /** This node's counter n now. */
  counter(): number {
    return skipCounter(this.now());
  }

  /**
   * The outbound SA towards `req.peer`. A new one (new Kp) when there is none yet, when n has
   * moved on, or when the current one has carried `packetsSent` packets up to its soft limit
   * (kpSoftLimit of kpMaxPackets; kpMaxPackets itself for a limit of 1).
   */
  outboundSa(req: OutboundRequest, packetsSent = 0): KeyingResult {
    const { crypt, mac } = this.checkRequest(req);
    const slotKey = [formatName(req.peer), req.role, req.esp, req.ah, req.coverage, req.src, req.dst, req.ttl].join(
      '|',
    );
    const n = this.counter();
    const slot = this.outbound.get(slotKey);
    if (slot && slot.n === n && packetsSent < (this.kpSoftPackets ?? this.kpMaxPackets))
      return { ok: true, created: false, id: slot.id };

    const kijn = this.kijnFor(req.peer, n);
    if (!kijn.ok) return kijn;
    const kp = this.random(KP_BYTES);
    if (kp.length !== KP_BYTES)
      throw new RangeError(`the random source returned ${kp.length} bytes, Kp needs ${KP_BYTES}`);
    const own = this.identity.name;
    const header: SkipHeader = {
      srcNsid: own.nsid,
      dstNsid: req.peer.nsid,
      nextHeader: req.ah ? IPPROTO_AH : IPPROTO_ESP,
      n,
      kijAlg: KIJ_ALG,
      cryptAlg: crypt,
      macAlg: mac,
      compAlg: 0,
      wrappedKp: wrapKp(kijn.kijn, kp),
      srcMkid: own.nsid === NSID_IPV4 ? own.address : undefined,
      dstMkid: req.peer.nsid === NSID_IPV4 ? req.peer.address : undefined,
    };
    const sa: SaDesc = {
      id: this.allocateId(),
      direction: 'out',
      role: req.role,
      mode: 'skip',
      src: req.src,
      dst: req.dst,
      skipHeader: encodeSkipHeader(header),
      ...saKeys(trafficKeys(kp, req), req, req.role === 'nexthop' ? (req.coverage ?? 'full') : undefined),
      // The engine tells the control plane when the next Kp is due (FORWARD rekey_due), and stops sealing with this
      // one at the hard limit (PUNT rekey) should the successor not be in place by then.
      maxPackets: this.kpMaxPackets,
    };
    if (this.kpSoftPackets !== undefined) sa.softPackets = this.kpSoftPackets;
    this.keyChain?.(sa, { kij: kijn.kij, n, kp });
    sodium.memzero(kp);
    if (req.ttl !== undefined) sa.ttl = req.ttl;
    this.outbound.set(slotKey, { id: sa.id, n });
    if (slot) this.usedIds.delete(slot.id);
    return slot ? { ok: true, created: true, sa, retire: slot.id } : { ok: true, created: true, sa };
  }

  /**
   * The inbound SA for a received SKIP header (the engine punted `unknown_key`). Never throws on
   * what the packet holds: every problem is a typed reason.
   */
  inboundSa(req: InboundRequest): KeyingResult {
    const offset = req.offset ?? 0;
    const parsed = decodeSkipHeader(req.packet, offset);
    if (!parsed.ok) return fail(parsed.reason, `SKIP header rejected: ${parsed.reason}`);
    const h = parsed.header;
    if (!isIpv4(req.src) || !isIpv4(req.dst))
      return fail('bad_address', `outer addresses must be dotted IPv4, got src '${req.src}' dst '${req.dst}'`);

    const own = this.identity.name;
    const forUs =
      own.nsid === NSID_NONE ? h.dstNsid === NSID_NONE : h.dstNsid === NSID_IPV4 && h.dstMkid === own.address;
    if (!forUs)
      return fail(
        'bad_dst_mkid',
        `SKIP destination (NSID ${h.dstNsid}${h.dstMkid === undefined ? '' : ` MKID ${u32ToIp(h.dstMkid)}`}) is not ` +
          `${formatName(own)}`,
      );

    const localN = this.counter();
    if (!counterInWindow(h.n, localN))
      return fail(
        'counter_window',
        `SKIP counter n=${h.n} is outside ${localN}±${COUNTER_WINDOW} (clock skew or replay)`,
      );

    const layer = layerOf(h);
    if (!layer)
      return fail(
        'bad_skip',
        `SKIP next header ${h.nextHeader} does not fit crypt alg ${h.cryptAlg} / MAC alg ${h.macAlg}`,
      );

    const peer: SkipName =
      h.srcNsid === NSID_IPV4
        ? { nsid: NSID_IPV4, address: h.srcMkid! }
        : { nsid: NSID_NONE, address: ipToU32(req.src) };
    // The engine's key tuple (docs/engine.md §4.1): one SA per tuple, whatever algorithms a copy claims.
    const tupleKey = tupleKeyOf(peer, h);
    if (this.retired.size > 0 && this.retired.has(digest52(tupleKey, this.sha256)))
      return fail(
        'retired_key',
        `SKIP key from ${formatName(peer)} was retired (superseded by a newer key); it does not come back`,
      );
    const known = this.inbound.get(tupleKey);
    if (known && (known.cryptAlg !== h.cryptAlg || known.macAlg !== h.macAlg)) {
      return fail(
        'sa_mismatch',
        `SKIP key tuple from ${formatName(peer)} already keyed with crypt alg ${known.cryptAlg} / MAC alg ` +
          `${known.macAlg}`,
      );
    }
    if (known) return { ok: true, created: false, id: known.id };
    if (this.inbound.size >= this.maxInboundSas)
      return fail('too_many_sas', `already ${this.inbound.size} inbound SKIP SAs; expire() old ones first`);

    const kijn = this.kijnFor(peer, h.n);
    if (!kijn.ok) return kijn;
    const keys = this.packetKeys(
      kijn.kijn,
      h.wrappedKp,
      layer.esp && { alg: h.cryptAlg, length: KEY_BYTES[layer.esp] },
      layer.ah && { alg: h.macAlg, length: KEY_BYTES[layer.ah] },
    );
    if (!keys)
      return fail(
        'forged_key',
        `wrapped Kp from ${formatName(peer)} fails the key-wrap integrity check (forged key, or another Kij)`,
      );

    const sa: SaDesc = {
      id: this.allocateId(),
      direction: 'in',
      role: layer.role,
      mode: 'skip',
      src: req.src,
      dst: req.dst,
      skipHeader: req.packet.slice(offset, offset + parsed.length),
      ...saKeys(keys, layer, layer.role === 'nexthop' ? (req.coverage ?? 'full') : undefined),
    };
    this.keyChain?.(sa, { kij: kijn.kij, n: h.n, kp: keys.kp });
    sodium.memzero(keys.kp);
    if (req.replayWindow !== undefined) sa.replayWindow = req.replayWindow;
    this.inbound.set(tupleKey, { id: sa.id, n: h.n, cryptAlg: h.cryptAlg, macAlg: h.macAlg });
    return { ok: true, created: true, sa };
  }

  /**
   * Kijn of `peer` for every counter in the window (an engine keys that peer's successor keys with them), and the
   * unix second the window moves; undefined when its certificate is not usable now.
   */
  windowKijns(
    peer: SkipName,
  ): { kijns: { n: number; kijn: Uint8Array }[]; windowStart: number; validUntil: number } | undefined {
    const localN = this.counter();
    const kijns: { n: number; kijn: Uint8Array }[] = [];
    for (let n = localN - COUNTER_WINDOW; n <= localN + COUNTER_WINDOW; n++) {
      const k = this.kijnFor(peer, n);
      if (!k.ok) return undefined;
      kijns.push({ n, kijn: k.kijn });
    }
    const validUntil = SKIP_EPOCH_UNIX + (localN + 1) * SKIP_COUNTER_SECONDS;
    return { kijns, windowStart: localN - COUNTER_WINDOW, validUntil };
  }

  /** `count` fresh SA ids, held as used until forgotten (an engine gives them to the SAs it keys). */
  reserveIds(count: number): number[] {
    return Array.from({ length: count }, () => this.allocateId());
  }

  /** Frees ids reserveIds() gave that no SA took. */
  releaseIds(ids: readonly number[]): void {
    for (const id of ids) this.usedIds.delete(id);
  }

  /**
   * Records inbound SA `id`, which the engine keyed from `skipHeader` sent by `peer` (a reserved id), as if
   * inboundSa() had made it: its key tuple is then known, retired and expired like the others. False when the header
   * does not parse or the tuple is already known.
   */
  adoptInbound(peer: SkipName, skipHeader: Uint8Array, id: number): boolean {
    const parsed = decodeSkipHeader(skipHeader, 0);
    if (!parsed.ok) return false;
    const h = parsed.header;
    const tupleKey = tupleKeyOf(peer, h);
    if (this.inbound.has(tupleKey)) return false;
    this.usedIds.add(id);
    this.inbound.set(tupleKey, { id, n: h.n, cryptAlg: h.cryptAlg, macAlg: h.macAlg });
    return true;
  }

  /** Forgets the inbound SA `id` (its key tuple keys afresh if it comes again); no-op for an unknown id. */
  forgetInbound(id: number): void {
    for (const [key, entry] of this.inbound) {
      if (entry.id !== id) continue;
      this.inbound.delete(key);
      this.usedIds.delete(id);
      return;
    }
  }

  /** Forgets the inbound SA `id` for good: its key tuple is refused as `retired_key` while its n is in the window. */
  retireInbound(id: number): void {
    for (const [key, entry] of this.inbound) {
      if (entry.id !== id) continue;
      this.inbound.delete(key);
      this.usedIds.delete(id);
      this.retired.set(digest52(key, this.sha256), entry.n);
      if (this.retired.size > RETIRED_KEYS) this.retired.delete(this.retired.keys().next().value!);
      return;
    }
  }

  /**
   * Forgets the SAs whose counter has left the window (inbound: n < local n − 1; outbound: n <
   * local n − 1, i.e. not renewed by outboundSa). Returns their ids for engine.removeSa.
   */
  expire(): number[] {
    const localN = this.counter();
    const gone: number[] = [];
    for (const [key, n] of this.retired) if (n < localN - COUNTER_WINDOW) this.retired.delete(key);
    for (const table of [this.inbound, this.outbound]) {
      for (const [key, entry] of table) {
        if (entry.n < localN - COUNTER_WINDOW) {
          table.delete(key);
          this.usedIds.delete(entry.id);
          gone.push(entry.id);
        }
      }
    }
    return gone;
  }

  /** Zeroes every cached Kij and this node's secret key; the object is unusable afterwards. */
  close(): void {
    this.peerKeys.clear();
    sodium.memzero(this.identity.secretKey);
    this.outbound.clear();
    this.inbound.clear();
  }

  private checkRequest(req: OutboundRequest): { crypt: number; mac: number } {
    if (req.role === 'end' && !req.esp)
      throw new RangeError('an end SA needs esp (aes128gcm, aes256gcm or chacha20poly1305)');
    if (req.role === 'nexthop' && (!req.ah || req.esp))
      throw new RangeError('a nexthop SA needs ah (gmac-aes128 or hmac-sha256-128) and no esp');
    if (!isIpv4(req.src) || !isIpv4(req.dst))
      throw new RangeError(`outer addresses must be dotted IPv4, got src '${req.src}' dst '${req.dst}'`);
    const crypt = req.esp ? SkipAlg.crypt[req.esp] : 0;
    const mac = req.ah ? SkipAlg.mac[req.ah] : 0;
    if (crypt === undefined || mac === undefined) throw new RangeError(`unknown algorithm esp=${req.esp} ah=${req.ah}`);
    return { crypt, mac };
  }

  /**
   * Kijn of `peer` for counter `n` (and the Kij it comes from, for a test run's key chain): Kij from the cache (else
   * one X25519), Kijn from the cache (else one hash).
   */
  private kijnFor(
    peer: SkipName,
    n: number,
  ): { ok: true; kij: Uint8Array; kijn: Uint8Array } | Extract<KeyingResult, { ok: false }> {
    const found = this.certs.lookup(peer, this.now());
    if (!found.ok)
      return {
        ok: false,
        reason: found.reason,
        message: `no usable certificate for ${formatName(peer)}: ${found.reason.replaceAll('_', ' ')}`,
      };
    const peerKey = found.cert.publicKey;
    const cacheKey = `${formatName(peer)}|${Buffer.from(peerKey).toString('hex')}`;
    let keys = this.peerKeys.get(cacheKey);
    if (!keys) {
      const kij = deriveKij(this.identity.secretKey, this.identity.publicKey, peerKey);
      if (!kij)
        return {
          ok: false,
          reason: 'bad_peer_key',
          message: `the certified key of ${formatName(peer)} is a low-order point`,
        };
      keys = { kij, kijns: new Map() };
      this.peerKeys.set(cacheKey, keys);
    }
    let kijn = keys.kijns.get(n);
    if (!kijn) {
      kijn = deriveKijn(keys.kij, n);
      keys.kijns.set(n, kijn);
      // Counters advance with the hour: drop the first cached (a cache: a miss costs one hash, never a key).
      if (keys.kijns.size > KIJNS_PER_PEER) {
        const [oldest, bytes] = keys.kijns.entries().next().value!;
        sodium.memzero(bytes);
        keys.kijns.delete(oldest);
      }
    }
    return { ok: true, kij: keys.kij, kijn };
  }

  /** A u32 id > 0 not held by any live SA of this object. */
  private allocateId(): number {
    do {
      this.lastId = this.lastId >= 0xffffffff ? 1 : this.lastId + 1;
    } while (this.usedIds.has(this.lastId));
    this.usedIds.add(this.lastId);
    return this.lastId;
  }
}

/** The engine's key tuple (docs/engine.md §4.1) as this object's maps key it. */
function tupleKeyOf(peer: SkipName, h: SkipHeader): string {
  return `${formatName(peer)}|${h.n}|${h.kijAlg}|${Buffer.from(h.wrappedKp).toString('hex')}`;
}

/** E_kp and A_kp of a Kp this end made, for the layer it seals. */
function trafficKeys(kp: Uint8Array, layer: { esp?: EspSuite; ah?: MacAlg }): Pick<PacketKeys, 'crypt' | 'mac'> {
  const { esp, ah } = layer;
  return {
    ...(esp && { crypt: trafficKey(kp, SkipAlg.crypt[esp], 'crypt', KEY_BYTES[esp]) }),
    ...(ah && { mac: trafficKey(kp, SkipAlg.mac[ah], 'mac', KEY_BYTES[ah]) }),
  };
}

/** An SA's ah and esp from its traffic keys: SKIP_SPI, and the coverage of a next-hop AH. */
function saKeys(
  keys: Pick<PacketKeys, 'crypt' | 'mac'>,
  layer: { esp?: EspSuite; ah?: MacAlg },
  coverage: Coverage | undefined,
): Pick<SaDesc, 'ah' | 'esp'> {
  const sa: Pick<SaDesc, 'ah' | 'esp'> = {};
  if (layer.ah && keys.mac) {
    sa.ah = { alg: layer.ah, key: keys.mac, spi: SKIP_SPI };
    if (coverage) sa.ah.coverage = coverage;
  }
  if (layer.esp && keys.crypt) sa.esp = { suite: layer.esp, key: keys.crypt, spi: SKIP_SPI };
  return sa;
}

/** Which layer a SKIP header announces: an end layer has a Crypt Alg, a next-hop layer only a MAC Alg. */
function layerOf(h: SkipHeader): { role: 'end' | 'nexthop'; esp?: EspSuite; ah?: MacAlg } | undefined {
  const esp = suiteOfCryptAlg.get(h.cryptAlg);
  const ah = macOfMacAlg.get(h.macAlg);
  if (h.kijAlg !== KIJ_ALG || h.compAlg !== 0) return undefined;
  if (esp) return h.nextHeader === (ah ? IPPROTO_AH : IPPROTO_ESP) ? { role: 'end', esp, ah } : undefined;
  return ah && h.nextHeader === IPPROTO_AH ? { role: 'nexthop', ah } : undefined;
}
