// SKIP names (DESIGN §3, draft §4.3): SGWs are NSID 0 named by their IPv4 address,
// SMNs are NSID 1 with MKID = home address. Text form: 'sgw:198.18.0.1', 'smn:10.0.0.100'.
import { NSID_IPV4, NSID_NONE } from '../wire/skip.js';
import { isIpv4, ipToU32, u32ToIp } from '../wire/addr.js';

export type NodeNsid = typeof NSID_NONE | typeof NSID_IPV4;

export interface SkipName {
  nsid: NodeNsid;
  /** NSID 0: the SGW's IPv4 address; NSID 1: the SMN's home address (its MKID). As u32. */
  address: number;
}

const PREFIX_BY_NSID: Record<NodeNsid, string> = { [NSID_NONE]: 'sgw', [NSID_IPV4]: 'smn' };

export const NAME_EXAMPLE = 'sgw:198.18.0.1 or smn:10.0.0.100';

export function formatName(name: SkipName): string {
  return `${PREFIX_BY_NSID[name.nsid]}:${u32ToIp(name.address)}`;
}

/** 'sgw:a.b.c.d' | 'smn:a.b.c.d' → SkipName; an error text naming what is wrong otherwise. */
export function parseName(text: string): { ok: true; name: SkipName } | { ok: false; error: string } {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? '' : text.slice(0, colon);
  const address = text.slice(colon + 1);
  const nsid = kind === 'sgw' ? NSID_NONE : kind === 'smn' ? NSID_IPV4 : undefined;
  if (nsid === undefined)
    return { ok: false, error: `name '${text}' must start with 'sgw:' or 'smn:' (e.g. ${NAME_EXAMPLE})` };
  if (!isIpv4(address))
    return { ok: false, error: `name '${text}' needs a dotted IPv4 address after '${kind}:' (e.g. ${NAME_EXAMPLE})` };
  return { ok: true, name: { nsid, address: ipToU32(address) } };
}

export function sameName(a: SkipName, b: SkipName): boolean {
  return a.nsid === b.nsid && a.address === b.address;
}
