// The `spi` lab case: two SGWs with manually keyed SPI-mode SAs (plain RFC 4303 ESP tunnel mode, no
// SKIP header) from the node configs in examples/spi, as `ip xfrm state add … proto esp spi SPI mode
// tunnel aead 'rfc4106(gcm(aes))' KEY 128` would configure them, so Wireshark and other IPsec stacks
// read the traffic as it is (the esp_sa key log opens it). Host A behind gateway A talks to host B
// behind gateway B. The key files the configs name are made fresh (0600) in a temp dir per run.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { loadNode, type LoadedNode } from '../config/index.js';
import { MANUAL_KEY_BYTES } from '../config/manual-sa.js';
import { SECRET_FILE_MODE } from '../keys/keyfile.js';
import { createEngine, NativeEngine, type Engine } from '../engine/index.js';
import type { Host, Network } from '../net/types.js';
import { KeyLog } from '../roles/common/keylog.js';
import { ManualSpiGateway } from '../roles/sgw/manual.js';
import type { CaseContext, CaseResult, LabCase } from './case.js';
import { ip, udp } from './formats.js';
import { SETTLE_MS } from './scenario.js';
import { clearCaptures, stackDiff, stacksByLink } from './stacks.js';
import { collectEchoes, echoServer, probe } from './traffic.js';

/** examples/spi, from src/lab or dist/lab alike. */
export const SPI_EXAMPLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/spi');
const SPI_CONFIGS = ['gwa.yaml', 'gwb.yaml'];
const HOST_A = { name: 'hosta', address: '10.10.0.10', gateway: '10.10.0.1', link: 'gwa-net' };
const HOST_B = { name: 'hostb', address: '10.20.0.10', gateway: '10.20.0.1', link: 'gwb-net' };
/** The outer addresses and SPIs examples/spi configures, A→B and B→A. */
const A_TO_B = { src: '198.18.10.1', dst: '198.18.20.1', spi: 4097 };
const B_TO_A = { src: '198.18.20.1', dst: '198.18.10.1', spi: 8194 };

/**
 * Copies the example configs into a temp dir and writes every key file they name there (random, 0600).
 * Returns the loaded nodes and the dir to remove.
 */
