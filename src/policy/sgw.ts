// What an SGW does with a packet (draft §3.1–§3.4, §4.4–§4.5), as a pure function over the network
// map, the SGW's own place and a summary of the packet's layers. The roles parse and verify; this
// module only decides, and always says why.
import { MAX_LAYERS } from '../wire/algorithms.js';
import type { SkipName } from '../keys/names.js';
import { u32ToIp } from '../wire/addr.js';
import { Icmp40Code } from '../wire/icmp40.js';
import { NSID_NONE } from '../wire/skip.js';
import { toU32, type Address, type Sgw, type TopologyMap } from '../topology/map.js';

export type AuthResult = 'verified' | 'failed' | 'unknown-key';

export interface IpPair {
  src: Address;
  dst: Address;
}

/** One IPv4 / SKIP / AH[ / ESP] layer of the packet, outermost first. */
export interface SkipLayer {
  /** 'nexthop': IPv4/SKIP/AH around another datagram (§3.6). 'end': IPv4/SKIP/[AH]/ESP (End-End). */
  kind: 'nexthop' | 'end';
  /** The IPv4 header of this layer. */
  ip: IpPair;
  /** Who keyed the layer: NSID 0 = an SGW named by its address, NSID 1 = an SMN named by its home address. */
  skipSrc: SkipName;
  /** Outcome of checking the layer; needed only for layers addressed to this SGW. */
  auth?: AuthResult;
}

export interface PacketView {
  /** Interface the packet arrived on. */
  arrivedOn: 'inside' | 'outside';
  /** SKIP layers, outermost first; empty for a plain datagram. */
  layers: SkipLayer[];
  /** The protected datagram's IPv4 header: known for plain packets and once the end layer is opened. */
  inner?: IpPair;
  /**
   * The plain datagram is the protocol's own signalling: an ICMP Security Failure (type 40), a certificate discovery
   * request to UDP 1640, or a discovery answer to a request the role saw leaving (UDP 1640 alone is not enough).
   */
  signalling?: boolean;
  /**
   * The datagram is IP-in-IP: the IPv4 header it carries (the HA's tunnel: care-of address outside, home address
   * inside).
   */
  ipInIp?: IpPair;
}

/** Care-of address → home address, as the SGW role keeps it (only live entries answer). */
export interface CareOfLookup {
  get(careOf: number): number | undefined;
  has(careOf: number): boolean;
  /** Live entries, care-of → home (the SGW role's tables punt them in the re-encryption table). */
  entries?(): Iterable<[number, number]>;
}

export interface SgwPlace {
  map: TopologyMap;
  self: Sgw;
  /** Care-of address → home address of this SGW's own SMNs, learned from their HA's accepted registrations. */
  careOfs?: CareOfLookup;
  /** Plain datagrams from outside to a protected host: drop (default) or pass as usual IP (§3.5). */
  plainInbound?: 'drop' | 'pass';
  /**
   * Site policy on visiting SMNs (by home address): false refuses their Next-hop layer with code 5. Default: all
   * allowed.
   */
  admitsVisitor?: (home: string) => boolean;
}

/** The far end of an End-End layer this SGW builds. */
export type EndPeer = { kind: 'sgw'; sgw: Sgw } | { kind: 'smn'; home: string; careOf: string };

export type Rejection = 'need-nexthop-auth' | 'end-end-conflict' | 'visitor-refused' | 'auth-failed' | 'unknown-key';

