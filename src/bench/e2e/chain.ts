// The chain figure (the draft's Figure 2): client — gwA — n1 — n2 — n3 — n4 — gwB — server, and the
// first k of n1..n4 are mipsec relaying SGWs while the rest forward in the kernel, so every
// configuration crosses the same namespaces and links. gwA protects client traffic End-End to gwB
// (SKIP + ESP) inside a next-hop layer (SKIP + AH GMAC) to the first relay; each relay verifies the
// layer, strips it and adds its own toward the next hop (docs/engine.md §5); gwB verifies the last
// one. k = 0 is gwA wrapping straight to gwB. Also a row with no mipsec at all: the kernel's RTT.
import { NetnsSession, randomSuffix } from '../../net/netns.js';
import { endSa, nexthopSa, type Coverage, type NodeSpec, type Transport } from './gateway-spec.js';
import { measureTcp, startIperfServer } from './measure.js';
import { WORKERS, loopSpec, startGateway, tuningLabel, tunnelMtu, type LoopTuning } from './mipsec.js';
import { median } from '../median.js';
import { waitFor } from './paths.js';
import { LINK_MTU, PLAN, SKIP_TUNNEL_MTU, devName } from './topology.js';

/** Middle nodes between gwA and gwB; a run with k relays uses the first k. */
export const CHAIN_MIDDLE = 4;
/** A next-hop layer adds IPv4 (20) + SKIP (52) + AH with GMAC (36) to the SKIP-mode MTU. */
export const CHAIN_TUNNEL_MTU = SKIP_TUNNEL_MTU - 108;
const PINGS = 200;
const PING_INTERVAL_S = '0.005';

export interface ChainRun {
  tcp_gbps: number;
  rtt_us: number;
  /** CPU µs the relays' workers spent per packet they relayed (both directions), null without relays. */
  relay_cpu_us: number | null;
}

export interface ChainRow {
  /** Relaying SGWs, or 'kernel' for plain forwarding through the same namespaces. */
  relays: number | 'kernel';
  tcp_gbps: number | null;
  rtt_us: number | null;
  relay_cpu_us: number | null;
  runs: ChainRun[];
  error?: string;
}

/** Per added relay, between consecutive measured relay counts. */
export interface RelayCost {
  from: number;
  to: number;
  /** 1 − (tcp(to)/tcp(from))^(1/(to−from)): throughput lost per relay. */
  throughput_loss: number;
  /** (rtt(to) − rtt(from))/(to − from). */
  rtt_us: number;
}

interface Chain {
  session: NetnsSession;
  client: string;
  server: string;
  /** gwA, n1..n4, gwB. */
  nodes: string[];
  /** The address SAs end at on each node (gwA: its right side; the others: their left side). */
  ids: string[];
}

const linkNet = (j: number): string => `198.18.${10 + j}`;

