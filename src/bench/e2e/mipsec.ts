// mipsec's own paths: one gateway process (gateway.ts) drives gwA's and gwB's native I/O loops
// (src/engine/io.ts: TUN + raw sockets, or the UDP transport, + native worker threads) with manually
// keyed SAs and an outbound policy per gateway. Its utime+stime is the path's CPU cost.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../engine/addon.js';
import type { ManagedProcess, NetnsSession } from '../../net/netns.js';
import {
  BENCH_UDP_PORT,
  UDP_TRANSPORT_OVERHEAD,
  encodeSpec,
  endSa,
  type DataPath,
  type GatewaySpec,
  type NodeSpec,
  type SaMode,
  type Transport,
} from './gateway-spec.js';
import { tail, waitFor, type PathContext, type PathDriver, type PathName } from './paths.js';
import { PLAN, SKIP_TUNNEL_MTU, TUNNEL_MTU, clearGatewayRoutes, devName } from './topology.js';

const READY_TIMEOUT_MS = 15_000;
/** Native worker threads per gateway: one, so two gateways fit the two cores next to iperf3. */
export const WORKERS = 1;

/** The compiled gateway script next to this module; under vitest (src/*.ts) there is none. */
function gatewayScript(): string {
  const script = fileURLToPath(new URL('./gateway.js', import.meta.url));
  if (!fs.existsSync(script))
    throw new Error(`${script} not found: the mipsec paths run from the build (npm run build, then mipsec bench e2e)`);
  return script;
}

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as {
    version?: string;
  };
  return pkg.version ?? 'unknown';
}

/** How the table names a transport. */
export function transportLabel(transport: Transport): string {
  return transport === 'udp' ? `UDP transport, port ${BENCH_UDP_PORT}, GSO/GRO` : 'raw IPv4';
}

/** The inner MTU that fits a 1500-byte link for a sealed-packet MTU of `rawMtu` on the raw transport. */
export function tunnelMtu(rawMtu: number, transport: Transport): number {
  return transport === 'udp' ? rawMtu - UDP_TRANSPORT_OVERHEAD : rawMtu;
}

/** How the benchmark's gateways move packets: the transport, and how long a worker polls before it sleeps. */
export interface LoopTuning {
  transport: Transport;
  pollMicros: number;
}

/** The gateway process's loop options. */
export function loopSpec(tuning: LoopTuning): Pick<GatewaySpec, 'udpPort' | 'pollMicros'> {
  return { ...(tuning.transport === 'udp' ? { udpPort: BENCH_UDP_PORT } : {}), pollMicros: tuning.pollMicros };
}

/** How the table describes the loop options. */
export function tuningLabel(tuning: LoopTuning): string {
  return (
    `${transportLabel(tuning.transport)}, ` +
    `${tuning.pollMicros ? `workers poll ${tuning.pollMicros} µs before sleeping` : 'workers sleep when idle'}`
  );
}

/**
 * The version of what runs, or why it cannot: the gateway script must be built, the addon load and carry the I/O loop.
 */
export function mipsecVersion(dataPath: DataPath, transport: Transport): string {
  gatewayScript();
  const { binding, error } = loadAddon();
  if (!binding) throw new Error(`the native addon did not load (${error?.message.split('\n')[0]}): npm run build`);
  if (typeof binding.IoLoop !== 'function')
    throw new Error('the native addon has no IoLoop (native/io not built): npm run build');
  return (
    `${packageVersion()} (${dataPath === 'native' ? 'native' : 'TS engine'}, ` +
    `OpenSSL ${process.versions.openssl}, ${transportLabel(transport)})`
  );
}

/** Starts the gateway process in `ns` with `spec` on stdin and waits for its "ready". */
export async function startGateway(
  session: NetnsSession,
  ns: string,
  label: string,
  spec: GatewaySpec,
): Promise<ManagedProcess> {
  const proc = session.spawn(ns, label, process.execPath, [gatewayScript()], { input: encodeSpec(spec) });
  await waitFor(`${label} to start its I/O loops`, () => /^ready$/m.test(proc.recentOutput()), READY_TIMEOUT_MS, [
    proc,
  ]);
  return proc;
}

