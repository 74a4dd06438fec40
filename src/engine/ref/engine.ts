// The TypeScript reference data path: docs/engine.md implemented on node:crypto, byte-identical to the native one.
import { ipToU32, parsePrefix, prefixMask } from '../../wire/addr.js';
import { PolicyIndex, checkPolicies, type PolicyEntry } from '../policy.js';
import { isFragment } from '../../wire/fragment.js';
import { parseIpv4 } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP } from '../../wire/skip.js';
import {
  COUNTER_SLOTS,
  DESC_WORDS,
  Desc,
  Op,
  Reason,
  VERDICT_COUNTER_BASE,
  Verdict,
  type BatchLike,
  type Engine,
  type KeyedSuccessor,
  type Policy,
  type Route,
  type SaDesc,
  type SaStats,
  type SuccessorConfig,
} from '../types.js';
import { checkSuccessors, NO_SUCCESSORS } from '../successors.js';
import { Successors } from './successors.js';
import { encapsulate } from './encap.js';
import { inbound, type InboundContext, type RouteEntry } from './inbound.js';
import { policyDetunnel } from './detunnel.js';
import { ipipDecap, ipipEncap, policyTunnel } from './ipip.js';
import { forward, punt, rekeyDue, reject, type Outcome, type Slot } from './outcome.js';
import { SaTable, packetLimitReached } from './sa.js';
import { prependNexthopLayer } from './wrap.js';
import { decrementTtl } from './ttl.js';

export class RefEngine implements Engine {
  readonly impl = 'ts' as const;
  private readonly table = new SaTable();
  private readonly successors = new Successors(this.table);
  private readonly counterArray = new BigUint64Array(COUNTER_SLOTS);
  /** Longest prefix first. */
  private routes: RouteEntry[] = [];
  private policies = new PolicyIndex([]);
  private locals = new Set<number>();
  private closed = false;

  private readonly inboundContext: InboundContext = {
    table: this.table,
    successors: this.successors,
    isLocal: (address) => this.locals.has(address),
    route: (address) => this.routes.find((r) => (address & r.mask) >>> 0 === r.network),
    policy: (table, src, dst, proto) => this.policies.find(table, src, dst, proto),
    spentSa: (policy) => this.spentSa(policy),
    protect: (policy, slot, offset, length) => this.protect(policy, slot, offset, length),
  };

  installSa(sa: SaDesc): void {
    this.assertOpen();
    this.table.install(sa);
  }

  removeSa(id: number): void {
    this.assertOpen();
    this.table.remove(id);
  }

  setRoutes(routes: readonly Route[]): void {
    this.assertOpen();
    const entries = routes.map((r, i) => {
      if (!Number.isInteger(r.sa) || r.sa < 0 || r.sa > 0xffffffff)
        throw new RangeError(`route ${i} (${r.prefix}): sa must be an SA id or 0, got ${r.sa}`);
      const p = parsePrefix(r.prefix);
      return { network: p.network, mask: prefixMask(p.length), length: p.length, sa: r.sa };
    });
    entries.sort((a, b) => b.length - a.length);
    this.routes = entries.map(({ network, mask, sa }) => ({ network, mask, sa }));
  }

  setPolicies(policies: readonly Policy[]): void {
    this.assertOpen();
    this.policies = new PolicyIndex(checkPolicies(policies));
  }

  setLocalAddresses(addresses: readonly string[]): void {
    this.assertOpen();
    this.locals = new Set(addresses.map(ipToU32));
  }