async function buildChain(session: NetnsSession): Promise<Chain> {
  const client = await session.addNamespace('client');
  const nodes: string[] = [];
  for (let i = 0; i <= CHAIN_MIDDLE + 1; i++) nodes.push(await session.addNamespace(`n${i}`));
  const server = await session.addNamespace('server');
  const last = nodes.length - 1;
  await session.addVeth(client, devName(session, 'c0'), nodes[0], devName(session, '0c'), LINK_MTU);
  await session.addAddress(client, devName(session, 'c0'), `${PLAN.client.addr}/24`);
  await session.addAddress(nodes[0], devName(session, '0c'), `${PLAN.gwA.inside}/24`);
  for (let j = 0; j < last; j++) {
    const left = devName(session, `${j}${j + 1}`);
    const right = devName(session, `${j + 1}${j}`);
    await session.addVeth(nodes[j], left, nodes[j + 1], right, LINK_MTU);
    await session.addAddress(nodes[j], left, `${linkNet(j)}.1/24`);
    await session.addAddress(nodes[j + 1], right, `${linkNet(j)}.2/24`);
  }
  await session.addVeth(nodes[last], devName(session, `${last}s`), server, devName(session, `s${last}`), LINK_MTU);
  await session.addAddress(nodes[last], devName(session, `${last}s`), `${PLAN.gwB.inside}/24`);
  await session.addAddress(server, devName(session, `s${last}`), `${PLAN.server.addr}/24`);

  await session.replaceRoute(client, { prefix: 'default', via: PLAN.gwA.inside });
  await session.replaceRoute(server, { prefix: 'default', via: PLAN.gwB.inside });
  for (let i = 0; i <= last; i++) {
    await session.sysctl(nodes[i], 'net.ipv4.ip_forward', '1');
    // Every link subnet that is not attached: to the right via the right neighbour, else via the left one.
    for (let j = 0; j < last; j++) {
      if (j === i || j === i - 1) continue;
      await session.replaceRoute(nodes[i], {
        prefix: `${linkNet(j)}.0/24`,
        via: j > i ? `${linkNet(i)}.2` : `${linkNet(i - 1)}.1`,
      });
    }
  }
  const ids = nodes.map((_, i) => (i === 0 ? `${linkNet(0)}.1` : `${linkNet(i - 1)}.2`));
  return { session, client, server, nodes, ids };
}

/** Kernel routes for the client and server subnets along the chain (the gateways' may then point into their TUNs). */
async function plainRoutes(chain: Chain): Promise<void> {
  const last = chain.nodes.length - 1;
  for (let i = 0; i <= last; i++) {
    if (i > 0)
      await chain.session.replaceRoute(chain.nodes[i], { prefix: PLAN.client.net, via: `${linkNet(i - 1)}.1` });
    if (i < last) await chain.session.replaceRoute(chain.nodes[i], { prefix: PLAN.server.net, via: `${linkNet(i)}.2` });
  }
}

/** The gateway specs for k relays: End-End SKIP+ESP gwA⇄gwB, one next-hop layer per leg each way. */
function relaySpecs(chain: Chain, relays: number, transport: Transport, coverage: Coverage): NodeSpec[] {
  const hops = [0, ...Array.from({ length: relays }, (_, j) => j + 1), chain.nodes.length - 1];
  const addr = hops.map((h) => chain.ids[h]);
  const a = addr[0];
  const b = addr[addr.length - 1];
  const ab = endSa('skip', a, b, { out: 1, in: 1 }, 0);
  const ba = endSa('skip', b, a, { out: 2, in: 2 }, 0);
  const fwd = hops.slice(0, -1).map((_, j) => nexthopSa(addr[j], addr[j + 1], { out: 10 + j, in: 10 + j }, coverage));
  const rev = hops.slice(0, -1).map((_, j) => nexthopSa(addr[j + 1], addr[j], { out: 30 + j, in: 30 + j }, coverage));
  const tun = (i: number): string => devName(chain.session, `t${i}`);
  const specs: NodeSpec[] = [];
  hops.forEach((h, j) => {
    const node: NodeSpec = {
      netns: chain.nodes[h],
      tun: tun(h),
      tunMtu: tunnelMtu(CHAIN_TUNNEL_MTU, transport),
      local: [addr[j]],
      sas: [],
      policies: [],
      routes: [],
    };
    if (j === 0) {
      node.sas.push(ab.out, ba.in, fwd[0].out, rev[0].in);
      node.policies.push({ prefix: PLAN.server.net, sa: ab.out.id, wrap: [fwd[0].out.id] });
    } else if (j === hops.length - 1) {
      node.sas.push(ab.in, ba.out, fwd[j - 1].in, rev[j - 1].out);
      node.policies.push({ prefix: PLAN.client.net, sa: ba.out.id, wrap: [rev[j - 1].out.id] });
    } else {
      node.sas.push(fwd[j - 1].in, fwd[j].out, rev[j - 1].out, rev[j].in);
      node.routes.push({ prefix: `${b}/32`, sa: fwd[j].out.id }, { prefix: `${a}/32`, sa: rev[j - 1].out.id });
    }
    specs.push(node);
  });
  return specs;
}

