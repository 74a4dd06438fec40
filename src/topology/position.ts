// Position classification (draft §4.2): where the SMN and its correspondent are decides how they talk.
import { u32ToIp } from '../wire/addr.js';
import { toU32, type Address, type TopologyMap } from './map.js';

/**
 * The draft's first table: <1> VPN through SGW, <2> VPN through SMN, <3>/<4> usual (mobile) IP.
 * A correspondent counts as SGW-protected only when a VPN can reach it, i.e. its network is
 * VPN-routable (§2.4); one behind an SGW that builds no VPNs is talked to like an outside host.
 */
export type Mode = 1 | 2 | 3 | 4;
export type Side = 'sgw-protected' | 'outside';

export interface ModeClass {
  mode: Mode;
  smn: Side;
  ch: Side;
}

export function communicationMode(map: TopologyMap, smnCareOf: Address, ch: Address): ModeClass {
  const smn: Side = map.isProtected(smnCareOf) ? 'sgw-protected' : 'outside';
  const chSide: Side = map.isVpnRoutable(ch) ? 'sgw-protected' : 'outside';
  const mode: Mode = chSide === 'sgw-protected' ? (smn === 'sgw-protected' ? 1 : 2) : smn === 'sgw-protected' ? 3 : 4;
  return { mode, smn, ch: chSide };
}

/** Rows of the second table: the SMN at home, in the CH's site, in a third site, or outside. */
export type SmnPlace = 'home' | 'ch-site' | 'other-site' | 'outside';
/** Columns: the CH on the SMN's home network, or in another site. */
export type ChPlace = 'home' | 'other-site';
export type Figure6CaseNumber = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export type Figure6Class =
  | (ModeClass & { mode: 1 | 2; case: Figure6CaseNumber; smnPlace: SmnPlace; chPlace: ChPlace; smnIpsec: boolean })
  | (ModeClass & { mode: 3 | 4; case: null; smnIpsec: false });

const CASES: Record<SmnPlace, Record<ChPlace, Figure6CaseNumber>> = {
  home: { home: 1, 'other-site': 2 },
  // With the CH at home, "Other 1 (CH's home)" and "Other 2" are one cell: case (3).
  'ch-site': { home: 3, 'other-site': 4 },
  'other-site': { home: 3, 'other-site': 5 },
  outside: { home: 6, 'other-site': 7 },
};

/**
 * The draft's second table, for the Figure 6 configuration: cases (1)–(7) of §4.5, and whether the
 * SMN's own IPsec module is used (every case but (1) and (2), where the home SGW does the VPN).
 * Sites are compared, so an SMN on a nested part of its home site is still at home.
 * Throws RangeError when the home address is not SGW-protected (the map serves every SMN's home).
 */
export function classifyFigure6(map: TopologyMap, smn: { careOf: Address; home: Address }, ch: Address): Figure6Class {
  const mode = communicationMode(map, smn.careOf, ch);
  if (mode.mode === 3 || mode.mode === 4) return { ...mode, mode: mode.mode, case: null, smnIpsec: false };

  const homeSgw = map.protectingSgw(smn.home);
  if (!homeSgw)
    throw new RangeError(`SMN home address ${u32ToIp(toU32(smn.home))} is not protected by any SGW of map ${map.name}`);
  const homeSite = homeSgw.site;
  const chSite = map.protectingSgw(ch)?.site;
  const careOfSite = map.protectingSgw(smn.careOf)?.site;
  const chPlace: ChPlace = chSite === homeSite ? 'home' : 'other-site';
  const smnPlace: SmnPlace =
    careOfSite === undefined
      ? 'outside'
      : careOfSite === homeSite
        ? 'home'
        : careOfSite === chSite
          ? 'ch-site'
          : 'other-site';
  const number = CASES[smnPlace][chPlace];
  return { ...mode, mode: mode.mode, case: number, smnPlace, chPlace, smnIpsec: number > 2 };
}