export type Decision =
  /** Forward unchanged: no IPsec work for this SGW. */
  | { action: 'pass'; reason: string }
  /** A plain datagram for this SGW's own stack (certificate discovery, ICMP). */
  | { action: 'local'; reason: string }
  /**
   * Protect a plain datagram (once a verified Next-hop layer around it is stripped): End-End layer to `end`, inside a
   * Next-hop layer to `nextHop` when one lies between.
   */
  | { action: 'encap'; end: EndPeer; nextHop?: Sgw; reason: string }
  /** Next-hop layer verified: replace it with one for `nextHop`, or strip it and forward what it protected. */
  | { action: 'relay'; nextHop?: Sgw; reason: string }
  /**
   * Layers for this SGW removed; deliver the datagram inside, or protect it again toward its SGW (§3.3). `peer`
   * authenticated the last layer.
   */
  | {
      action: 'decap';
      peer: SkipName;
      then: { kind: 'deliver' } | { kind: 'reencap'; end: EndPeer; nextHop?: Sgw };
      reason: string;
    }
  /** Drop and answer with ICMP 40 `code` to `to` (rate-limited by the caller). */
  | { action: Rejection; icmp: { code: number; to: string }; reason: string }
  /** `counter` names the rule for the role's drop counters (`drop_<counter>`); absent: a plain policy drop. */
  | { action: 'drop'; reason: string; counter?: string };

const ip = (a: Address) => u32ToIp(toU32(a));
const nameText = (n: SkipName) => (n.nsid === NSID_NONE ? `SGW ${u32ToIp(n.address)}` : `SMN ${u32ToIp(n.address)}`);

function reject(action: Rejection, code: number, to: Address, reason: string): Decision {
  return { action, icmp: { code, to: ip(to) }, reason };
}

function isSelf(place: SgwPlace, address: Address): boolean {
  return place.map.sgwByAddress(address) === place.self;
}

/** Protected by this SGW itself (not by an SGW nested behind it). */
function isMine(place: SgwPlace, address: Address): boolean {
  return place.map.protectingSgw(address) === place.self;
}

/** Behind this SGW, directly or through nested SGWs. */
function isInMyRegion(place: SgwPlace, address: Address): boolean {
  const sgw = place.map.protectingSgw(address);
  return sgw !== undefined && place.map.isWithin(sgw, place.self);
}

/** Inside a network this SGW itself sits in (Figure 1: SGW1's network, seen from SGW0). */
function isInEnclosingNetwork(place: SgwPlace, address: Address): boolean {
  const sgw = place.map.protectingSgw(address);
  return sgw !== undefined && sgw !== place.self && place.map.isWithin(place.self, sgw);
}

/** A home address served by an HA behind this SGW: one of its own SMNs. */
function isOwnSmnHome(place: SgwPlace, address: Address): boolean {
  return place.map.homeAgentFor(address)?.sgw === place.self;
}

/** How to protect a datagram for `dst` leaving this SGW, or why it goes as usual IP. */
function protectToward(place: SgwPlace, dst: Address): { end: EndPeer; nextHop?: Sgw } | { plain: string } {
  const { map, self } = place;
  const home = place.careOfs?.get(toU32(dst));
  if (home !== undefined) {
    const end: EndPeer = { kind: 'smn', home: u32ToIp(home), careOf: ip(dst) };
    // The first SGW crossed relays our Next-hop layer only if it builds VPNs (§3.4); a parent of a nested SGW always
    // does.
    const next = map.nextHopSgw(self, dst);
    return { end, nextHop: next?.vpnRoutable ? next : undefined };
  }
  const target = map.protectingSgw(dst);
  if (!target) return { plain: `${ip(dst)} is outside every SGW-protected network: usual IP (§3.5)` };
  if (!target.vpnRoutable)
    return { plain: `${ip(dst)} is behind ${target.name}, which is not VPN-routable: usual IP (§3.4)` };
  if (!self.vpnRoutable) return { plain: `${self.name}'s site is not VPN-routable: no VPN to ${target.name} (§3.4)` };
  const next = map.nextHopSgw(self, dst);
  return { end: { kind: 'sgw', sgw: target }, nextHop: next === target ? undefined : next };
}

function endText(end: EndPeer): string {
  return end.kind === 'sgw' ? end.sgw.name : `SMN ${end.home} at ${end.careOf}`;
}

/** The SGW's decision for one packet. */
export function decide(place: SgwPlace, packet: PacketView): Decision {
  if (packet.layers.length > MAX_LAYERS) return { action: 'drop', reason: `more than ${MAX_LAYERS} SKIP layers` };
  return packet.layers.length === 0 ? decidePlain(place, packet) : decideLayers(place, packet, packet.layers);
}

