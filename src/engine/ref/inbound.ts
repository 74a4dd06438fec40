// INBOUND (docs/engine.md §5): peel layers addressed to this node; verify, relay, forward or deliver.
import { parseAh } from '../../wire/ah.js';
import { prefixContains, readU32 } from '../../wire/addr.js';
import { ESP_HEADER_BYTES, checkEspTrailer, parseEsp } from '../../wire/esp.js';
import { IPV4_HEADER_BYTES, IpProto, parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import { IPPROTO_SKIP, SKIP_SPI, decodeSkipHeader } from '../../wire/skip.js';
import { selectorsAdmitDatagram, selectorsAdmitSource } from '../inbound-rules.js';
import type { PolicyEntry } from '../policy.js';
import { MAX_LAYERS, Reason, Verdict } from '../types.js';
import { aeadOpen } from './crypto.js';
import { coverageEnd, verifyAh, type AhLayout } from './icv.js';
import { deliver, forward, punt, reject, type Outcome, type Slot } from './outcome.js';
import type { SaState, SaTable } from './sa.js';
import type { Successors } from './successors.js';
import { decrementTtl } from './ttl.js';
import { prependNexthopLayer } from './wrap.js';

export interface RouteEntry {
  network: number;
  mask: number;
  sa: number;
}

export interface InboundContext {
  table: SaTable;
  successors: Successors;
  isLocal(address: number): boolean;
  /** Longest-prefix match, or undefined when no route covers the address. */
  route(address: number): RouteEntry | undefined;
  /** OUTBOUND's lookup in policy table `table` (docs/engine.md §4.2). */
  policy(table: number, src: number, dst: number, proto: number): PolicyEntry | undefined;
  /** The first SA of a protect policy's chain that has sealed its maxPackets, else 0. */
  spentSa(policy: PolicyEntry): number;
  /** OUTBOUND `protect` after that check: ENCAP, then each WRAP, with the verdict OUTBOUND reports. */
  protect(policy: PolicyEntry, slot: Slot, offset: number, length: number): Outcome;
}

/** A layer header found behind the outer IPv4 header: where it starts and which SA owns it. */
interface LayerStart {
  sa: SaState;
  /** Protocol of the first IPsec header (51 or 50). */
  first: number;
  /** Offset of that header. */
  at: number;
  skipLength: number;
}

const SPI_PEEK_BYTES = 8;
/** What a Next-hop layer may carry on into the engine: another layer. */
const LAYER_PROTOCOLS = new Set<number>([IPPROTO_SKIP, IpProto.AH, IpProto.ESP]);
const IPSEC_PROTOCOLS = new Set<number>([...LAYER_PROTOCOLS, IpProto.IPIP]);

export function inbound(ctx: InboundContext, slot: Slot, offset: number, length: number): Outcome {
  const buf = slot.buf;
  let lastSa = 0;
  let peeled = 0;
  let afterIpip = false;
  const keying = { keyed: false }; // one successor key per packet, as in native/xform/inbound.cc
  for (;;) {
    const ip = parseIpv4(buf, offset, offset + length);
    if (!ip.ok) return reject(ip.reason, offset, length, lastSa);
    const h = ip.header;
    length = h.totalLength;
    if (afterIpip && h.ttl === 0) return reject('ttl_expired', offset, length, lastSa);
    // Not a layer: on the first layer the packet itself; after bare IP-in-IP the peeled datagram, which no SA
    // authenticated (a Next-hop layer only ever goes on with SKIP/AH/ESP), so the control plane judges it.
    if (!IPSEC_PROTOCOLS.has(h.protocol)) return reject('not_ipsec', offset, length, lastSa);
    if (peeled === MAX_LAYERS) return reject('too_many_layers', offset, length, lastSa);
    peeled++;
    const end = offset + length;
    if (h.protocol === IpProto.IPIP) {
      offset += h.headerLength;
      length -= h.headerLength;
      afterIpip = true;
      continue;
    }
    afterIpip = false;

    const found = findLayerSa(ctx, buf, offset, offset + h.headerLength, end, h, lastSa, keying);
    if ('verdict' in found) return found;
    const { sa } = found;
    const layout: AhLayout = {
      ipOffset: offset,
      ipHeaderLength: h.headerLength,
      skipLength: found.skipLength,
      coveredEnd: end,
    };

    if (sa.role === 'end') return openEndLayer(ctx, slot, found, layout, offset, length);

    // Next-hop layer: AH with next header 4 around a datagram D.
    const ah = sa.ah!;
    if (found.first !== IpProto.AH) return reject('sa_mismatch', offset, length, sa.id);
    const parsed = parseAh(buf, found.at, end, ah.length);
    if (!parsed.ok) return reject(parsed.reason, offset, length, sa.id);
    if (sa.mode === 'skip' && parsed.header.spi !== SKIP_SPI) return reject('bad_spi', offset, length, sa.id);
    if (parsed.header.nextHeader !== IpProto.IPIP) return reject('bad_next_header', offset, length, sa.id);
    if (!ah.window!.check(parsed.header.seq)) return reject('replay', offset, length, sa.id);
    const dOffset = found.at + ah.length;
    const covered = coverageEnd(ah.coverage, buf, dOffset, end);
    if (!covered.ok) return reject(covered.reason, offset, length, sa.id);
    if (!verifyAh(buf, ah, { ...layout, coveredEnd: covered.end })) return reject('auth', offset, length, sa.id);
    ah.window!.commit(parsed.header.seq);
    sa.packets++;
    sa.bytes += BigInt(end - dOffset); // the datagram the layer protected
    lastSa = sa.id;

    const d = parseIpv4(buf, dOffset, end);
    if (!d.ok) return reject(d.reason, dOffset, end - dOffset, lastSa);
    offset = dOffset;
    length = d.header.totalLength;
    // Only a further layer goes on in the engine: a datagram a Next-hop layer alone protects is judged by the
    // role's policy (draft §3.2 step 2), never delivered, peeled or relayed here.
    if (!LAYER_PROTOCOLS.has(d.header.protocol)) return plainOutbound(ctx, buf, sa, d.header, offset, length);
    if (ctx.isLocal(d.header.dst)) continue;
    if (!sa.relay) return reject('relay_denied', offset, length, lastSa);
    const route = ctx.route(d.header.dst);
    if (!route) return reject('no_route', offset, length, lastSa);
    if (route.sa === 0) return forward(offset, length, lastSa, d.header.dst);
    const out = ctx.table.get(route.sa);
    if (!out || out.direction !== 'out' || out.role !== 'nexthop') return reject('no_sa', offset, length, lastSa);
    return prependNexthopLayer(slot, offset, length, d.header, out, lastSa);
  }
}

/**
 * SKIP: parse, next header AH/ESP (bad_skip), key tuple → SA (miss: PUNT unknown_key), destination NSID/MKID,
 * Crypt/MAC algorithms.
 * Bare AH/ESP: (protocol, SPI) → SA (miss: bad_spi). Failures are outcomes for the datagram at ipOffset, naming
 * the SA found, or else `lastSa` (the last one that authenticated the packet, 0 on the first layer).
 */
function findLayerSa(
  ctx: InboundContext,
  buf: Uint8Array,
  ipOffset: number,
  at: number,
  end: number,
  ip: Ipv4Header,
  lastSa: number,
  keying: { keyed: boolean },
): LayerStart | Outcome {
  const { protocol, src: outerSrc } = ip;
  const fail = (reason: Parameters<typeof reject>[0], sa = lastSa) => reject(reason, ipOffset, end - ipOffset, sa);
  if (protocol === IPPROTO_SKIP) {
    const skip = decodeSkipHeader(buf, at, end);
    if (!skip.ok) return fail(skip.reason);
    const h = skip.header;
    if (h.nextHeader !== IpProto.AH && h.nextHeader !== IpProto.ESP) return fail('bad_skip');
    let sa = ctx.table.findBySkip(h, outerSrc);
    if (!sa && !keying.keyed) {
      sa = ctx.successors.key(h, buf.subarray(at, at + skip.length), outerSrc, ip.dst);
      keying.keyed = sa !== undefined;
    }
    if (!sa) return fail('unknown_key');
    const own = sa.skip!;
    if (h.dstNsid !== own.dstNsid || h.dstMkid !== own.dstMkid) return fail('bad_dst_mkid', sa.id);
    if (h.cryptAlg !== own.cryptAlg || h.macAlg !== own.macAlg) return fail('sa_mismatch', sa.id);
    return { sa, first: h.nextHeader, at: at + skip.length, skipLength: skip.length };
  }
  // The SPI sits 4 bytes into AH and at the start of ESP: 8 bytes must be there to read it (both headers).
  if (end - at < SPI_PEEK_BYTES) return fail('truncated');
  const sa = ctx.table.findBySpi(protocol, readU32(buf, protocol === IpProto.AH ? at + 4 : at));
  if (!sa) return fail('bad_spi');
  return { sa, first: protocol, at, skipLength: 0 };
}

/**
 * A plain datagram (not SKIP/AH/ESP) a verified Next-hop layer of `sa` protected: with `plain`, one from a source the
 * SA speaks for that is not IP-in-IP is classified by the SA's policy table — pass forwards it as a router does (TTL −
 * 1), drop drops it —; everything else (no policy, any other action, TTL ≤ 1, another source, a tunnel, no `plain`) is
 * punted nexthop_plain for the role's policy, as it always was.
 */
function plainOutbound(
  ctx: InboundContext,
  buf: Uint8Array,
  sa: SaState,
  d: Ipv4Header,
  offset: number,
  length: number,
): Outcome {
  const punted = () => reject('nexthop_plain', offset, length, sa.id);
  if (!sa.plain || d.protocol === IpProto.IPIP || !sa.plain.src.some((p) => prefixContains(p, d.src))) return punted();
  const policy = ctx.policy(sa.plain.table, d.src, d.dst, d.protocol);
  if (policy?.action === 'drop') return reject('policy_drop', offset, length, sa.id);
  if (policy?.action !== 'pass' || d.ttl <= 1) return punted();
  decrementTtl(buf, offset, d.ttl);
  return forward(offset, length, sa.id, d.dst);
}

/**
 * selectorMiss `{ outbound }`: an opened datagram outside the selectors, from a source the SA speaks for (its src
 * selectors), is classified by the SA's policy table: protect seals it and FORWARDs it, drop drops it; anything else
 * (no policy, punt, bypass, pass, inbound, a spent SA in the chain) punts it as selectorMiss 'punt' would.
 */
function missOutbound(ctx: InboundContext, slot: Slot, sa: SaState, at: number, length: number): Outcome {
  const buf = slot.buf;
  const missed = () => punt('selector', at, length, sa.id);
  if (length < IPV4_HEADER_BYTES || buf[at] >> 4 !== 4) return missed();
  const src = readU32(buf, at + 12);
  if (!selectorsAdmitSource(sa.selectors, src)) return missed();
  const policy = ctx.policy(sa.selectorMissTable!, src, readU32(buf, at + 16), buf[at + 9]);
  if (policy?.action === 'drop') return reject('policy_drop', at, length, sa.id);
  // Only an End-End layer re-encrypts: a protect without one (sa 0, Next-hop layers alone) is the control plane's.
  if (!policy || policy.action !== 'protect' || policy.sa === 0 || ctx.spentSa(policy) !== 0) return missed();
  const o = ctx.protect(policy, slot, at, length);
  if (o.verdict === Verdict.FORWARD) {
    sa.packets++;
    sa.bytes += BigInt(length);
  }
  // As in the native path, where another thread may spend the End-End SA after the check (ENCAP leaves the datagram
  // as it was); one thread here, so only the check above ever finds it spent.
  if (o.verdict === Verdict.PUNT && o.reason === Reason.rekey && o.sa === policy.sa) return missed();
  return o;
}

/**
 * End-End layer: [AH next 50: check, verify] → ESP: check, open, commit windows → padding → next header 4 → DELIVER.
 */
function openEndLayer(
  ctx: InboundContext,
  slot: Slot,
  layer: LayerStart,
  layout: AhLayout,
  offset: number,
  length: number,
): Outcome {
  const buf = slot.buf;
  const { sa } = layer;
  const esp = sa.esp!;
  const end = offset + length;
  const drop = (reason: Parameters<typeof reject>[0]) => reject(reason, offset, length, sa.id);
  if (layer.first !== (sa.ah ? IpProto.AH : IpProto.ESP)) return drop('sa_mismatch');
  let espAt = layer.at;
  let ahSeq = 0;
  if (sa.ah) {
    const parsed = parseAh(buf, layer.at, end, sa.ah.length);
    if (!parsed.ok) return drop(parsed.reason);
    if (sa.mode === 'skip' && parsed.header.spi !== SKIP_SPI) return drop('bad_spi');
    if (parsed.header.nextHeader !== IpProto.ESP) return drop('bad_next_header');
    ahSeq = parsed.header.seq;
    if (!sa.ah.window!.check(ahSeq)) return drop('replay');
    if (!verifyAh(buf, sa.ah, layout)) return drop('auth');
    espAt += sa.ah.length;
  }
  const frame = parseEsp(buf, espAt, end);
  if (!frame.ok) return drop(frame.reason);
  const f = frame.frame;
  if (f.spi !== esp.spi) return drop('bad_spi');
  if (!esp.window!.check(f.seq)) return drop('replay');
  const plaintext = aeadOpen(
    esp.suite,
    esp.key,
    buf.subarray(f.ivOffset, f.ciphertextOffset),
    buf.subarray(espAt, espAt + ESP_HEADER_BYTES),
    buf.subarray(f.ciphertextOffset, f.ciphertextEnd),
    buf.subarray(f.ciphertextEnd, end),
  );
  if (!plaintext) return drop('auth');
  sa.ah?.window!.commit(ahSeq);
  esp.window!.commit(f.seq);
  buf.set(plaintext, f.ciphertextOffset);
  const trailer = checkEspTrailer(buf, f.ciphertextOffset, f.ciphertextEnd);
  if (!trailer.ok) return drop(trailer.reason);
  if (trailer.nextHeader === IpProto.NONE) return drop('dummy');
  if (trailer.nextHeader !== IpProto.IPIP) return drop('bad_next_header');
  const innerLength = trailer.payloadEnd - f.ciphertextOffset;
  if (!selectorsAdmitDatagram(sa.selectors, buf, f.ciphertextOffset, innerLength)) {
    if (sa.selectorMissTable !== undefined) return missOutbound(ctx, slot, sa, f.ciphertextOffset, innerLength);
    return sa.selectorMissPunt ? punt('selector', f.ciphertextOffset, innerLength, sa.id) : drop('selector');
  }
  // Stats count delivered datagrams (as the out SA counts the datagrams it protected).
  sa.packets++;
  sa.bytes += BigInt(innerLength);
  return deliver(f.ciphertextOffset, innerLength, sa.id);
}