export async function loadSpiExample(exampleDir = SPI_EXAMPLE_DIR): Promise<{ nodes: LoadedNode[]; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mipsec-spi-'));
  try {
    for (const f of [...SPI_CONFIGS, 'network.yaml']) copyFileSync(join(exampleDir, f), join(dir, f));
    const nodes: LoadedNode[] = [];
    for (const f of SPI_CONFIGS) {
      const loaded = await loadNode(join(dir, f));
      if (!loaded.ok) throw new Error(`examples/spi is invalid: ${loaded.errors.join('; ')}`);
      loaded.node.manualSas?.forEach((sa, i) => {
        for (const path of [loaded.paths.manualKeys![i].out, loaded.paths.manualKeys![i].in]) {
          mkdirSync(dirname(path), { recursive: true });
          const key = randomBytes(MANUAL_KEY_BYTES[sa.suite]);
          // The peer's config names the same file: write it once.
          try {
            writeFileSync(path, `${key.toString('hex')}\n`, { mode: SECRET_FILE_MODE, flag: 'wx' });
            chmodSync(path, SECRET_FILE_MODE);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          } finally {
            key.fill(0);
          }
        }
      });
      nodes.push(loaded);
    }
    return { nodes, dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The inside or outside interface the node config names for its SGW. */
export function interfaceOf(loaded: LoadedNode, side: 'inside' | 'outside') {
  const itf = loaded.node.interfaces.find((i) => i.name === loaded.node.sgw![side])!;
  return { name: itf.name, address: itf.address, cidr: `${itf.address}/${itf.prefixLength}` };
}

/** The example's links: the Internet between the two gateways and one network behind each. */
export function addSpiLinks(network: Network): void {
  for (const link of ['internet', 'gwa-net', 'gwb-net']) network.addLink(link);
}

/** A gateway of examples/spi: its inside interface on `<name>-net`, its outside one on the Internet. */
export function addSpiGatewayHost(network: Network, g: LoadedNode, engine?: Engine): Host {
  const host = network.addHost(g.node.name, {
    forwarding: true,
    engine: engine instanceof NativeEngine ? engine : undefined,
  });
  const inside = interfaceOf(g, 'inside');
  const outside = interfaceOf(g, 'outside');
  host.addInterface(inside.name, `${g.node.name}-net`, inside.cidr);
  host.addInterface(outside.name, 'internet', outside.cidr);
  return host;
}

/** Host A behind gwa and host B behind gwb (plain hosts), each answering echo probes: [hostA, hostB]. */
export function addSpiEndHosts(network: Network): [Host, Host] {
  const [a, b] = [HOST_A, HOST_B].map((h) => {
    const host = network.addHost(h.name, { plain: true });
    host.addInterface('eth0', h.link, `${h.address}/24`);
    host.addRoute('0.0.0.0/0', { via: h.gateway });
    echoServer(host);
    return host;
  });
  return [a, b];
}

const REQ = udp(HOST_A.address, HOST_B.address, 40000, 7);
const REP = udp(HOST_B.address, HOST_A.address, 7, 40000);
const esp = (sa: typeof A_TO_B, inner: string) => `${ip(sa.src, sa.dst)} / ESP(spi ${sa.spi}) / ${inner}`;

export const SPI_EXPECT: Record<string, string[]> = {
  'gwa-net': [`hosta > gwa: ${REQ}`, `gwa > hosta: ${REP}`],
  internet: [`gwa > gwb: ${esp(A_TO_B, REQ)}`, `gwb > gwa: ${esp(B_TO_A, REP)}`],
  'gwb-net': [`gwb > hostb: ${REQ}`, `hostb > gwb: ${REP}`],
};

async function runSpiCase<N extends Network>(this: LabCase, ctx: CaseContext<N>): Promise<CaseResult> {
  const started = Date.now();
  const result: CaseResult = {
    id: this.id,
    section: this.section,
    title: this.title,
    pass: false,
    stacks: {},
    failures: [],
    durationMs: 0,
  };
  const network = ctx.runtime.network();
  const keyLog = ctx.runtime.keyLog?.();
  const log = keyLog ?? new KeyLog();
  const gateways: ManualSpiGateway[] = [];
  const example = await loadSpiExample();
  let keep = false;
  try {
    addSpiLinks(network);
    const engines = example.nodes.map(() => createEngine(ctx.engine));
    example.nodes.forEach((g, i) => addSpiGatewayHost(network, g, engines[i]));
    const hosts = addSpiEndHosts(network);
    for (const [i, g] of example.nodes.entries()) {
      const host = network.host(g.node.name);
      const [inside, outside] = [interfaceOf(g, 'inside'), interfaceOf(g, 'outside')];
      // The host's I/O loops run the gateway's engine only when it is native (addSpiGatewayHost).
      const loops = engines[i] instanceof NativeEngine ? host.dataPath : undefined;
      gateways.push(
        new ManualSpiGateway({
          host,
          clock: network.clock,
          engine: engines[i],
          entries: g.node.manualSas ?? [],
          keys: g.paths.manualKeys ?? [],
          inside,
          outside,
          keyLog: log,
          dataPath: loops && { inside: loops.tableOf(inside.name), outside: loops.tableOf(outside.name) },
        }),
      );
    }
    await ctx.runtime.ready(network);
    clearCaptures(network);
    const echoes = collectEchoes(hosts[0]);
    hosts[0].send(probe(HOST_A.address, HOST_B.address, 1));
    await ctx.runtime.wait(network, SETTLE_MS, () => echoes.seqs.includes(1));
    echoes.stop();
    result.stacks = stacksByLink(network, log.resolver());
    if (!echoes.seqs.includes(1)) result.failures.push('the probe from host A was not echoed back by host B');
    result.failures.push(...stackDiff(SPI_EXPECT, result.stacks));
    for (const g of gateways)
      for (const [reason, n] of g.drops) result.failures.push(`gateway dropped ${n} packet(s): ${reason}`);
    keep =
      (await ctx.extras?.(network, result, {
        from: HOST_A.name,
        fromAddress: HOST_A.address,
        peer: HOST_B.name,
        peerAddress: HOST_B.address,
      })) ?? false;
  } finally {
    rmSync(example.dir, { recursive: true, force: true });
    if (!keep) {
      for (const g of gateways) g.close();
      if (!keyLog) log.clear();
    }
  }
  result.pass = result.failures.length === 0;
  result.durationMs = Date.now() - started;
  return result;
}

export const spiCase: LabCase = {
  id: 'spi',
  section: 'SPI mode',
  title: 'two SGWs with manually keyed SPI-mode SAs: plain RFC 4303 tunnel-mode ESP, no SKIP header',
  run: runSpiCase,
};
