// Successor keys (docs/engine.md §4.3; native/sa/successors.cc): a known peer's next SKIP packet key, keyed here.
import { createHash } from 'node:crypto';
import { digest52 } from '../../keys/digest52.js';
import { unwrapKp } from '../../keys/derive.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { NSID_NONE, type SkipHeader } from '../../wire/skip.js';
import { KEY_BYTES, SkipAlg, type KeyedSuccessor, type SaDesc, type SuccessorConfig } from '../types.js';
import type { SaState, SaTable } from './sa.js';

/** Keyed successors waiting for take() (native kMaxSuccessorEvents). */
const MAX_EVENTS = 4096;
const PURPOSE_CRYPT = 0x00;
const PURPOSE_MAC = 0x01;

interface Peer {
  templates: readonly number[];
  kijns: Map<number, Uint8Array>;
}

/** The last `length` bytes of BLAKE2b-512(kp | alg | purpose): E_kp or A_kp (docs/skip-keying.md §3). */
function trafficKey(kp: Uint8Array, alg: number, purpose: number, length: number): Uint8Array {
  const hash = createHash('blake2b512').update(kp).update(Uint8Array.of(alg, purpose)).digest();
  const key = Uint8Array.from(hash.subarray(hash.length - length));
  hash.fill(0);
  return key;
}

export class Successors {
  private config: SuccessorConfig | undefined;
  private peers = new Map<number, Peer>();
  private blocked = new Set<number>();
  private nextId = 0;
  private keyed: KeyedSuccessor[] = [];

  constructor(private readonly table: SaTable) {}

  configure(config: SuccessorConfig): void {
    this.wipe();
    this.config = { ...config, ids: [...config.ids] };
    this.peers = new Map(
      config.peers.map((p) => [
        ipToU32(p.address),
        { templates: [...p.templates], kijns: new Map(p.kijns.map(({ n, kijn }) => [n, Uint8Array.from(kijn)])) },
      ]),
    );
    this.blocked = new Set(config.blocked ?? []);
    this.nextId = 0;
    this.table.forgetTuplesBefore(config.windowStart);
  }

  /** The SA for the SKIP layer `h` (its bytes `header`) of a packet src → dst when it is a successor key. */
  key(h: SkipHeader, header: Uint8Array, src: number, dst: number): SaState | undefined {
    const c = this.config;
    if (!c || h.srcNsid !== NSID_NONE || h.kijAlg !== SkipAlg.kij['aes256-kw']) return undefined;
    if (this.nextId >= c.ids.length || this.keyed.length >= MAX_EVENTS || Date.now() / 1000 >= c.validUntil)
      return undefined;
    const peer = this.peers.get(src);
    const kijn = peer?.kijns.get(h.n);
    const from = peer?.templates
      .map((id) => this.table.template(id))
      .find((t) => t !== undefined && succeeds(t, this.table.get(t.id)?.skip, src, dst, h));
    if (!kijn || !from || this.isBlocked(src, header)) return undefined;
    const kp = unwrapKp(kijn, h.wrappedKp);
    if (!kp) return undefined;
    const sa: SaDesc = {
      ...from,
      id: c.ids[this.nextId],
      skipHeader: Uint8Array.from(header),
      replayFloor: undefined,
      ...(from.ah && {
        ah: { ...from.ah, key: trafficKey(kp, h.macAlg, PURPOSE_MAC, KEY_BYTES[from.ah.alg]) },
      }),
      ...(from.esp && {
        esp: { ...from.esp, key: trafficKey(kp, h.cryptAlg, PURPOSE_CRYPT, KEY_BYTES[from.esp.suite]) },
      }),
    };
    kp.fill(0);
    try {
      this.table.install(sa, true);
    } catch {
      return undefined;
    } finally {
      sa.ah?.key.fill(0);
      sa.esp?.key.fill(0);
    }
    this.nextId++;
    this.keyed.push({
      id: sa.id,
      template: from.id,
      role: sa.role,
      src: sa.src,
      dst: sa.dst,
      skipHeader: Uint8Array.from(header),
    });
    return this.table.get(sa.id);
  }

  take(): KeyedSuccessor[] {
    const out = this.keyed;
    this.keyed = [];
    return out;
  }

  private isBlocked(src: number, header: Uint8Array): boolean {
    if (this.blocked.size === 0) return false;
    return this.blocked.has(digest52(Buffer.concat([Buffer.from(u32ToIp(src)), header])));
  }

  private wipe(): void {
    for (const peer of this.peers.values()) for (const kijn of peer.kijns.values()) kijn.fill(0);
  }
}

/** Whether `t` is what a new key with header `h`, src → dst, succeeds (native/sa/successors.cc succeeds). */
function succeeds(t: SaDesc, own: SkipHeader | undefined, src: number, dst: number, h: SkipHeader): boolean {
  const role = h.cryptAlg !== 0 ? 'end' : 'nexthop';
  return (
    own !== undefined &&
    t.direction === 'in' &&
    t.mode === 'skip' &&
    t.role === role &&
    ipToU32(t.src) === src &&
    ipToU32(t.dst) === dst &&
    own.srcNsid === NSID_NONE &&
    own.nextHeader === h.nextHeader &&
    own.cryptAlg === h.cryptAlg &&
    own.macAlg === h.macAlg &&
    own.dstNsid === h.dstNsid &&
    own.dstMkid === h.dstMkid
  );
}