/** gwA and gwB: an End-End tunnel each way, policy "far subnet → tunnel", routes into each TUN. */
function twoGateways(
  ctx: PathContext,
  mode: SaMode,
  transport: Transport,
  tunTag: string,
): { nodes: NodeSpec[]; tuns: { ns: string; dev: string }[] } {
  const { topo } = ctx;
  const ab = endSa(mode, PLAN.gwA.outside, PLAN.gwB.outside, { out: 1, in: 2 }, 0x1001);
  const ba = endSa(mode, PLAN.gwB.outside, PLAN.gwA.outside, { out: 1, in: 2 }, 0x1002);
  const tunA = devName(topo.session, `${tunTag}a`);
  const tunB = devName(topo.session, `${tunTag}b`);
  const tunMtu = tunnelMtu(mode === 'skip' ? SKIP_TUNNEL_MTU : TUNNEL_MTU, transport);
  const nodes: NodeSpec[] = [
    {
      netns: topo.gwA,
      tun: tunA,
      tunMtu,
      local: [PLAN.gwA.outside],
      sas: [ab.out, ba.in],
      policies: [{ prefix: PLAN.server.net, sa: 1 }],
      routes: [],
    },
    {
      netns: topo.gwB,
      tun: tunB,
      tunMtu,
      local: [PLAN.gwB.outside],
      sas: [ba.out, ab.in],
      policies: [{ prefix: PLAN.client.net, sa: 1 }],
      routes: [],
    },
  ];
  return {
    nodes,
    tuns: [
      { ns: topo.gwA, dev: tunA },
      { ns: topo.gwB, dev: tunB },
    ],
  };
}

function mipsecDriver(
  name: PathName,
  mode: SaMode,
  dataPath: DataPath,
  tuning: LoopTuning,
  description: string,
): PathDriver {
  const { transport } = tuning;
  return {
    name,
    mode: `${description}; ${tuningLabel(tuning)}`,
    async version() {
      return mipsecVersion(dataPath, transport);
    },
    async setup(ctx: PathContext) {
      const { topo } = ctx;
      const { nodes, tuns } = twoGateways(
        ctx,
        mode,
        transport,
        name === 'mipsec-ts' ? 'mt' : mode === 'skip' ? 'mk' : 'mp',
      );
      const daemons: ManagedProcess[] = [];
      const teardown = async (): Promise<void> => {
        await Promise.all(daemons.map((d) => d.stop()));
        for (const { ns, dev } of tuns) await topo.session.deleteLinkIfPresent(ns, dev);
        await clearGatewayRoutes(topo);
      };
      try {
        daemons.push(
          await startGateway(topo.session, topo.gwA, `mipsec gateways (${name})`, {
            dataPath,
            workers: WORKERS,
            ...loopSpec(tuning),
            nodes,
          }),
        );
        await topo.session.replaceRoute(topo.gwA, { prefix: PLAN.server.net, dev: tuns[0].dev });
        await topo.session.replaceRoute(topo.gwB, { prefix: PLAN.client.net, dev: tuns[1].dev });
      } catch (err) {
        const output = daemons[0] ? ` (${tail(daemons[0].recentOutput())})` : '';
        await teardown().catch(() => undefined);
        throw new Error(`${(err as Error).message}${output}`);
      }
      return { processes: daemons, teardown };
    },
  };
}

/** mipsec's three paths, with these loop options. */
export function mipsecDrivers(tuning: LoopTuning): Record<'mipsec-skip' | 'mipsec-spi' | 'mipsec-ts', PathDriver> {
  const { transport } = tuning;
  const skipMtu = tunnelMtu(SKIP_TUNNEL_MTU, transport);
  return {
    'mipsec-skip': mipsecDriver(
      'mipsec-skip',
      'skip',
      'native',
      tuning,
      `SKIP header (NSID 0) + ESP AES-128-GCM (SPI 1), manual keys, native I/O loop, ${WORKERS} worker/gateway; TUN ` +
        `MTU ${skipMtu} (52-byte SKIP header), so a 1428-byte UDP datagram goes as 2 fragments`,
    ),
    'mipsec-spi': mipsecDriver(
      'mipsec-spi',
      'spi',
      'native',
      tuning,
      `RFC 4303 ESP AES-128-GCM tunnel mode, manual keys, native I/O loop, ${WORKERS} worker/gateway; TUN MTU ` +
        `${tunnelMtu(TUNNEL_MTU, transport)}`,
    ),
    'mipsec-ts': mipsecDriver(
      'mipsec-ts',
      'skip',
      'ts',
      tuning,
      `SKIP + ESP AES-128-GCM on the TS reference engine over the same native I/O loop: the native engine holds no ` +
        `SAs, so every packet is punted to JS in batches, transformed by src/engine/ref and re-injected; ` +
        `TUN MTU ${skipMtu}`,
    ),
  };
}
