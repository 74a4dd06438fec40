// Whom an SGW asks for a certificate it lacks (issue 10 hole 10). Never the packet's outer source as
// such: a forged SKIP header would make us send requests to any spoofed address. We ask a node the
// network map vouches for: an SGW by its own address; for an SMN, the visitor itself only when it is
// on our own protected side, otherwise the SGW that protects its care-of address (it admitted the
// visitor and holds the certificate) or its home SGW. See docs/certificates.md §4.
import type { CertCache } from '../../keys/cache.js';
import type { Certificate } from '../../keys/certificate.js';
import type { SkipName } from '../../keys/names.js';
import type { Sgw, TopologyMap } from '../../topology/map.js';
import { u32ToIp } from '../../wire/addr.js';
import { NSID_NONE } from '../../wire/skip.js';

/**
 * The address to ask for `name`'s certificate, for a layer from `source` that arrived on `arrivedOn`; undefined when
 * nobody can vouch.
 */
export function certificateAuthority(
  map: TopologyMap,
  self: Sgw,
  name: SkipName,
  source: number,
  arrivedOn: 'inside' | 'outside',
): string | undefined {
  if (name.nsid === NSID_NONE) {
    const sgw = map.sgwByAddress(name.address);
    return sgw && sgw !== self ? sgw.outside : undefined;
  }
  const visited = map.protectingSgw(source);
  if (visited === self) return arrivedOn === 'inside' ? u32ToIp(source) : undefined;
  if (visited) return visited.outside;
  const home = map.protectingSgw(name.address);
  return home && home !== self ? home.outside : undefined;
}

/** An SGW answers for an SMN certificate it holds (verified against the CA when it was cached). */
export function vouchedCertificate(certs: CertCache, name: SkipName, nowS: number): Certificate | undefined {
  return name.nsid === NSID_NONE ? undefined : certs.get(name, nowS);
}
