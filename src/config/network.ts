// The network-map file (kind: network-map): the YAML face of src/topology's NetworkSpec.
import * as z from 'zod';
import { buildTopology, type BuildResult, type NetworkSpec } from '../topology/map.js';
import { flag, fromZod, ipv4, list, mapping, name, prefix } from './fields.js';

export const NETWORK_MAP_KIND = 'network-map';

const site = mapping(
  {
    name: name('home'),
    prefixes: list(prefix('10.0.0.0/16'), 'IPv4 prefixes such as 10.0.0.0/16', 1),
    vpnRoutable: flag().optional(),
  },
  'a site',
);

const sgw = mapping(
  {
    name: name('sgw0'),
    site: name('home'),
    prefixes: list(prefix('10.0.1.0/24'), 'IPv4 prefixes such as 10.0.1.0/24', 1).optional(),
    inside: ipv4('10.0.0.1'),
    outside: ipv4('198.18.0.1'),
    behind: name('sgw1').optional(),
    border: flag().optional(),
  },
  'an SGW',
);

const homeAgent = mapping(
  {
    name: name('ha'),
    address: ipv4('10.0.0.2'),
    serves: list(prefix('10.0.0.100', true), 'home addresses or prefixes such as 10.0.0.100', 1),
  },
  'a home agent',
);

const host = mapping({ name: name('ch0'), address: ipv4('10.0.0.10') }, 'a host');

export const networkMapSchema = mapping(
  {
    kind: z.literal(NETWORK_MAP_KIND),
    name: name('figure6'),
    sites: list(site, 'sites', 1),
    sgws: list(sgw, 'SGWs', 1),
    homeAgents: list(homeAgent, 'home agents').optional(),
    hosts: list(host, 'hosts').optional(),
  },
  'a network map',
);

/** Validates a parsed YAML document as a network map and builds the topology. */
export function networkMapFromDocument(doc: unknown): BuildResult {
  const parsed = networkMapSchema.safeParse(doc);
  if (!parsed.success) return { ok: false, issues: fromZod(parsed.error.issues) };
  const { kind: _kind, ...spec } = parsed.data;
  return buildTopology(spec satisfies NetworkSpec);
}
