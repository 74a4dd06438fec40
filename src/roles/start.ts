// Where a role is started: the lab's worlds (src/lab/world.ts) and the daemon (src/daemon/roles.ts) both
// call startRole with a spec, each bringing only what is its own (the lab: its CA's certificates and lab knobs; the
// daemon: its config's settings, the HA's journal).
import type { Engine } from '../engine/index.js';
import type { CertCache } from '../keys/cache.js';
import type { Identity } from '../keys/keyfile.js';
import type { Clock, Host } from '../net/types.js';
import type { TopologyMap } from '../topology/map.js';
import type { KeyLog } from './common/keylog.js';
import { HomeAgent, type HomeAgentOptions } from './ha/home-agent.js';
import { SecurityGateway, type SecurityGatewayOptions } from './sgw/gateway.js';
import { MobileNode, type MobileNodeOptions } from './smn/mobile-node.js';

/** What every role runs on. */
export interface RoleDeps {
  host: Host;
  clock: Clock;
  engine: Engine;
}

/** What a SKIP end (SGW, SMN) keys with besides. */
export interface SkipDeps extends RoleDeps {
  map: TopologyMap;
  identity: Identity;
  /** Verified peer certificates (the CA is their trust anchor). */
  certs: CertCache;
  /** Test/lab only: where the role logs the SAs it installs. */
  keyLog?: KeyLog;
}

export type SgwSpec = { role: 'sgw' } & SkipDeps & Omit<SecurityGatewayOptions, keyof SkipDeps>;
export type SmnSpec = { role: 'smn' } & SkipDeps & Omit<MobileNodeOptions, keyof SkipDeps>;
export type HaSpec = { role: 'ha' } & RoleDeps & Omit<HomeAgentOptions, keyof RoleDeps>;
export type RoleSpec = SgwSpec | SmnSpec | HaSpec;
export type Role = SecurityGateway | MobileNode | HomeAgent;

/** Starts the role `spec.role` names on its host, with the spec's settings (the rest at the role's defaults). */
export function startRole(spec: SgwSpec): SecurityGateway;
export function startRole(spec: SmnSpec): MobileNode;
export function startRole(spec: HaSpec): HomeAgent;
export function startRole(spec: RoleSpec): Role;
export function startRole(spec: RoleSpec): Role {
  switch (spec.role) {
    case 'sgw': {
      const { role: _role, ...options } = spec;
      return new SecurityGateway(options);
    }
    case 'smn': {
      const { role: _role, ...options } = spec;
      return new MobileNode(options);
    }
    case 'ha': {
      const { role: _role, ...options } = spec;
      return new HomeAgent(options);
    }
  }
}
