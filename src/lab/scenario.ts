// A lab scenario: a world (topology), where the SMN is, one probe and its echo (traffic), and the
// stacks expected on each link. runScenario() drives it on any world; the tests and `mipsec lab`
// compare what it returns with `expect`.
import type { EngineImpl } from '../engine/index.js';
import { figure6Map } from './figure6-world.js';
import { clearCaptures, hops, stacksByLink, type Hop } from './stacks.js';
import { collectEchoes, probe } from './traffic.js';
import { DISCOVERY_PORT } from '../keys/discovery.js';
import { MemoryNetwork } from '../net/memory.js';
import type { KeyLog } from '../roles/common/keylog.js';
import type { Network } from '../net/types.js';
import type { TopologyMap } from '../topology/map.js';
import { buildWorld, type SmnSetup, type World, type WorldOptions } from './world.js';

export interface Scenario {
  /** The draft section the scenario shows. */
  section: string;
  title: string;
  map: 'figure6' | (() => TopologyMap);
  smn?: SmnSetup;
  world?: Omit<WorldOptions, 'map' | 'engine' | 'smn'>;
  /** Where the SMN is when the traffic starts (see World.place). */
  place: string;
  /**
   * 'registration': the captures of the move itself; else one probe from `from` (the SMN or a host name) to `to`,
   * echoed back.
   */
  traffic: 'registration' | { from: string; to: string };
  /** Link → the distinct "sender > receiver: stack" lines, in the order first seen. */
  expect: Record<string, string[]>;
}

export interface ScenarioRun<N extends Network = MemoryNetwork> {
  world: World<N>;
  stacks: Record<string, string[]>;
  hops: Hop[];
  /** The echo came back to the sender. */
  echoed: boolean;
  registered: boolean;
}

/** Time for a registration (with a failure round trip) to settle. */
export const SETTLE_MS = 2000;

/**
 * What a scenario runs on: a fresh network per case and its time. On MemoryNetwork time is virtual
 * and exact; on a real network wait() may end early once `done` holds (plus a grace for late frames).
 */
export interface LabRuntime<N extends Network = Network> {
  /** Wall-clock time on real links (scheduling and ARP add latency) rather than exact virtual time. */
  readonly real: boolean;
  network(): N;
  /** Called once the world is built, before any traffic (e.g. starts the captures). */
  ready(network: N): Promise<void>;
  wait(network: N, ms: number, done?: () => boolean): Promise<void>;
  /** The key log for a new world (default: the world's own). */
  keyLog?(): KeyLog;
}

export const memoryRuntime: LabRuntime<MemoryNetwork> = {
  real: false,
  network: () => new MemoryNetwork(),
  ready: async () => undefined,
  wait: async (network, ms) => {
    network.runFor(ms);
  },
};

export async function scenarioWorld<N extends Network = MemoryNetwork>(
  s: Scenario,
  engine: EngineImpl,
  network?: N,
  keyLog?: KeyLog,
): Promise<World<N>> {
  const map = s.map === 'figure6' ? await figure6Map() : s.map();
  return buildWorld<N>({ ...s.world, map, engine, smn: s.smn, network, keyLog });
}

export function runScenario(s: Scenario, engine: EngineImpl): Promise<ScenarioRun>;
export function runScenario<N extends Network>(
  s: Scenario,
  engine: EngineImpl,
  runtime: LabRuntime<N>,
): Promise<ScenarioRun<N>>;
export async function runScenario<N extends Network>(
  s: Scenario,
  engine: EngineImpl,
  runtime: LabRuntime<N> = memoryRuntime as unknown as LabRuntime<N>,
): Promise<ScenarioRun<N>> {
  const world = await scenarioWorld<N>(s, engine, runtime.network(), runtime.keyLog?.());
  try {
    await runtime.ready(world.network);
    return await drive(s, world, runtime);
  } catch (error) {
    world.close();
    throw error;
  }
}

async function drive<N extends Network>(s: Scenario, world: World<N>, runtime: LabRuntime<N>): Promise<ScenarioRun<N>> {
  const resolver = world.keyLog.resolver();
  const settled = () => isRegistered(world);
  if (s.traffic === 'registration') {
    world.place(s.place);
    await runtime.wait(world.network, SETTLE_MS, settled);
    return finish(world, resolver, true);
  }
  if (s.place !== 'home') world.place(s.place);
  await runtime.wait(world.network, SETTLE_MS, settled);
  clearCaptures(world.network);
  const { from, to } = s.traffic;
  const sender = from === 'smn' ? world.smnHost : world.network.host(from);
  const echoes = collectEchoes(sender);
  const src = from === 'smn' ? world.smn.addressFor(to) : sender.interfaces()[0].address;
  const packet = probe(src, to, 1);
  if (from === 'smn') world.smn.send(packet);
  else sender.send(packet);
  await runtime.wait(world.network, SETTLE_MS, () => echoes.seqs.includes(1));
  echoes.stop();
  return finish(world, resolver, echoes.seqs.includes(1));
}

function isRegistered(world: World<Network>): boolean {
  return world.smn.registration.state === 'registered' || world.smn.position().place === 'home';
}

function finish<N extends Network>(
  world: World<N>,
  resolver: ReturnType<World['keyLog']['resolver']>,
  echoed: boolean,
): ScenarioRun<N> {
  const keep = (h: Hop) => !h.stack.includes(`UDP(${DISCOVERY_PORT}>`) && !h.stack.includes(`>${DISCOVERY_PORT})`);
  return {
    world,
    stacks: stacksByLink(world.network, resolver, keep),
    hops: hops(world.network, resolver),
    echoed,
    registered: isRegistered(world),
  };
}
