// The VPN-routable network map (draft §2.2, §2.4): sites, the SGWs protecting them (nested as in
// Figure 1), Border-SGWs, home agents and the home addresses they serve, correspondent hosts.
// Built from plain data (the YAML loader in src/config/ produces it); every inconsistency is
// reported with the path of the field, so the config checker can name it.
import { ipToU32, isIpv4, parsePrefix, prefixContains, u32ToIp, type Prefix } from '../wire/addr.js';

/** An IPv4 address as dotted text or as an unsigned 32-bit number (as read from a packet). */
export type Address = string | number;

export interface SiteSpec {
  name: string;
  /** 'a.b.c.d/len' */
  prefixes: string[];
  /** Exchanges security information with the other VPN-routable sites (§2.4). Default true. */
  vpnRoutable?: boolean;
}

export interface SgwSpec {
  name: string;
  /** The site this SGW protects (all of it, or the part given by `prefixes`). */
  site: string;
  /** Narrows the protected part of the site; needed for nested SGWs. Default: the site's prefixes. */
  prefixes?: string[];
  /** Address on the protected side. */
  inside: string;
  /** Address on the far side: global for a Border-SGW, inside the parent's network for a nested one. */
  outside: string;
  /** The SGW whose protected network this one's outside interface sits in (Figure 1: SGW0 behind SGW1). */
  behind?: string;
  /** Sits between the private networks and the Internet (§2.4). Default: true when not behind another SGW. */
  border?: boolean;
}

export interface HomeAgentSpec {
  name: string;
  address: string;
  /** Home addresses served: 'a.b.c.d' or 'a.b.c.d/len'. */
  serves: string[];
}

export interface HostSpec {
  name: string;
  address: string;
}

export interface NetworkSpec {
  name: string;
  sites: SiteSpec[];
  sgws: SgwSpec[];
  homeAgents?: HomeAgentSpec[];
  hosts?: HostSpec[];
}

export interface Site {
  readonly name: string;
  readonly prefixes: readonly Prefix[];
  readonly vpnRoutable: boolean;
}

export interface Sgw {
  readonly name: string;
  readonly site: Site;
  readonly prefixes: readonly Prefix[];
  readonly inside: string;
  readonly outside: string;
  readonly behind: Sgw | undefined;
  readonly border: boolean;
  /** Same as its site's flag. */
  readonly vpnRoutable: boolean;
}

export interface HomeAgent {
  readonly name: string;
  readonly address: string;
  readonly serves: readonly Prefix[];
  /** The SGW protecting the HA: the home SGW of every SMN it serves. */
  readonly sgw: Sgw;
}

export interface Host {
  readonly name: string;
  readonly address: string;
}

/** One SGW a packet crosses: 'out' leaving its protected network, 'in' entering it. */
export interface Crossing {
  readonly sgw: Sgw;
  readonly direction: 'out' | 'in';
}

/** A problem in a network spec; `path` names the field (e.g. ['sgws', 1, 'behind']). */
export interface SpecIssue {
  path: (string | number)[];
  message: string;
}

export type BuildResult = { ok: true; map: TopologyMap } | { ok: false; issues: SpecIssue[] };

export function toU32(address: Address): number {
  return typeof address === 'number' ? address >>> 0 : ipToU32(address);
}

export function formatPrefix(prefix: Prefix): string {
  return `${u32ToIp(prefix.network)}/${prefix.length}`;
}

/** 'a.b.c.d' (a /32) or 'a.b.c.d/len'. Throws RangeError naming the bad text. */
export function parseAddressOrPrefix(text: string): Prefix {
  return text.includes('/') ? parsePrefix(text) : { network: ipToU32(text), length: 32 };
}

/** a ⊆ b */
export function prefixWithin(a: Prefix, b: Prefix): boolean {
  return a.length >= b.length && prefixContains(b, a.network);
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixWithin(a, b) || prefixWithin(b, a);
}

interface ProtectedPrefix {
  prefix: Prefix;
  sgw: Sgw;
}