function decidePlain(place: SgwPlace, packet: PacketView): Decision {
  const { map, self } = place;
  const dgram = packet.inner;
  if (!dgram) return { action: 'drop', reason: 'no datagram: neither SKIP layers nor an IPv4 header were given' };
  if (isSelf(place, dgram.dst)) return { action: 'local', reason: `addressed to ${self.name} itself` };

  if (packet.arrivedOn === 'outside') {
    if (isInEnclosingNetwork(place, dgram.src) && isInMyRegion(place, dgram.dst)) {
      return { action: 'pass', reason: `from ${ip(dgram.src)} in the network ${self.name} sits in` };
    }
    if (!isInMyRegion(place, dgram.dst))
      return { action: 'drop', reason: `${ip(dgram.dst)} is not behind ${self.name}` };
    // Failure messages tell a visiting SMN what a farther SGW lacks (§3.4 step 2), discovery fetches its certificate:
    // both must reach it.
    if (packet.signalling)
      return {
        action: 'pass',
        reason: `signalling (ICMP 40 or certificate discovery) from ${ip(dgram.src)} for ${ip(dgram.dst)} (§3.4)`,
      };
    return place.plainInbound === 'pass'
      ? {
          action: 'pass',
          reason: `plain datagram from ${ip(dgram.src)} to ${ip(dgram.dst)}: usual IP allowed by site policy (§3.5)`,
        }
      : {
          action: 'drop',
          reason:
            `plain datagram from outside (${ip(dgram.src)}) to protected host ${ip(dgram.dst)}: site policy ` +
            `drops it`,
        };
  }

  // From inside: the source address tells a visiting SMN (its home address belongs elsewhere, §3.2 step 1).
  if (!isMine(place, dgram.src)) {
    const owner = map.protectingSgw(dgram.src);
    return reject(
      'need-nexthop-auth',
      Icmp40Code.needAuthentication,
      dgram.src,
      `source ${ip(dgram.src)} is not a host of ${self.name} ` +
        `(${owner ? `protected by ${owner.name}` : 'an outside address'}): ` +
        `a visiting SMN must add a Next-hop AH for ${self.name} (§3.2 step 1)`,
    );
  }
  if (isInMyRegion(place, dgram.dst) && !place.careOfs?.has(toU32(dgram.dst))) {
    return { action: 'pass', reason: `${ip(dgram.dst)} is behind ${self.name} too: internal traffic` };
  }
  const unprotectable = unprotectableHomeTraffic(place, packet, dgram);
  if (unprotectable) return unprotectable;
  if (isInEnclosingNetwork(place, dgram.dst))
    return { action: 'pass', reason: `${ip(dgram.dst)} is in the network ${self.name} sits in` };
  const how = protectToward(place, dgram.dst);
  if ('plain' in how) return { action: 'pass', reason: how.plain };
  return {
    action: 'encap',
    ...how,
    reason:
      `protect ${ip(dgram.src)} > ${ip(dgram.dst)} End-End to ` +
      `${endText(how.end)}${how.nextHop ? ` through ${how.nextHop.name}` : ''}`,
  };
}

/**
 * Traffic for an SMN of this SGW leaving its network (the HA's tunnel to a care-of address, or a datagram for the home
 * address itself) goes only End-End to that SMN at a care-of address its HA accepted; without one (after a restart, a
 * lost binding) it is dropped, never sent plain: the SMN's next registration teaches the care-of address again.
 */
function unprotectableHomeTraffic(place: SgwPlace, packet: PacketView, dgram: IpPair): Decision | undefined {
  const home = [dgram.dst, packet.ipInIp?.dst].find((a) => a !== undefined && isOwnSmnHome(place, a));
  if (home === undefined || place.careOfs?.get(toU32(dgram.dst)) === toU32(home)) return undefined;
  return {
    action: 'drop',
    counter: 'home_unprotected',
    reason:
      `${ip(dgram.dst)}${packet.ipInIp ? ` (tunnelling to ${ip(home)})` : ''} ` +
      `is no care-of address ${place.self.name} knows ` +
      `for its SMN ${ip(home)}: never sent plain`,
  };
}

