// The `spi` lab case: two SGWs with manually keyed SPI-mode SAs (plain RFC 4303 ESP tunnel mode, no
// SKIP header), as `ip xfrm state add … proto esp spi SPI mode tunnel aead 'rfc4106(gcm(aes))' KEY 128`
// would configure them, so Wireshark and other IPsec stacks read the traffic as it is (the esp_sa
// key log opens it). Host A behind gateway A talks to host B behind gateway B.
import { createEngine, type EngineImpl } from '../engine/index.js';
import { Op, Verdict, reasonName, type Engine, type SaDesc } from '../engine/types.js';
import type { Host, Network } from '../net/types.js';
import { TickPipeline } from '../roles/common/pipeline.js';
import { KeyLog } from '../roles/common/keylog.js';
import { ipToU32, parsePrefix, prefixContains } from '../wire/addr.js';
import { IpProto, parseIpv4 } from '../wire/ipv4.js';
import type { CaseContext, CaseResult, LabCase } from './cases.js';
import { stackDiff } from './cases.js';
import { ip, udp } from './formats.js';
import { SETTLE_MS } from './scenario.js';
import { clearCaptures, stacksByLink } from './stacks.js';
import { collectEchoes, echoServer, probe } from './traffic.js';

export interface ManualSa {
  src: string;
  dst: string;
  spi: number;
  /** AES-128-GCM key followed by its 4-byte salt (RFC 4106 KEYMAT), hex. */
  key: string;
}

export interface ManualGatewayConfig {
  name: string;
  inside: string;
  outside: string;
  /** The network behind this gateway. */
  protects: string;
  /** Traffic to this prefix goes through the out SA. */
  remote: string;
  out: ManualSa;
  in: ManualSa;
}

/** Lab-only fixed keys (never use them for real traffic): A→B and B→A. */
const A_TO_B: ManualSa = { src: '198.18.10.1', dst: '198.18.20.1', spi: 0x1001, key: '00112233445566778899aabbccddeeff01020304' };
const B_TO_A: ManualSa = { src: '198.18.20.1', dst: '198.18.10.1', spi: 0x2002, key: 'ffeeddccbbaa99887766554433221100a1a2a3a4' };

export const SPI_GATEWAYS: readonly ManualGatewayConfig[] = [
  { name: 'gwa', inside: '10.10.0.1/24', outside: '198.18.10.1/16', protects: '10.10.0.0/24', remote: '10.20.0.0/24', out: A_TO_B, in: B_TO_A },
  { name: 'gwb', inside: '10.20.0.1/24', outside: '198.18.20.1/16', protects: '10.20.0.0/24', remote: '10.10.0.0/24', out: B_TO_A, in: A_TO_B },
];
const HOST_A = { name: 'hosta', address: '10.10.0.10', gateway: '10.10.0.1', link: 'gwa-net' };
const HOST_B = { name: 'hostb', address: '10.20.0.10', gateway: '10.20.0.1', link: 'gwb-net' };
const OUT_SA = 1;
const IN_SA = 2;

function manualSa(id: number, direction: 'out' | 'in', sa: ManualSa): SaDesc {
  return { id, direction, role: 'end', mode: 'spi', src: sa.src, dst: sa.dst, esp: { suite: 'aes128gcm', key: new Uint8Array(Buffer.from(sa.key, 'hex')), spi: sa.spi } };
}

/**
 * A gateway running its SAs on a Host: datagrams from inside to the remote prefix are sealed
 * (OUTBOUND), ESP to its outside address is opened (INBOUND); everything else is forwarded as usual.
 */
export class ManualSpiGateway {
  private readonly pipeline: TickPipeline<'out' | 'in'>;
  private readonly removeHook: () => void;
  readonly drops = new Map<string, number>();

