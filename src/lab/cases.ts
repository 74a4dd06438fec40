// The cases of `mipsec lab`, named after the draft's sections: the Figure 6 cases (§4.4, §4.5.x),
// the §3 cases, a Figure 2 chain, the §3.5.1 proxy and the handover. Each runs on a LabRuntime —
// the in-memory network or real namespaces — and reports pass/fail with the stacks seen per link.
import type { Network } from '../net/types.js';
import { ipToU32 } from '../wire/addr.js';
import { figure6World } from './figure6-world.js';
import { endAhEsp, nextAh, SGW, smnId, udp } from './formats.js';
import { moveFigures } from './handover.js';
import { HOME_PROXY, homeProxyStacks, runProxy, sendViaHomeProxy } from './proxy.js';
import { runScenario, SETTLE_MS, type LabRuntime, type Scenario } from './scenario.js';
import { F6, figure6Scenarios } from './scenarios/figure6-cases.js';
import { chainScenario, section3Scenarios } from './scenarios/section3.js';
import { clearCaptures, stackDiff, stacksByLink } from './stacks.js';
import { Flow } from './traffic.js';
import { spiCase } from './spi.js';
import type { World } from './world.js';
import type { AppPath, CaseContext, CaseResult, LabCase } from './case.js';

const SCENARIO_IDS: Record<string, string> = {
  '§4.4': '4.4',
  '§4.5.1': '4.5.1',
  '§4.5.2': '4.5.2',
  '§4.5.3': '4.5.3',
  '§4.5.4': '4.5.4',
  '§4.5.5': '4.5.5',
  '§4.5.6': '4.5.6',
  '§4.5.7': '4.5.7a',
  '§4.5.7 (optimized)': '4.5.7b',
  '§3.2': '3.2',
  '§3.4': '3.4',
  'Figure 1': 'fig1',
  '§3.5': '3.5',
  '§3.5 (direct)': '3.5-direct',
  '§3.5 (direct, translated)': '3.5-nat',
};

function start(id: string, section: string, title: string): CaseResult {
  return { id, section, title, pass: false, stacks: {}, failures: [], durationMs: Date.now() };
}

function finish(result: CaseResult): CaseResult {
  result.pass = result.failures.length === 0;
  result.durationMs = Date.now() - result.durationMs;
  return result;
}

function appPath(s: Scenario, world: World<Network>): AppPath | undefined {
  if (s.traffic === 'registration' || s.traffic.from !== 'smn') return undefined;
  const to = s.traffic.to;
  const peer = world.network.hosts().find((h) => h.name !== 'smn' && h.interfaces().some((i) => i.address === to));
  return peer && { from: 'smn', fromAddress: world.smn.addressFor(to), peer: peer.name, peerAddress: to };
}

/** Paths where ping and TCP cannot work by design, and why. */
const NO_APPS: Record<string, string> = {
  '3.5-nat': 'no ping or TCP: the SGW translates usual IP for UDP only (§3.5 source NAT)',
};

/**
 * The case's own checks (`check`, which returns the path the applications then measure, if any), then the real-network
 * extras on that path; the world closes afterwards unless the extras keep it (`--keep`).
 */
async function checkThenExtras<N extends Network>(
  ctx: CaseContext<N>,
  world: World<N>,
  result: CaseResult,
  check: () => Promise<AppPath | undefined>,
): Promise<CaseResult> {
  let keep = false;
  try {
    const apps = await check();
    keep = (await ctx.extras?.(world.network, result, apps, world as World<Network>)) ?? false;
  } finally {
    if (!keep) world.close();
  }
  return finish(result);
}

function scenarioCase(s: Scenario, id: string, check?: (world: World<Network>, result: CaseResult) => void): LabCase {
  return {
    id,
    section: s.section,
    title: s.title,
    async run(ctx) {
      const result = start(id, s.section, s.title);
      const run = await runScenario(s, ctx.engine, ctx.runtime);
      return checkThenExtras(ctx, run.world, result, async () => {
        result.stacks = run.stacks;
        if (!run.registered) result.failures.push('the SMN is not registered with its home agent');
        if (s.traffic !== 'registration' && !run.echoed) result.failures.push('the probe was not echoed back');
        if (check) check(run.world as World<Network>, result);
        else result.failures.push(...stackDiff(s.expect, run.stacks));
        if (NO_APPS[id]) result.notes = [NO_APPS[id]];
        return NO_APPS[id] ? undefined : appPath(s, run.world as World<Network>);
      });
    },
  };
}

/** Figure 2 with `n` SGWs: the request crosses every SGW under a fresh Next-hop AH and never grows. */
function chainCase(n: number): LabCase {
  const s = chainScenario(n);
  return scenarioCase(s, `fig2-n${n}`, (world, result) => {
    const smn = smnId(s.home);
    const sgwAddr = (i: number) => world.map.sgw(`sgw${i}`)!.outside;
    const data = endAhEsp(s.careOf, sgwAddr(n), smn, SGW, udp(s.home, s.ch, 40000, 7));
    const want = [
      `smn > sgw1: ${nextAh(s.careOf, sgwAddr(1), smn, SGW, data)}`,
      ...Array.from(
        { length: n - 1 },
        (_, i) => `sgw${i + 1} > sgw${i + 2}: ${nextAh(sgwAddr(i + 1), sgwAddr(i + 2), SGW, SGW, data)}`,
      ),
    ];
    const seen = Object.values(result.stacks)
      .flat()
      .filter((l) => l.includes('UDP(40000>7)') && l.includes('AH[next]'));
    for (const line of want) if (!seen.includes(line)) result.failures.push(`missing hop ${line}`);
  });
}