/**
 * Why `careOf` may not become a care-of address of an SMN of this SGW: an entry redirects every datagram for that
 * address into the SMN's End-End layer, so it must never shadow this SGW's own network, an SGW, an HA, a home address
 * or a host the map names.
 */
export function careOfShadow(place: SgwPlace, careOf: Address): string | undefined {
  const { map, self } = place;
  const a = toU32(careOf);
  if (isInMyRegion(place, a)) return `${ip(a)} is behind ${self.name} itself`;
  const sgw = map.sgwByAddress(a);
  if (sgw) return `${ip(a)} is an address of ${sgw.name}`;
  if (map.homeAgents.some((ha) => toU32(ha.address) === a)) return `${ip(a)} is a home agent`;
  if (map.homeAgentFor(a)) return `${ip(a)} is a home address`;
  const host = map.hosts.find((h) => toU32(h.address) === a);
  return host ? `${ip(a)} is the map's host ${host.name}` : undefined;
}

function decideLayers(place: SgwPlace, packet: PacketView, layers: SkipLayer[]): Decision {
  const { self } = place;
  const [layer, ...rest] = layers;
  if (!isSelf(place, layer.ip.dst)) return decideTransit(place, packet, layer);

  if (layer.auth === undefined)
    return { action: 'drop', reason: `the ${layer.kind} layer for ${self.name} was not checked` };
  if (layer.auth === 'unknown-key') {
    return reject(
      'unknown-key',
      Icmp40Code.badSpi,
      layer.ip.src,
      `no key for ${nameText(layer.skipSrc)}: its certificate is unknown or n is outside ±1 hour`,
    );
  }
  if (layer.auth === 'failed') {
    return reject(
      'auth-failed',
      Icmp40Code.authenticationFailed,
      layer.ip.src,
      `the ${layer.kind === 'nexthop' ? 'Next-hop AH' : 'End-End layer'} ` +
        `from ${nameText(layer.skipSrc)} did not verify`,
    );
  }
  const unknown = unknownIdentity(place, layer.skipSrc);
  if (unknown) return { action: 'drop', reason: unknown };
  const refused = refusedVisitor(place, layer);
  if (refused) return refused;
  return layer.kind === 'nexthop' ? decideNextHop(place, packet, layer, rest) : decideEnd(place, packet, layer);
}

function unknownIdentity(place: SgwPlace, name: SkipName): string | undefined {
  if (name.nsid === NSID_NONE) {
    return place.map.sgwByAddress(name.address)
      ? undefined
      : `${u32ToIp(name.address)} (NSID 0) is not an SGW of network map ${place.map.name}`;
  }
  return place.map.homeAgentFor(name.address)
    ? undefined
    : `MKID ${u32ToIp(name.address)} is not a home address served by any HA of network map ${place.map.name}`;
}

/**
 * A visiting SMN's Next-hop layer, when the site does not admit that SMN (an access-control failure, RFC 2521 code 5).
 * Roles ask this before keying the layer: once its SA is installed, the data path relays without asking.
 */
export function refusedVisitor(place: SgwPlace, layer: SkipLayer): Decision | undefined {
  if (layer.kind !== 'nexthop' || layer.skipSrc.nsid === NSID_NONE || !place.admitsVisitor) return undefined;
  const home = u32ToIp(layer.skipSrc.address);
  if (isOwnSmnHome(place, home) || place.admitsVisitor(home)) return undefined;
  return reject(
    'visitor-refused',
    Icmp40Code.needAuthorization,
    layer.ip.src,
    `SMN ${home} is not admitted as a visitor by ${place.self.name}'s site policy`,
  );
}

