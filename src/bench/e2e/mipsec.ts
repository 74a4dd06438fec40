// mipsec's own paths: one gateway process (gateway.ts) drives gwA's and gwB's native I/O loops
// (src/engine/io.ts: TUN + raw sockets + native worker threads) with manually keyed SAs and an
// outbound policy per gateway. Its utime+stime is the path's CPU cost.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../engine/addon.js';
import type { ManagedProcess, NetnsSession } from '../../net/netns.js';
import { encodeSpec, endSa, type DataPath, type GatewaySpec, type NodeSpec, type SaMode } from './gateway-spec.js';
import { tail, waitFor, type PathContext, type PathDriver, type PathName } from './paths.js';
import { PLAN, SKIP_TUNNEL_MTU, TUNNEL_MTU, clearGatewayRoutes, devName } from './topology.js';

const READY_TIMEOUT_MS = 15_000;
/** Native worker threads per gateway: one, so two gateways fit the two cores next to iperf3. */
export const WORKERS = 1;

/** The compiled gateway script next to this module; under vitest (src/*.ts) there is none. */
function gatewayScript(): string {
  const script = fileURLToPath(new URL('./gateway.js', import.meta.url));
  if (!fs.existsSync(script)) throw new Error(`${script} not found: the mipsec paths run from the build (npm run build, then mipsec bench e2e)`);
  return script;
}

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** The version of what runs, or why it cannot: the gateway script must be built, the addon load and carry the I/O loop. */
export function mipsecVersion(dataPath: DataPath): string {
  gatewayScript();
  const { binding, error } = loadAddon();
  if (!binding) throw new Error(`the native addon did not load (${error?.message.split('\n')[0]}): npm run build`);
  if (typeof binding.IoLoop !== 'function') throw new Error('the native addon has no IoLoop (native/io not built): npm run build');
  return `${packageVersion()} (${dataPath === 'native' ? 'native' : 'TS engine'}, OpenSSL ${process.versions.openssl})`;
}

/** Starts the gateway process in `ns` with `spec` on stdin and waits for its "ready". */
export async function startGateway(session: NetnsSession, ns: string, label: string, spec: GatewaySpec): Promise<ManagedProcess> {
  const proc = session.spawn(ns, label, process.execPath, [gatewayScript()], { input: encodeSpec(spec) });
  await waitFor(`${label} to start its I/O loops`, () => /^ready$/m.test(proc.recentOutput()), READY_TIMEOUT_MS, [proc]);
  return proc;
}

/** gwA and gwB: an End-End tunnel each way, policy "far subnet → tunnel", routes into each TUN. */
function twoGateways(ctx: PathContext, mode: SaMode, tunTag: string): { nodes: NodeSpec[]; tuns: { ns: string; dev: string }[] } {
  const { topo } = ctx;
  const ab = endSa(mode, PLAN.gwA.outside, PLAN.gwB.outside, { out: 1, in: 2 }, 0x1001);
  const ba = endSa(mode, PLAN.gwB.outside, PLAN.gwA.outside, { out: 1, in: 2 }, 0x1002);
  const tunA = devName(topo.session, `${tunTag}a`);
  const tunB = devName(topo.session, `${tunTag}b`);
  const tunMtu = mode === 'skip' ? SKIP_TUNNEL_MTU : TUNNEL_MTU;
  const nodes: NodeSpec[] = [
    { netns: topo.gwA, tun: tunA, tunMtu, local: [PLAN.gwA.outside], sas: [ab.out, ba.in], policies: [{ prefix: PLAN.server.net, sa: 1 }], routes: [] },
    { netns: topo.gwB, tun: tunB, tunMtu, local: [PLAN.gwB.outside], sas: [ba.out, ab.in], policies: [{ prefix: PLAN.client.net, sa: 1 }], routes: [] },
  ];
  return { nodes, tuns: [{ ns: topo.gwA, dev: tunA }, { ns: topo.gwB, dev: tunB }] };
}

function mipsecDriver(name: PathName, mode: SaMode, dataPath: DataPath, description: string): PathDriver {
  return {
    name,
    mode: description,
    async version() {
      return mipsecVersion(dataPath);
    },
    async setup(ctx: PathContext) {
      const { topo } = ctx;
      const { nodes, tuns } = twoGateways(ctx, mode, name === 'mipsec-ts' ? 'mt' : mode === 'skip' ? 'mk' : 'mp');
      const daemons: ManagedProcess[] = [];
      const teardown = async (): Promise<void> => {
        await Promise.all(daemons.map((d) => d.stop()));
        for (const { ns, dev } of tuns) await topo.session.deleteLinkIfPresent(ns, dev);
        await clearGatewayRoutes(topo);
      };
      try {
        daemons.push(await startGateway(topo.session, topo.gwA, `mipsec gateways (${name})`, { dataPath, workers: WORKERS, nodes }));
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

export const mipsecDrivers: Record<'mipsec-skip' | 'mipsec-spi' | 'mipsec-ts', PathDriver> = {
  'mipsec-skip': mipsecDriver('mipsec-skip', 'skip', 'native', `SKIP header (NSID 0) + ESP AES-128-GCM (SPI 1), manual keys, native I/O loop, ${WORKERS} worker/gateway; TUN MTU ${SKIP_TUNNEL_MTU} (52-byte SKIP header), so a 1428-byte UDP datagram goes as 2 fragments`),
  'mipsec-spi': mipsecDriver('mipsec-spi', 'spi', 'native', `RFC 4303 ESP AES-128-GCM tunnel mode, manual keys, native I/O loop, ${WORKERS} worker/gateway`),
  'mipsec-ts': mipsecDriver(
    'mipsec-ts',
    'skip',
    'ts',
    `SKIP + ESP AES-128-GCM on the TS reference engine over the same native I/O loop: the native engine holds no SAs, so every packet is punted to JS in batches, transformed by src/engine/ref and re-injected; TUN MTU ${SKIP_TUNNEL_MTU}`,
  ),
};