/**
 * A case on a Figure 6 world of its own: `body` readies it (hosts it adds come first), runs the case and returns the
 * path the applications then measure (the real-network extras), if any; the world closes afterwards unless the extras
 * keep it (`--keep`).
 */
function figure6Case(
  id: string,
  section: string,
  title: string,
  body: <N extends Network>(
    world: World<N>,
    result: CaseResult,
    runtime: LabRuntime<N>,
  ) => Promise<AppPath | undefined>,
): LabCase {
  return {
    id,
    section,
    title,
    async run(ctx) {
      const result = start(id, section, title);
      const world = await figure6World({
        engine: ctx.engine,
        network: ctx.runtime.network(),
        keyLog: ctx.runtime.keyLog?.(),
      });
      return checkThenExtras(ctx, world, result, () => body(world, result, ctx.runtime));
    },
  };
}

/** §3.5.1 (Figure 5): the SMN outside reaches CH2 through a UDP proxy in its home network. */
const proxyCase = figure6Case(
  '3.5.1',
  '§3.5.1',
  'SMN outside reaches a CH through a proxy at home: VPN SMN/SGW0, VPN SGW0/SGW2, Mobile IP back',
  async (world, result, runtime) => {
    runProxy(world.addHost('proxy', HOME_PROXY), ipToU32(HOME_PROXY));
    await runtime.ready(world.network);
    world.place('outside');
    await runtime.wait(world.network, SETTLE_MS, () => world.smn.registration.state === 'registered');
    clearCaptures(world.network);
    const replies = sendViaHomeProxy(world, 'via the home proxy');
    await runtime.wait(world.network, SETTLE_MS, () => replies.length > 0);
    result.stacks = stacksByLink(world.network, world.keyLog.resolver());
    if (replies.length !== 1 || Buffer.from(replies[0].subarray(6)).toString() !== 'via the home proxy')
      result.failures.push(`expected one reply through the proxy, got ${replies.length}`);
    result.failures.push(...stackDiff(homeProxyStacks(), result.stacks));
    return undefined;
  },
);

/** How long the SMN stays at each place of the handover. */
const DWELL_MS = 2500;
/** Traffic must be back this soon after a move: virtual time, or wall-clock time on a loaded machine. */
const RESUME_LIMIT_MS = { virtual: 1000, real: 2000 };
const HANDOVER_ROUTE = [
  { name: 'home → Site 1', where: 'sgw1', careOf: F6.coa1 },
  { name: 'Site 1 → Site 2', where: 'sgw2', careOf: F6.coa2 },
  { name: 'Site 2 → outside', where: 'outside', careOf: F6.out },
  { name: 'outside → home', where: 'home', careOf: F6.home },
];

/** One SMN with a probe to CH0 every 20 ms moves home → Site 1 → Site 2 → outside → home. */
const handoverCase = figure6Case(
  'handover',
  '§4.4',
  'handover home → Site 1 → Site 2 → outside → home with a flow every 20 ms: registration kept, traffic resumes ' +
    'after every move',
  async (world, result, runtime) => {
    await runtime.ready(world.network);
    const clock = world.network.clock;
    const flow = new Flow(
      clock,
      world.smnHost,
      (p) => world.smn.send(p),
      () => world.smn.addressFor(F6.ch0),
      F6.ch0,
      20,
    );
    flow.start();
    await runtime.wait(world.network, 1000);
    const moves: { name: string; at: number }[] = [];
    for (const step of HANDOVER_ROUTE) {
      moves.push({ name: step.name, at: clock.now() });
      world.place(step.where);
      await runtime.wait(world.network, DWELL_MS);
      const bindings = world.ha.bindings().map((b) => b.careOf);
      const home = step.where === 'home';
      const state = world.smn.registration.state;
      if (
        home ? state !== 'home' || bindings.length !== 0 : state !== 'registered' || bindings.join() !== step.careOf
      ) {
        result.failures.push(`${step.name}: registration ${state}, HA bindings [${bindings.join(', ')}]`);
      }
    }
    flow.stop();
    result.moves = moveFigures(flow, moves, clock.now());
    const limit = runtime.real ? RESUME_LIMIT_MS.real : RESUME_LIMIT_MS.virtual;
    for (const f of result.moves) {
      if (f.resumeMs === undefined || f.resumeMs >= limit)
        result.failures.push(`${f.move}: traffic did not resume within ${limit} ms`);
      if (f.lost >= f.sent / 2) result.failures.push(`${f.move}: lost ${f.lost} of ${f.sent}`);
    }
    return { from: 'smn', fromAddress: world.smn.addressFor(F6.ch0), peer: 'ch0', peerAddress: F6.ch0 };
  },
);

export const labCases: LabCase[] = [
  ...[...figure6Scenarios, ...section3Scenarios].map((s) => scenarioCase(s, SCENARIO_IDS[s.section] ?? s.section)),
  chainCase(3),
  proxyCase,
  handoverCase,
  spiCase,
];

/** The cases with these ids, in the lab's order; throws naming unknown ids. */
export function selectCases(ids: readonly string[] | undefined, cases: readonly LabCase[] = labCases): LabCase[] {
  if (!ids || ids.length === 0) return [...cases];
  const known = new Set(cases.map((c) => c.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length)
    throw new Error(`--only: unknown case id ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
  return cases.filter((c) => ids.includes(c.id));
}