function decideNextHop(place: SgwPlace, packet: PacketView, layer: SkipLayer, rest: SkipLayer[]): Decision {
  const { map, self } = place;
  const from = nameText(layer.skipSrc);
  if (rest.length === 0) return decideAuthenticatedPlain(place, packet, from);
  const nextDst = rest[0].ip.dst;
  if (isSelf(place, nextDst)) return decideLayers(place, packet, rest);
  const peer = map.nextHopPeer(self, nextDst);
  if (peer && self.vpnRoutable && peer.vpnRoutable) {
    return {
      action: 'relay',
      nextHop: peer,
      reason: `Next-hop AH from ${from} verified: replace it with one for ${peer.name} toward ${ip(nextDst)} (§3.1)`,
    };
  }
  const why = !peer
    ? `no SGW lies between ${self.name} and ${ip(nextDst)}`
    : !self.vpnRoutable
      ? `${self.name} builds no Next-hop layers with other SGWs (§3.4)`
      : `${peer.name} is not VPN-routable`;
  return {
    action: 'relay',
    reason: `Next-hop AH from ${from} verified: strip it and forward to ${ip(nextDst)} as it is (${why})`,
  };
}

/** A plain datagram inside a verified Next-hop layer: this SGW becomes the VPN end for it (§3.2 step 2). */
function decideAuthenticatedPlain(place: SgwPlace, packet: PacketView, from: string): Decision {
  const { self } = place;
  const dgram = packet.inner;
  if (!dgram) return { action: 'drop', reason: `the Next-hop layer from ${from} protects nothing` };
  const layer = packet.layers[0];
  // A Next-hop AH vouches for one hop only: a tunnel under it could carry any address into the site.
  if (packet.ipInIp)
    return { action: 'drop', counter: 'nexthop_ipip', reason: `IP-in-IP under only a Next-hop AH from ${from}` };
  const refused = sourceRefusal(place, layer, dgram);
  if (refused) return refused;
  const peer = layer.skipSrc;
  if (isSelf(place, dgram.dst) || isInMyRegion(place, dgram.dst) || isInEnclosingNetwork(place, dgram.dst)) {
    return {
      action: 'decap',
      peer,
      then: { kind: 'deliver' },
      reason: `Next-hop AH from ${from} verified: deliver ${ip(dgram.src)} > ${ip(dgram.dst)} inside`,
    };
  }
  const how = protectToward(place, dgram.dst);
  if ('plain' in how)
    return {
      action: 'relay',
      reason: `Next-hop AH from ${from} verified: strip it and forward as usual IP (${how.plain})`,
    };
  return {
    action: 'encap',
    ...how,
    reason:
      `Next-hop AH from ${from} verified: ${self.name} becomes the VPN end and protects ${ip(dgram.src)} > ` +
      `${ip(dgram.dst)} End-End to ${endText(how.end)} (§3.2 step 2)`,
  };
}

/**
 * Whether the peer that keyed `layer` may speak for the datagram's source, for an End-End layer and for a plain
 * datagram under a Next-hop layer alike: an SGW for hosts behind it but never for an SMN of this SGW (§3.2 step 2), an
 * SMN for its own addresses.
 */
function sourceRefusal(place: SgwPlace, layer: SkipLayer, dgram: IpPair): Decision | undefined {
  const { map, self } = place;
  const peer = layer.skipSrc;
  const src = toU32(dgram.src);
  const sgwPeer = peer.nsid === NSID_NONE;
  // §3.2 step 2: the home SGW sees its own SMN's datagram, but another SGW negotiated the End-End layer (or none was
  // made).
  if (isOwnSmnHome(place, src) && (sgwPeer || (layer.kind === 'nexthop' && src === peer.address))) {
    const how =
      sgwPeer && layer.kind === 'end'
        ? 'End-End layer was negotiated by'
        : 'datagram came under only a Next-hop AH from';
    return reject(
      'end-end-conflict',
      Icmp40Code.needAuthorization,
      dgram.src,
      `${ip(dgram.src)} is an SMN of ${self.name}, but its ${how} ${nameText(peer)}: ` +
        `the SMN must do End-End with ${self.name} itself (§3.2 step 2)`,
    );
  }
  if (sgwPeer) {
    // A peer SGW speaks for hosts behind it; for the rest of this SGW's own network it cannot.
    const srcSgw = map.protectingSgw(src);
    const peerSgw = map.sgwByAddress(peer.address)!;
    if (!isInMyRegion(place, src) || (srcSgw && map.isWithin(srcSgw, peerSgw))) return undefined;
    return spoofed(`inner source ${ip(src)} is behind ${self.name}; ${nameText(peer)} cannot speak for it`);
  }
  // An SMN speaks for its home address and its care-of address: under End-End only toward its own HA (registration,
  // §4.4).
  const careOf = src === toU32(layer.ip.src);
  const ha = map.homeAgentFor(peer.address);
  const registering = careOf && ha !== undefined && toU32(ha.address) === toU32(dgram.dst);
  if (src === peer.address || (layer.kind === 'nexthop' ? careOf : registering)) return undefined;
  const which = layer.kind === 'end' ? 'its care-of address talking to its HA' : 'its care-of address';
  return spoofed(`inner source ${ip(src)} is neither the home address of ${nameText(peer)} nor ${which}`);
}

