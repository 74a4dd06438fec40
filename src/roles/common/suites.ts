// The algorithms a node's SAs use. Next-hop coverage is not carried in the SKIP header, so both
// ends of a Next-hop layer must agree on it: the default is the draft's §3.6 header-only MAC.
import type { Coverage, EspSuite, MacAlg } from '../../engine/types.js';

export interface Suites {
  esp: EspSuite;
  /** End-End AH in front of ESP (the draft's "EndAH+ESP"); undefined for ESP alone. */
  endAh?: MacAlg;
  nextHopAh: MacAlg;
  coverage: Coverage;
}

export const DEFAULT_SUITES: Suites = {
  esp: 'aes128gcm',
  endAh: 'gmac-aes128',
  nextHopAh: 'gmac-aes128',
  coverage: 'headers',
};