/** Median ping RTT from client to server, µs, over PINGS echoes. */
async function pingRtt(chain: Chain): Promise<number> {
  const { stdout } = await chain.session.exec(
    chain.client,
    'ping',
    ['-c', String(PINGS), '-i', PING_INTERVAL_S, '-W', '1', PLAN.server.addr],
    { timeoutMs: 30_000 },
  );
  const times = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (times.length < PINGS / 2) throw new Error(`ping: only ${times.length} of ${PINGS} echoes answered`);
  return median(times);
}

async function reachable(chain: Chain): Promise<boolean> {
  try {
    await chain.session.exec(chain.client, 'ping', ['-c', '1', '-W', '1', '-q', PLAN.server.addr], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function measureConfig(chain: Chain, relays: ChainRow['relays'], options: ChainOptions): Promise<ChainRun> {
  await plainRoutes(chain);
  const last = chain.nodes.length - 1;
  const daemons = [];
  let measured: Omit<ChainRun, 'relay_cpu_us'>;
  try {
    if (relays !== 'kernel') {
      const specs = relaySpecs(chain, relays, options.transport, options.coverage);
      daemons.push(
        await startGateway(chain.session, chain.nodes[0], `mipsec chain (${relays} relays)`, {
          dataPath: 'native',
          workers: WORKERS,
          ...loopSpec(options),
          nodes: specs,
        }),
      );
      await chain.session.replaceRoute(chain.nodes[0], { prefix: PLAN.server.net, dev: specs[0].tun });
      await chain.session.replaceRoute(chain.nodes[last], {
        prefix: PLAN.client.net,
        dev: specs[specs.length - 1].tun,
      });
    }
    await waitFor(`the server to answer pings through ${relays} relays`, () => reachable(chain), 15_000, daemons);
    const rtt = await pingRtt(chain);
    const server = await startIperfServer(chain);
    try {
      measured = { tcp_gbps: (await measureTcp(chain, options.seconds)).gbps, rtt_us: rtt };
    } finally {
      await server.stop();
    }
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
  }
  // The gateway process prints its loops' counters as it stops.
  const relayNodes = relays === 'kernel' ? [] : chain.nodes.slice(1, 1 + relays);
  return {
    ...measured,
    relay_cpu_us: daemons.length ? relayCpuPerPacket(daemons[0].recentOutput(), relayNodes) : null,
  };
}

/** One `loop-stats` line's JSON, as the gateway process prints it (gateway.ts): the fields read here. */
interface LoopStatsLine {
  netns: string;
  stats: { cpuMicros: number; rxUdp: number; rxRaw: number };
}

/**
 * From the gateway process's `loop-stats` lines (printed as it stops): the relays' worker CPU over the packets
 * they received, µs per relayed packet; null without relays or when a relay's line is missing.
 */
export function relayCpuPerPacket(output: string, relayNamespaces: readonly string[]): number | null {
  if (relayNamespaces.length === 0) return null;
  const lines = new Map<string, LoopStatsLine['stats']>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('loop-stats ')) continue;
    try {
      const { netns, stats } = JSON.parse(line.slice('loop-stats '.length)) as LoopStatsLine;
      lines.set(netns, stats);
    } catch {
      // a line cut by the output buffer: that relay counts as missing
    }
  }
  let cpu = 0;
  let packets = 0;
  for (const ns of relayNamespaces) {
    const s = lines.get(ns);
    if (!s) return null;
    cpu += s.cpuMicros;
    packets += s.rxUdp + s.rxRaw;
  }
  return packets > 0 ? cpu / packets : null;
}

/** Per-relay costs between consecutive measured relay counts (the kernel row excluded). */
export function relayCosts(rows: readonly ChainRow[]): RelayCost[] {
  const measured = rows.filter(
    (r): r is ChainRow & { relays: number; tcp_gbps: number; rtt_us: number } =>
      r.relays !== 'kernel' && r.tcp_gbps != null && r.rtt_us != null,
  );
  measured.sort((x, y) => x.relays - y.relays);
  const cost = (p: (typeof measured)[number], q: (typeof measured)[number]): RelayCost => {
    const steps = q.relays - p.relays;
    return {
      from: p.relays,
      to: q.relays,
      throughput_loss: 1 - Math.pow(q.tcp_gbps / p.tcp_gbps, 1 / steps),
      rtt_us: (q.rtt_us - p.rtt_us) / steps,
    };
  };
  const out: RelayCost[] = [];
  for (let i = 1; i < measured.length; i++) out.push(cost(measured[i - 1], measured[i]));
  // Fewest to most relays as well: the steadiest single figure, when there are steps in between.
  if (measured.length > 2) out.push(cost(measured[0], measured[measured.length - 1]));
  return out;
}

export interface ChainOptions extends LoopTuning {
  relays: readonly number[];
  /** What each next-hop AH covers. */
  coverage: Coverage;
  runs: number;
  seconds: number;
  progress: (line: string) => void;
  /** Told the namespace prefix before anything is created. */
  onSession?: (prefix: string) => void;
}

/** What the chain's gateways run, for the report. */
export function chainSetup(options: Pick<ChainOptions, 'coverage' | 'transport' | 'pollMicros'>): string {
  const coverage = options.coverage === 'headers' ? "headers only (the draft's §3.6)" : 'the whole datagram (RFC 4302)';
  return (
    `End-End SKIP + ESP AES-128-GCM gwA⇄gwB inside one next-hop SKIP + AH AES-128-GMAC layer per leg, ` +
    `covering ${coverage}; ${tuningLabel(options)}`
  );
}

export async function runChain(
  options: ChainOptions,
): Promise<{ rows: ChainRow[]; costs: RelayCost[]; setup: string }> {
  const configs: ChainRow['relays'][] = [
    'kernel',
    ...[0, ...options.relays].filter((k, i, all) => all.indexOf(k) === i),
  ];
  const rows: ChainRow[] = configs.map((relays) => ({
    relays,
    tcp_gbps: null,
    rtt_us: null,
    relay_cpu_us: null,
    runs: [],
  }));
  const session = new NetnsSession(`mb-${randomSuffix()}`);
  options.onSession?.(session.prefix);
  try {
    options.progress(`chain: building ${session.prefix}-{client,n0..n${CHAIN_MIDDLE + 1},server}`);
    const chain = await buildChain(session);
    for (let round = 0; round < options.runs; round++) {
      for (const row of round % 2 === 0 ? rows : [...rows].reverse()) {
        if (row.error) continue;
        const label = row.relays === 'kernel' ? 'kernel forwarding' : `${row.relays} relays`;
        try {
          const run = await measureConfig(chain, row.relays, options);
          row.runs.push(run);
          const cpu = run.relay_cpu_us === null ? '' : `, relay CPU ${run.relay_cpu_us.toFixed(2)} µs/packet`;
          options.progress(
            `[${round + 1}/${options.runs}] chain, ${label}: TCP ${run.tcp_gbps.toFixed(3)} Gbit/s, RTT ` +
              `${run.rtt_us.toFixed(0)} µs${cpu}`,
          );
        } catch (err) {
          row.error = `round ${round + 1}: ${(err as Error).message}`;
          row.runs = [];
          options.progress(`[${round + 1}/${options.runs}] chain, ${label}: failed: ${row.error}`);
        }
      }
    }
  } finally {
    await session.close();
  }
  for (const row of rows) {
    if (row.runs.length === 0) continue;
    row.tcp_gbps = median(row.runs.map((r) => r.tcp_gbps));
    row.rtt_us = median(row.runs.map((r) => r.rtt_us));
    const cpu = row.runs.map((r) => r.relay_cpu_us).filter((v): v is number => v !== null);
    row.relay_cpu_us = cpu.length ? median(cpu) : null;
  }
  return { rows, costs: relayCosts(rows), setup: chainSetup(options) };
}