function spoofed(reason: string): Decision {
  return { action: 'drop', counter: 'spoofed_source', reason };
}

function decideEnd(place: SgwPlace, packet: PacketView, layer: SkipLayer): Decision {
  const { self } = place;
  const dgram = packet.inner;
  if (!dgram)
    return {
      action: 'drop',
      reason: `End-End layer from ${nameText(layer.skipSrc)} opened but no inner datagram was given`,
    };
  const refused = sourceRefusal(place, layer, dgram);
  if (refused) return refused;
  const peer = layer.skipSrc;
  if (isSelf(place, dgram.dst))
    return {
      action: 'decap',
      peer,
      then: { kind: 'deliver' },
      reason: `datagram for ${self.name} itself from ${nameText(peer)}`,
    };
  if (isMine(place, dgram.dst) || isInEnclosingNetwork(place, dgram.dst)) {
    return {
      action: 'decap',
      peer,
      then: { kind: 'deliver' },
      reason: `End-End layer from ${nameText(peer)}: deliver ${ip(dgram.src)} > ${ip(dgram.dst)} inside`,
    };
  }
  const how = protectToward(place, dgram.dst);
  if ('plain' in how)
    return { action: 'drop', reason: `decrypted datagram for ${ip(dgram.dst)} cannot go on: ${how.plain}` };
  return {
    action: 'decap',
    peer,
    then: { kind: 'reencap', ...how },
    reason:
      `End-End layer from ${nameText(peer)} opened: re-encrypt ${ip(dgram.src)} > ${ip(dgram.dst)} to ` +
      `${endText(how.end)} (§3.3)`,
  };
}

/** A SKIP layer addressed to someone else: every layer crossing an SGW's boundary needs a Next-hop AH for it. */
function decideTransit(place: SgwPlace, packet: PacketView, layer: SkipLayer): Decision {
  const { self } = place;
  const dst = layer.ip.dst;
  if (packet.arrivedOn === 'inside') {
    if (isInMyRegion(place, dst))
      return { action: 'pass', reason: `${ip(dst)} is behind ${self.name} too: internal traffic` };
    return reject(
      'need-nexthop-auth',
      Icmp40Code.needAuthentication,
      layer.ip.src,
      `${layer.kind} layer from ${nameText(layer.skipSrc)} leaves ${self.name}'s network without a Next-hop AH for ` +
        `${self.name} (§3.2 step 1, §4.4)`,
    );
  }
  if (!isInMyRegion(place, dst)) return { action: 'drop', reason: `${ip(dst)} is not behind ${self.name}` };
  // An SGW that exchanges keys with no other SGW cannot ask them for a Next-hop AH: the End-End layer to its visitor is
  // usual IP to it (§3.4).
  if (!self.vpnRoutable)
    return {
      action: 'pass',
      reason: `${self.name} builds no VPNs: ${layer.kind} layer for ${ip(dst)} passes as usual IP (§3.4)`,
    };
  return reject(
    'need-nexthop-auth',
    Icmp40Code.needAuthentication,
    layer.ip.src,
    `${layer.kind} layer for ${ip(dst)} enters ${self.name}'s network without a Next-hop AH for ${self.name} (§3.1)`,
  );
}