  process(batch: BatchLike): void {
    this.assertOpen();
    const { buffer, desc, slotSize, capacity, count } = batch;
    if (!Number.isInteger(count) || count < 0 || count > capacity)
      throw new RangeError(`batch count must be 0..${capacity}, got ${count}`);
    if (buffer.length < capacity * slotSize || desc.length < capacity * DESC_WORDS) {
      throw new RangeError(
        `batch buffers are smaller than capacity ${capacity} × slotSize ${slotSize} needs (use the Batch class)`,
      );
    }
    for (let i = 0; i < count; i++) {
      const d = i * DESC_WORDS;
      const slot: Slot = { buf: buffer, start: i * slotSize, end: (i + 1) * slotSize };
      const offset = desc[d + Desc.offset];
      const length = desc[d + Desc.length];
      const outcome =
        offset < slot.start || offset + length > slot.end
          ? reject('bad_descriptor', offset, length)
          : this.runOp(desc[d + Desc.op], desc[d + Desc.arg0], desc[d + Desc.arg1], slot, offset, length);
      desc[d + Desc.offset] = outcome.offset;
      desc[d + Desc.length] = outcome.length;
      desc[d + Desc.verdict] = outcome.verdict | (outcome.reason << 8);
      desc[d + Desc.sa] = outcome.sa;
      desc[d + Desc.nexthop] = outcome.nexthop;
      this.counterArray[VERDICT_COUNTER_BASE + outcome.verdict]++;
      if (outcome.reason !== Reason.none) this.counterArray[outcome.reason]++;
    }
  }

  async processAsync(batch: BatchLike): Promise<void> {
    await Promise.resolve();
    this.process(batch);
  }

  counters(): BigUint64Array {
    return this.counterArray;
  }

  saStats(id: number): SaStats | undefined {
    const sa = this.table.get(id);
    if (!sa) return undefined;
    const seqOf = (h: { seq: number; window?: { top: number } } | undefined) =>
      h ? (h.window ? h.window.top : h.seq) : 0;
    return { packets: sa.packets, bytes: sa.bytes, ahSeq: seqOf(sa.ah), espSeq: seqOf(sa.esp) };
  }

  setSuccessors(config: SuccessorConfig): void {
    this.assertOpen();
    checkSuccessors(config);
    this.successors.configure(config);
  }

  takeSuccessors(): KeyedSuccessor[] {
    return this.successors.take();
  }

  close(): void {
    if (this.closed) return;
    this.successors.configure(NO_SUCCESSORS);
    this.table.clear();
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('mipsec: this engine was closed; create a new one with createEngine()');
  }

  /** OUTBOUND (docs/engine.md §2, §4.2): policy lookup in table `table` by destination and source, then its action. */
  private outbound(table: number, slot: Slot, offset: number, length: number): Outcome {
    const buf = slot.buf;
    const ip = parseIpv4(buf, offset, offset + length, { allowFragments: true });
    if (!ip.ok) return reject(ip.reason, offset, length);
    const { src, dst, totalLength, ttl, protocol } = ip.header;
    const policy = this.policies.find(table, src, dst, protocol);
    if (!policy) return reject('no_policy', offset, length);
    // A fragment meets its datagram's policy (none names ports), but four actions need it whole, so the control plane
    // reassembles it: INBOUND opens no fragment of a sealed packet, nor detunnel one of a tunnel, a peer's Next-hop
    // layer alone admits none, and a SKIP layer passes only with its header checked.
    if (
      isFragment(ip.header) &&
      (policy.action === 'inbound' ||
        policy.action === 'detunnel' ||
        (policy.action === 'protect' && policy.sa === 0) ||
        (policy.action === 'pass' && protocol === IPPROTO_SKIP))
    )
      return punt('fragment', offset, length);
    switch (policy.action) {
      case 'bypass':
        return forward(offset, totalLength, 0, dst);
      case 'pass':
        // A SKIP layer is no usual IP: only a policy that names SKIP passes one (a site that builds no VPNs lets the
        // layers for its hosts in, draft §3.4), and only with a header that parses; a general pass leaves it to the
        // control plane, which admits layers (a Next-hop AH to leave a site, §3.2 step 1).
        if (protocol === IPPROTO_SKIP) {
          if (policy.proto !== IPPROTO_SKIP) return reject('policy_punt', offset, length);
          const skip = decodeSkipHeader(buf, offset + ip.header.headerLength, offset + totalLength);
          if (!skip.ok) return reject(skip.reason, offset, length);
        }
        if (ttl <= 1) return reject('ttl_exceeded', offset, length);
        decrementTtl(buf, offset, ttl);
        return forward(offset, totalLength, 0, dst);
      case 'tunnel':
        return policyTunnel(slot, offset, length, ip.header, policy);
      case 'detunnel':
        return policyDetunnel(this.policies, table, slot, offset, length, ip.header);
      case 'punt':
        return reject('policy_punt', offset, length);
      case 'drop':
        return reject('policy_drop', offset, length);
      case 'inbound':
        return this.runOp(Op.INBOUND, 0, 0, slot, offset, length);
      case 'protect':
        break;
    }
    // Before anything is sealed: an SA of the chain that has sealed its maxPackets punts the datagram as given
    // (re-injectable once the control plane installed the next SA). Missing or wrong SAs fail in their op below.
    const spent = this.spentSa(policy);
    if (spent !== 0) return reject('rekey', offset, length, spent);
    return this.protect(policy, slot, offset, length);
  }

