// A node's SKIP keying bound to its engine: outbound SAs on demand, inbound SAs from punted
// headers, each installed once, its keys wiped from JS memory right after, and what each SA id
// means to the role (peer, layer, outer addresses) remembered for policy decisions.
import type { Engine, SaDesc } from '../../engine/types.js';
import { SkipKeying, wipeSaKeys, type KeyingFailure, type OutboundRequest } from '../../keys/keying.js';
import type { SkipName } from '../../keys/names.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { parseIpv4 } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import type { KeyLog } from './keylog.js';

export interface SaMeta {
  peer: SkipName;
  role: 'end' | 'nexthop';
  direction: 'in' | 'out';
  /** Outer addresses: for an inbound SA from an SMN, src is its care-of address. */
  src: string;
  dst: string;
}

export type SaLookup = { ok: true; id: number } | { ok: false; reason: KeyingFailure; message: string };

export class NodeKeys {
  private readonly metas = new Map<number, SaMeta>();

  constructor(
    readonly keying: SkipKeying,
    private readonly engine: Engine,
    private readonly keyLog?: KeyLog,
  ) {}

  /** The outbound SA for `req`, installed in the engine (a fresh one when n moved on or Kp is used up). */
  outbound(req: OutboundRequest): SaLookup {
    const current = this.findOut(req);
    const sent = current === undefined ? 0 : Number(this.engine.saStats(current)?.packets ?? 0n);
    const r = this.keying.outboundSa(req, sent);
    if (!r.ok) return r;
    if (!r.created) return { ok: true, id: r.id };
    this.install(r.sa, { peer: req.peer, role: req.role, direction: 'out', src: req.src, dst: req.dst });
    if (r.retire !== undefined) this.remove(r.retire);
    return { ok: true, id: r.sa.id };
  }

  /** The inbound SA for the SKIP layer that starts `datagram` (the engine punted it with unknown_key). */
  inbound(datagram: Uint8Array, coverage: 'full' | 'headers'): SaLookup {
    const ip = parseIpv4(datagram, 0);
    if (!ip.ok || ip.header.protocol !== IPPROTO_SKIP) return { ok: false, reason: 'truncated', message: 'punted packet is not an IPv4/SKIP datagram' };
    const { src, dst, headerLength } = ip.header;
    const srcText = u32ToIp(src);
    const r = this.keying.inboundSa({ packet: datagram, offset: headerLength, src: srcText, dst: u32ToIp(dst), coverage });
    if (!r.ok) return r;
    if (!r.created) return { ok: true, id: r.id };
    const h = decodeSkipHeader(datagram, headerLength);
    const peer: SkipName = h.ok && h.header.srcNsid === NSID_IPV4 ? { nsid: NSID_IPV4, address: h.header.srcMkid! } : { nsid: NSID_NONE, address: ipToU32(srcText) };
    this.install(r.sa, { peer, role: r.sa.role, direction: 'in', src: srcText, dst: u32ToIp(dst) });
    return { ok: true, id: r.sa.id };
  }

  meta(id: number): SaMeta | undefined {
    return this.metas.get(id);
  }

  /** Removes SAs whose SKIP counter left the window (call once per flush; cheap). */
  expire(): void {
    for (const id of this.keying.expire()) this.remove(id);
  }

  close(): void {
    for (const id of [...this.metas.keys()]) this.remove(id);
    this.keying.close();
  }

  private install(sa: SaDesc, meta: SaMeta): void {
    this.keyLog?.record(sa);
    this.engine.installSa(sa);
    wipeSaKeys(sa);
    this.metas.set(sa.id, meta);
  }

  private remove(id: number): void {
    this.engine.removeSa(id);
    this.metas.delete(id);
  }

  private findOut(req: OutboundRequest): number | undefined {
    for (const [id, m] of this.metas) {
      if (m.direction === 'out' && m.role === req.role && m.src === req.src && m.dst === req.dst && m.peer.address === req.peer.address && m.peer.nsid === req.peer.nsid) return id;
    }
    return undefined;
  }
}

