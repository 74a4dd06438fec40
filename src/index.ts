// mipsec as a library: the same roles, engine and network the CLI and the lab use (DESIGN §8).
//   import { SecurityGateway, MobileNode, HomeAgent, MemoryNetwork, createEngine, describe } from 'mipsec';

// The packet engine: native addon or the TypeScript path, one API (docs/engine.md).
export { createEngine, Batch, NativeEngine, RefEngine, Op, Verdict, Reason, reasonName } from './engine/index.js';
export type {
  Engine,
  EngineImpl,
  SaDesc,
  Route,
  SaStats,
  BatchOptions,
  PacketResult,
  EspSuite,
  MacAlg,
  Coverage,
} from './engine/index.js';

// Roles (DESIGN §2).
export { SecurityGateway } from './roles/sgw/gateway.js';
export type { SecurityGatewayOptions } from './roles/sgw/gateway.js';
export { MobileNode } from './roles/smn/mobile-node.js';
export type { MobileNodeOptions, OutsidePolicy, Position } from './roles/smn/mobile-node.js';
export type { Procedure } from './roles/smn/paths.js';
export { HomeAgent } from './roles/ha/home-agent.js';
export type { HomeAgentOptions, HomeAgentEvent, Binding, MobileNodeEntry } from './roles/ha/home-agent.js';
export { RegistrationClient } from './roles/smn/registration-client.js';
export { UdpRegistrationTransport } from './roles/smn/registration-transport.js';
export { TunnelEndpoint } from './roles/smn/tunnel-endpoint.js';
export type {
  RegistrationClientOptions,
  RegistrationEvent,
  RegistrationState,
  RegistrationTransport,
} from './roles/smn/registration-client.js';
export { KeyLog } from './roles/common/keylog.js';
export { DEFAULT_SUITES } from './roles/common/suites.js';
export type { Suites } from './roles/common/suites.js';

// Networks: the interface roles see, and its in-memory implementation.
export { MemoryNetwork } from './net/memory.js';
export type {
  Network,
  Host,
  Link,
  Clock,
  Timer,
  CapturedPacket,
  HookResult,
  PacketContext,
  InterfaceInfo,
  RouteEntry,
} from './net/types.js';

// The network map, position classification (§2.4, §4.2) and configuration files.
export { buildTopology, TopologyMap } from './topology/map.js';
export type { NetworkSpec, SiteSpec, SgwSpec, HomeAgentSpec, HostSpec, Sgw, Site, SpecIssue } from './topology/map.js';
export { communicationMode, classifyFigure6 } from './topology/position.js';
export { loadNetworkMap, loadNode, checkFiles } from './config/index.js';
export type { NodeConfig } from './config/index.js';
export { decide } from './policy/sgw.js';
export type { Decision, PacketView, SgwPlace } from './policy/sgw.js';

// Keys: identities, certificates, the cache, SKIP keying (docs/certificates.md, docs/skip-keying.md).
export { CertCache } from './keys/cache.js';
export { issueCertificate, verifyCertificate, decodeCertificate } from './keys/certificate.js';
export type { Certificate, CaKey } from './keys/certificate.js';
export { generateCaKey, generateX25519, loadIdentity, loadCertificate, loadCaKey } from './keys/keyfile.js';
export type { Identity } from './keys/keyfile.js';
export { SkipKeying } from './keys/keying.js';
export { parseName, formatName } from './keys/names.js';
export { makeCa as createCa, makeIdentity as createIdentity } from './lab/world.js';

// Wire: rendering and building packets.
export { describe } from './wire/describe.js';
export type { DescribeResolver } from './wire/describe.js';
export { buildUdpDatagram, parseUdpDatagram } from './wire/udp.js';
export { ipToU32, u32ToIp } from './wire/addr.js';

// The lab: worlds and the draft's scenarios.
export { buildWorld } from './lab/world.js';
export type { World, WorldOptions } from './lab/world.js';
export { runScenario } from './lab/scenario.js';
export type { Scenario, ScenarioRun } from './lab/scenario.js';
export { figure6World, figure6Map } from './lab/figure6-world.js';
