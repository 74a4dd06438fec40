// A lab scenario: a world (topology), where the SMN is, one probe and its echo (traffic), and the
// stacks expected on each link. runScenario() drives it on any world; the tests and `mipsec lab`
// compare what it returns with `expect`.
import type { EngineImpl } from '../engine/index.js';
import { figure6Map } from './figure6.js';
import { clearCaptures, hops, stacksByLink, type Hop } from './stacks.js';
import { collectEchoes, probe } from './traffic.js';
import { DISCOVERY_PORT } from '../keys/discovery.js';
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
  /** 'registration': the captures of the move itself; else one probe from `from` (the SMN or a host name) to `to`, echoed back. */
  traffic: 'registration' | { from: string; to: string };
  /** Link → the distinct "sender > receiver: stack" lines, in the order first seen. */
  expect: Record<string, string[]>;
}

export interface ScenarioRun {
  world: World;
  stacks: Record<string, string[]>;
  hops: Hop[];
  /** The echo came back to the sender. */
  echoed: boolean;
  registered: boolean;
}

/** Time for a registration (with a failure round trip) to settle. */
export const SETTLE_MS = 2000;

export async function scenarioWorld(s: Scenario, engine: EngineImpl): Promise<World> {
  const map = s.map === 'figure6' ? await figure6Map() : s.map();
  return buildWorld({ ...s.world, map, engine, smn: s.smn });
}

export async function runScenario(s: Scenario, engine: EngineImpl): Promise<ScenarioRun> {
  const world = await scenarioWorld(s, engine);
  const resolver = world.keyLog.resolver();
  if (s.traffic === 'registration') {
    world.place(s.place);
    world.network.runFor(SETTLE_MS);
    return finish(world, resolver, true);
  }
  if (s.place !== 'home') world.place(s.place);
  world.network.runFor(SETTLE_MS);
  clearCaptures(world.network);
  const { from, to } = s.traffic;
  const sender = from === 'smn' ? world.smnHost : world.network.host(from);
  const echoes = collectEchoes(sender);
  const src = from === 'smn' ? world.smn.addressFor(to) : sender.interfaces()[0].address;
  const packet = probe(src, to, 1);
  if (from === 'smn') world.smn.send(packet);
  else sender.send(packet);
  world.network.runFor(SETTLE_MS);
  echoes.stop();
  return finish(world, resolver, echoes.seqs.includes(1));
}

function finish(world: World, resolver: ReturnType<World['keyLog']['resolver']>, echoed: boolean): ScenarioRun {
  const keep = (h: Hop) => !h.stack.includes(`UDP(${DISCOVERY_PORT}>`) && !h.stack.includes(`>${DISCOVERY_PORT})`);
  return { world, stacks: stacksByLink(world.network, resolver, keep), hops: hops(world.network, resolver), echoed, registered: world.smn.registration.state === 'registered' || world.smn.position().place === 'home' };
}