export class TopologyMap {
  readonly name: string;
  readonly sites: readonly Site[];
  readonly sgws: readonly Sgw[];
  readonly homeAgents: readonly HomeAgent[];
  readonly hosts: readonly Host[];
  /** Longest prefix first. */
  private readonly table: readonly ProtectedPrefix[];

  constructor(name: string, sites: Site[], sgws: Sgw[], homeAgents: HomeAgent[], hosts: Host[]) {
    this.name = name;
    this.sites = sites;
    this.sgws = sgws;
    this.homeAgents = homeAgents;
    this.hosts = hosts;
    this.table = sgws
      .flatMap((sgw) => sgw.prefixes.map((prefix) => ({ prefix, sgw })))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  site(name: string): Site | undefined {
    return this.sites.find((s) => s.name === name);
  }

  sgw(name: string): Sgw | undefined {
    return this.sgws.find((s) => s.name === name);
  }

  homeAgent(name: string): HomeAgent | undefined {
    return this.homeAgents.find((h) => h.name === name);
  }

  host(name: string): Host | undefined {
    return this.hosts.find((h) => h.name === name);
  }

  /** The SGW owning this address as its inside or outside address. */
  sgwByAddress(address: Address): Sgw | undefined {
    const a = toU32(address);
    return this.sgws.find((s) => ipToU32(s.inside) === a || ipToU32(s.outside) === a);
  }

  /** The innermost SGW protecting the address (longest prefix match), or undefined for an outside address. */
  protectingSgw(address: Address): Sgw | undefined {
    const a = toU32(address);
    return this.table.find((entry) => prefixContains(entry.prefix, a))?.sgw;
  }

  isProtected(address: Address): boolean {
    return this.protectingSgw(address) !== undefined;
  }

  /** Protected by an SGW of a VPN-routable site (§2.4). */
  isVpnRoutable(address: Address): boolean {
    return this.protectingSgw(address)?.vpnRoutable ?? false;
  }

  /** Border-SGWs of the VPN-routable system: the entry points an SMN may be given (§2.4, §3.3). */
  borderSgws(): Sgw[] {
    return this.sgws.filter((s) => s.border && s.vpnRoutable);
  }

  /** The SGW and the ones it sits behind, innermost first. */
  chain(sgw: Sgw | undefined): Sgw[] {
    const out: Sgw[] = [];
    for (let at = sgw; at; at = at.behind) out.push(at);
    return out;
  }

  /** Whether `inner` is `outer` or sits (transitively) behind it. */
  isWithin(inner: Sgw, outer: Sgw): boolean {
    return this.chain(inner).includes(outer);
  }

  /**
   * The SGWs a packet from `src` to `dst` crosses under Figure 1 nesting: out through the
   * source's SGWs, innermost to border, then in through the destination's, border to innermost.
   * SGWs enclosing both ends are not crossed.
   */
  path(src: Address, dst: Address): Crossing[] {
    return this.crossings(this.chain(this.protectingSgw(src)), this.chain(this.protectingSgw(dst)));
  }

  /**
   * The next SGW a packet crosses after leaving `from` toward `dst`: inward when `dst` is behind
   * `from`, otherwise from the network `from` sits in. Undefined when nothing lies between.
   */
  nextHopSgw(from: Sgw, address: Address): Sgw | undefined {
    const dstChain = this.chain(this.protectingSgw(address));
    const at = dstChain.indexOf(from);
    if (at >= 0) return at > 0 ? dstChain[at - 1] : undefined;
    return this.crossings(this.chain(from.behind), dstChain)[0]?.sgw;
  }

  /**
   * The SGW `from` shares the Next-hop layer with for a datagram addressed to `address`: the next
   * SGW crossed or, when none lies between, the SGW that owns the address itself.
   */
  nextHopPeer(from: Sgw, address: Address): Sgw | undefined {
    const next = this.nextHopSgw(from, address) ?? this.sgwByAddress(address);
    return next === from ? undefined : next;
  }

  /** The HA serving a home address. */
  homeAgentFor(homeAddress: Address): HomeAgent | undefined {
    const a = toU32(homeAddress);
    return this.homeAgents.find((ha) => ha.serves.some((p) => prefixContains(p, a)));
  }

  private crossings(srcChain: Sgw[], dstChain: Sgw[]): Crossing[] {
    let common = 0;
    while (
      common < srcChain.length &&
      common < dstChain.length &&
      srcChain[srcChain.length - 1 - common] === dstChain[dstChain.length - 1 - common]
    ) {
      common++;
    }
    const out = srcChain.slice(0, srcChain.length - common).map((sgw) => ({ sgw, direction: 'out' as const }));
    const inward = dstChain
      .slice(0, dstChain.length - common)
      .reverse()
      .map((sgw) => ({ sgw, direction: 'in' as const }));
    return [...out, ...inward];
  }
}

/** Validates a spec (draft §2.2 unique addressing, nesting, HAs) and builds the map. */
export function buildTopology(spec: NetworkSpec): BuildResult {
  const issues: SpecIssue[] = [];
  const issue = (path: (string | number)[], message: string) => issues.push({ path, message });

  const parseList = (texts: string[], path: (string | number)[], parse: (t: string) => Prefix): Prefix[] =>
    texts.flatMap((text, i) => {
      try {
        return [parse(text)];
      } catch (err) {
        issue([...path, i], (err as Error).message);
        return [];
      }
    });
  const checkAddress = (text: string, path: (string | number)[]): boolean => {
    if (isIpv4(text)) return true;
    issue(path, `expected an IPv4 address such as 10.0.0.1, got ${JSON.stringify(text)}`);
    return false;
  };

  // Names are unique across every kind of entity, so a config can refer to any of them by name.
  const seenNames = new Map<string, string>();
  const claimName = (name: string, path: (string | number)[]) => {
    const where = seenNames.get(name);
    if (where)
      issue(
        [...path, 'name'],
        `duplicate name ${JSON.stringify(name)} (already used by ${where}); names must be unique across sites, ` +
          `SGWs, HAs and hosts`,
      );
    else seenNames.set(name, `${path[0]}[${path[1]}]`);
  };
  const homeAgentSpecs = spec.homeAgents ?? [];
  const hostSpecs = spec.hosts ?? [];
  spec.sites.forEach((s, i) => claimName(s.name, ['sites', i]));
  spec.sgws.forEach((s, i) => claimName(s.name, ['sgws', i]));
  homeAgentSpecs.forEach((h, i) => claimName(h.name, ['homeAgents', i]));
  hostSpecs.forEach((h, i) => claimName(h.name, ['hosts', i]));

  // Sites: SGW-protected networks never overlap (§2.2).
  const sites: Site[] = spec.sites.map((s, i) => ({
    name: s.name,
    prefixes: parseList(s.prefixes, ['sites', i, 'prefixes'], parsePrefix),
    vpnRoutable: s.vpnRoutable ?? true,
  }));
  sites.forEach((site, i) =>
    site.prefixes.forEach((p, j) => {
      for (let k = 0; k < i; k++) {
        const clash = sites[k].prefixes.find((q) => prefixesOverlap(p, q));
        if (clash) {
          issue(
            ['sites', i, 'prefixes', j],
            `${formatPrefix(p)} overlaps ${formatPrefix(clash)} of site ${JSON.stringify(sites[k].name)}; ` +
              `SGW-protected networks must not overlap (draft §2.2)`,
          );
        }
      }
      const twin = site.prefixes.slice(0, j).find((q) => prefixesOverlap(p, q));
      if (twin)
        issue(
          ['sites', i, 'prefixes', j],
          `${formatPrefix(p)} overlaps ${formatPrefix(twin)} of the same site; list each part once`,
        );
    }),
  );

  // SGWs: first without links, then resolve `behind`.
  type MutableSgw = { -readonly [K in keyof Sgw]: Sgw[K] };
  const sgws: MutableSgw[] = [];
  spec.sgws.forEach((s, i) => {
    const at = ['sgws', i];
    const site = sites.find((x) => x.name === s.site);
    if (!site) {
      issue(
        [...at, 'site'],
        `no site named ${JSON.stringify(s.site)} (sites: ${sites.map((x) => x.name).join(', ') || 'none'})`,
      );
    }
    checkAddress(s.inside, [...at, 'inside']);
    checkAddress(s.outside, [...at, 'outside']);
    const prefixes = s.prefixes ? parseList(s.prefixes, [...at, 'prefixes'], parsePrefix) : [...(site?.prefixes ?? [])];
    if (site && s.prefixes) {
      prefixes.forEach((p, j) => {
        if (!site.prefixes.some((q) => prefixWithin(p, q))) {
          issue(
            [...at, 'prefixes', j],
            `${formatPrefix(p)} lies outside site ${JSON.stringify(site.name)} ` +
              `(${site.prefixes.map(formatPrefix).join(', ')})`,
          );
        }
      });
    }
    sgws.push({
      name: s.name,
      site: site ?? { name: s.site, prefixes: [], vpnRoutable: false },
      prefixes,
      inside: s.inside,
      outside: s.outside,
      behind: undefined,
      border: false,
      vpnRoutable: site?.vpnRoutable ?? false,
    });
  });
  // A misspelt site on an SGW would also leave its real site bare: report the misspelling alone.
  const allSitesKnown = spec.sgws.every((s) => sites.some((x) => x.name === s.site));
  sites.forEach((site, i) => {
    if (allSitesKnown && !spec.sgws.some((s) => s.site === site.name))
      issue(
        ['sites', i, 'name'],
        `site ${JSON.stringify(site.name)} has no SGW; add an SGW with site: ${site.name}, or remove the site`,
      );
  });
  spec.sgws.forEach((s, i) => {
    if (s.behind === undefined) return;
    const parent = sgws.find((x) => x.name === s.behind);
    if (!parent)
      issue(
        ['sgws', i, 'behind'],
        `no SGW named ${JSON.stringify(s.behind)} (SGWs: ${sgws.map((x) => x.name).join(', ')})`,
      );
    else if (parent === sgws[i])
      issue(
        ['sgws', i, 'behind'],
        `an SGW cannot sit behind itself; remove behind or name the SGW in front of ${s.name}`,
      );
    else sgws[i].behind = parent;
  });
  // A cycle makes every chain infinite: break it before anything walks the chains.
  sgws.forEach((sgw, i) => {
    const seen = new Set<MutableSgw>();
    for (let at: MutableSgw | undefined = sgw; at; at = at.behind as MutableSgw | undefined) {
      if (seen.has(at)) {
        issue(
          ['sgws', i, 'behind'],
          `nesting loops back to ${at.name}; each chain of behind: must end at a Border-SGW`,
        );
        sgw.behind = undefined;
        break;
      }
      seen.add(at);
    }
  });
  spec.sgws.forEach((s, i) => {
    const sgw = sgws[i];
    if (s.border && sgw.behind)
      issue(
        ['sgws', i, 'border'],
        `a Border-SGW faces the Internet, but ${s.name} sits behind ${sgw.behind.name}; remove border: true or behind`,
      );
    sgw.border = s.border ?? sgw.behind === undefined;
  });

  // Two SGWs of a site may protect overlapping prefixes only when one sits behind the other and its part is strictly
  // inside.
  const isBehind = (inner: MutableSgw, outer: MutableSgw) => {
    for (let at = inner.behind; at; at = at.behind) if (at === outer) return true;
    return false;
  };
  sgws.forEach((a, i) =>
    a.prefixes.forEach((p, j) => {
      for (let k = 0; k < sgws.length; k++) {
        if (k === i) continue;
        const b = sgws[k];
        // SGWs of different sites never overlap once the sites do not and each SGW stays in its site (checked above).
        if (a.site !== b.site) continue;
        const clash = b.prefixes.find((q) => prefixesOverlap(p, q));
        if (!clash) continue;
        if (!isBehind(a, b) && !isBehind(b, a)) {
          if (k < i)
            issue(
              ['sgws', i, 'prefixes', j],
              `${formatPrefix(p)} overlaps ${formatPrefix(clash)} protected by ${b.name}; give each SGW its own ` +
                `addresses, or nest one behind the other (behind:) with a longer prefix (draft §2.2)`,
            );
        } else if (isBehind(a, b) && !(p.length > clash.length && prefixWithin(p, clash))) {
          issue(
            ['sgws', i, 'prefixes', j],
            `${a.name} sits behind ${b.name}, so ${formatPrefix(p)} must lie strictly inside ${formatPrefix(clash)}`,
          );
        }
      }
    }),
  );
  if (issues.length > 0) return { ok: false, issues };

  // Addresses: now the prefixes are sound, build the map and check where each SGW's interfaces sit.
  // The map shares this array: HAs are added below once each is checked against the SGWs.
  const homeAgents: HomeAgent[] = [];
  const hosts: Host[] = hostSpecs
    .filter((h, i) => checkAddress(h.address, ['hosts', i, 'address']))
    .map((h) => ({ ...h }));
  const map = new TopologyMap(spec.name, sites, sgws, homeAgents, hosts);
  sgws.forEach((sgw, i) => {
    if (map.protectingSgw(sgw.inside) !== sgw) {
      issue(
        ['sgws', i, 'inside'],
        `${sgw.inside} is not in ${sgw.name}'s protected network (${sgw.prefixes.map(formatPrefix).join(', ')}); ` +
          `use an address of that network`,
      );
    }
    const around = map.protectingSgw(sgw.outside);
    if (sgw.behind && around !== sgw.behind) {
      issue(
        ['sgws', i, 'outside'],
        `${sgw.outside} is not in the network protected by ${sgw.behind.name} (behind: ${sgw.behind.name}); ` +
          `use an address of ${sgw.behind.prefixes.map(formatPrefix).join(', ')}`,
      );
    }
    if (!sgw.behind && around) {
      issue(
        ['sgws', i, 'outside'],
        `${sgw.outside} is inside the network protected by ${around.name}; a top-level SGW's outside address is ` +
          `global (or add behind: ${around.name})`,
      );
    }
  });

  const addressOwners = new Map<number, string>();
  const claimAddress = (address: string, owner: string, path: (string | number)[]) => {
    if (!isIpv4(address)) return;
    const other = addressOwners.get(ipToU32(address));
    if (other) issue(path, `${address} is already the address of ${other}; every address belongs to one node`);
    else addressOwners.set(ipToU32(address), owner);
  };
  sgws.forEach((s, i) => {
    claimAddress(s.inside, s.name, ['sgws', i, 'inside']);
    claimAddress(s.outside, s.name, ['sgws', i, 'outside']);
  });

  homeAgentSpecs.forEach((h, i) => {
    const at = ['homeAgents', i];
    if (!checkAddress(h.address, [...at, 'address'])) return;
    claimAddress(h.address, h.name, [...at, 'address']);
    const sgw = map.protectingSgw(h.address);
    if (!sgw) {
      issue(
        [...at, 'address'],
        `${h.address} is not protected by any SGW; an HA sits on its home network behind the home SGW, which does ` +
          `its IPsec (draft §2.1)`,
      );
      return;
    }
    const serves = parseList(h.serves, [...at, 'serves'], parseAddressOrPrefix);
    serves.forEach((p, j) => {
      if (map.protectingSgw(p.network) !== sgw || !sgw.prefixes.some((q) => prefixWithin(p, q))) {
        issue(
          [...at, 'serves', j],
          `${formatPrefix(p)} is not on ${h.name}'s home network (protected by ` +
            `${sgw.name}: ${sgw.prefixes.map(formatPrefix).join(', ')})`,
        );
      }
      for (const other of homeAgents) {
        const clash = other.serves.find((q) => prefixesOverlap(p, q));
        if (clash)
          issue(
            [...at, 'serves', j],
            `${formatPrefix(p)} is also served by ${other.name} (${formatPrefix(clash)}); each home address has one HA`,
          );
      }
    });
    homeAgents.push({ name: h.name, address: h.address, serves, sgw });
  });
  hostSpecs.forEach((h, i) => claimAddress(h.address, h.name, ['hosts', i, 'address']));

  return issues.length > 0 ? { ok: false, issues } : { ok: true, map };
}