  constructor(private readonly host: Host, config: ManualGatewayConfig, private readonly engine: Engine, clock: Network['clock'], keyLog?: KeyLog) {
    const outside = config.outside.split('/')[0];
    const outsideU32 = ipToU32(outside);
    const remote = parsePrefix(config.remote);
    engine.setLocalAddresses([config.inside.split('/')[0], outside]);
    for (const sa of [manualSa(OUT_SA, 'out', config.out), manualSa(IN_SA, 'in', config.in)]) {
      keyLog?.record(sa);
      engine.installSa(sa);
      sa.esp!.key.fill(0);
    }
    engine.setPolicies([{ prefix: config.remote, sa: OUT_SA }]);
    engine.setRoutes([{ prefix: config.protects, sa: 0 }]);
    this.pipeline = new TickPipeline(clock, engine, (outcomes) => {
      for (const o of outcomes) {
        if (o.verdict === Verdict.FORWARD || o.verdict === Verdict.DELIVER) this.host.send(o.packet, { bypassHooks: true });
        else this.drops.set(reasonName[o.reason], (this.drops.get(reasonName[o.reason]) ?? 0) + 1);
      }
      return [];
    });
    this.removeHook = host.addHook('input', (packet, ctx) => {
      const check = parseIpv4(packet, 0);
      if (!check.ok) return 'pass';
      const { dst, protocol } = check.header;
      if (ctx.iface === 'inside' && prefixContains(remote, dst)) this.pipeline.push({ op: Op.OUTBOUND, packet: packet.slice(), tag: 'out' });
      else if (ctx.iface === 'outside' && protocol === IpProto.ESP && dst === outsideU32) this.pipeline.push({ op: Op.INBOUND, packet: packet.slice(), tag: 'in' });
      else return 'pass';
      return 'consumed';
    });
  }

  close(): void {
    this.removeHook();
    this.engine.close();
  }
}

const REQ = udp(HOST_A.address, HOST_B.address, 40000, 7);
const REP = udp(HOST_B.address, HOST_A.address, 7, 40000);
const esp = (sa: ManualSa, inner: string) => `${ip(sa.src, sa.dst)} / ESP(spi ${sa.spi}) / ${inner}`;

export const SPI_EXPECT: Record<string, string[]> = {
  'gwa-net': [`hosta > gwa: ${REQ}`, `gwa > hosta: ${REP}`],
  internet: [`gwa > gwb: ${esp(A_TO_B, REQ)}`, `gwb > gwa: ${esp(B_TO_A, REP)}`],
  'gwb-net': [`gwb > hostb: ${REQ}`, `hostb > gwb: ${REP}`],
};

async function runSpiCase<N extends Network>(this: LabCase, ctx: CaseContext<N>): Promise<CaseResult> {
  const started = Date.now();
  const result: CaseResult = { id: this.id, section: this.section, title: this.title, pass: false, stacks: {}, failures: [], durationMs: 0 };
  const network = ctx.runtime.network();
  const keyLog = ctx.runtime.keyLog?.();
  const log = keyLog ?? new KeyLog();
  const gateways: ManualSpiGateway[] = [];
  let keep = false;
  try {
    for (const link of ['internet', 'gwa-net', 'gwb-net']) network.addLink(link);
    for (const g of SPI_GATEWAYS) {
      const host = network.addHost(g.name, { forwarding: true });
      host.addInterface('inside', `${g.name}-net`, g.inside);
      host.addInterface('outside', 'internet', g.outside);
    }
    const hosts = [HOST_A, HOST_B].map((h) => {
      const host = network.addHost(h.name);
      host.addInterface('eth0', h.link, `${h.address}/24`);
      host.addRoute('0.0.0.0/0', { via: h.gateway });
      echoServer(host);
      return host;
    });
    SPI_GATEWAYS.forEach((g) => gateways.push(new ManualSpiGateway(network.host(g.name), g, createEngine(ctx.engine as EngineImpl), network.clock, log)));
    await ctx.runtime.ready(network);
    clearCaptures(network);
    const echoes = collectEchoes(hosts[0]);
    hosts[0].send(probe(HOST_A.address, HOST_B.address, 1));
    await ctx.runtime.wait(network, SETTLE_MS, () => echoes.seqs.includes(1));
    echoes.stop();
    result.stacks = stacksByLink(network, log.resolver());
    if (!echoes.seqs.includes(1)) result.failures.push('the probe from host A was not echoed back by host B');
    result.failures.push(...stackDiff(SPI_EXPECT, result.stacks));
    for (const g of gateways) for (const [reason, n] of g.drops) result.failures.push(`gateway dropped ${n} packet(s): ${reason}`);
    keep = (await ctx.extras?.(network, result, { from: HOST_A.name, fromAddress: HOST_A.address, peer: HOST_B.name, peerAddress: HOST_B.address })) ?? false;
  } finally {
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