  /** The first SA of a protect policy's chain (End-End, then each wrap) that has sealed its maxPackets, else 0. */
  private spentSa(policy: PolicyEntry): number {
    for (const [i, id] of [policy.sa, ...policy.wrap].entries()) {
      if (id === 0) continue; // no End-End layer (sa 0: Next-hop layers alone)
      const sa = this.table.get(id);
      if (sa && sa.direction === 'out' && sa.role === (i === 0 ? 'end' : 'nexthop') && packetLimitReached(sa))
        return id;
    }
    return 0;
  }

  /**
   * OUTBOUND `protect`: ENCAP with the policy's End-End SA, then WRAP with each next-hop SA, innermost first (sa 0:
   * the WRAPs alone).
   */
  private protect(policy: PolicyEntry, slot: Slot, offset: number, length: number): Outcome {
    // sa 0: no End-End layer, the datagram goes under the Next-hop layers alone (the first names the packet).
    const named = policy.sa !== 0 ? policy.sa : policy.wrap[0];
    const [op, first, wraps] =
      policy.sa !== 0 ? [Op.ENCAP, policy.sa, policy.wrap] : [Op.WRAP, policy.wrap[0], policy.wrap.slice(1)];
    let o = this.runOp(op, first, 0, slot, offset, length);
    // The first SA of the chain that reached its soft limit names the FORWARD (else the named SA).
    let due = o.reason === Reason.rekey_due ? first : 0;
    for (const w of wraps) {
      if (o.verdict !== Verdict.FORWARD) break;
      o = this.runOp(Op.WRAP, w, 0, slot, o.offset, o.length);
      if (!due && o.reason === Reason.rekey_due) due = w;
    }
    if (o.verdict !== Verdict.FORWARD) return o;
    return due ? rekeyDue(o.offset, o.length, due, o.nexthop) : forward(o.offset, o.length, named, o.nexthop);
  }

  private runOp(op: number, arg0: number, arg1: number, slot: Slot, offset: number, length: number): Outcome {
    switch (op) {
      case Op.ENCAP:
      case Op.WRAP: {
        const role = op === Op.ENCAP ? 'end' : 'nexthop';
        const sa = this.table.get(arg0);
        if (!sa || sa.direction !== 'out' || sa.role !== role) return reject('no_sa', offset, length);
        // The datagram to protect may be a fragment (tunnel mode carries it whole); only opened ones may not.
        const ip = parseIpv4(slot.buf, offset, offset + length, { allowFragments: true });
        if (!ip.ok) return reject(ip.reason, offset, length, sa.id);
        // Packet limit (docs/engine.md §4): checked before any sequence number is taken; the packet stays as given.
        if (packetLimitReached(sa)) return reject('rekey', offset, length, sa.id);
        const datagramLength = ip.header.totalLength;
        return op === Op.ENCAP
          ? encapsulate(slot, offset, datagramLength, ip.header, sa)
          : prependNexthopLayer(slot, offset, datagramLength, ip.header, sa);
      }
      case Op.INBOUND:
        return inbound(this.inboundContext, slot, offset, length);
      case Op.IPIP_ENCAP:
        return ipipEncap(slot, offset, length, arg0, arg1);
      case Op.IPIP_DECAP:
        return ipipDecap(slot, offset, length);
      case Op.OUTBOUND:
        return this.outbound(arg0, slot, offset, length);
      default:
        return reject('bad_descriptor', offset, length);
    }
  }
}
