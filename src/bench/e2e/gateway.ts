// The benchmark's mipsec gateway process: reads a GatewaySpec on stdin, starts one native I/O loop per
// node (each in its namespace), prints "ready" and runs until SIGTERM/SIGINT, then stops the loops,
// closes the engines (keys zeroed) and prints its counters to stderr. Started by mipsec.ts.
import { Batch } from '../../engine/batch.js';
import { IoLoop, type InjectPacket, type PuntedPacket } from '../../engine/io.js';
import { NativeEngine } from '../../engine/native.js';
import { RefEngine } from '../../engine/ref/engine.js';
import { createEngine } from '../../engine/index.js';
import { Op, Verdict, VERDICT_COUNTER_BASE, reasonName, type Engine } from '../../engine/types.js';
import { decodeSpec, wipeSpec, type NodeSpec } from './gateway-spec.js';

interface RunningNode {
  spec: NodeSpec;
  native: NativeEngine;
  loop: IoLoop;
  /** ts data path only: the engine that transforms the punted packets. */
  ts?: RefEngine;
  punts: Map<string, number>;
}

function configure(engine: Engine, node: NodeSpec): void {
  for (const sa of node.sas) engine.installSa(sa);
  engine.setPolicies(node.policies);
  engine.setRoutes(node.routes);
  engine.setLocalAddresses(node.local);
}

/**
 * Runs punted packets through the TS engine (OUTBOUND for TUN reads, INBOUND for raw reads) and re-injects the results.
 */
function tsTransform(
  engine: RefEngine,
  batch: Batch,
  loop: IoLoop,
  packets: PuntedPacket[],
  dropped: Map<string, number>,
): void {
  for (let start = 0; start < packets.length; start += batch.capacity) {
    batch.clear();
    const chunk = packets.slice(start, start + batch.capacity);
    for (const p of chunk) batch.push(p.from === 'tun' ? Op.OUTBOUND : Op.INBOUND, p.packet);
    engine.process(batch);
    const out: InjectPacket[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const r = batch.result(i);
      if (r.verdict === Verdict.FORWARD) out.push({ packet: r.packet, via: 'raw' });
      else if (r.verdict === Verdict.DELIVER) out.push({ packet: r.packet, via: 'tun' });
      else {
        const why = `ts:${reasonName[r.reason]}`;
        dropped.set(why, (dropped.get(why) ?? 0) + 1);
      }
    }
    if (out.length) loop.inject(out);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const spec = decodeSpec(await readStdin());
  const nodes: RunningNode[] = [];
  // Room for the outer layers in front of a punted TUN packet, and the largest raw packet behind.
  const batch = spec.dataPath === 'ts' ? new Batch({ capacity: 256, slotSize: 4096, headroom: 512 }) : undefined;
  for (const node of spec.nodes) {
    const native = createEngine('native') as NativeEngine;
    const ts = spec.dataPath === 'ts' ? new RefEngine() : undefined;
    configure(ts ?? native, node);
    const punts = new Map<string, number>();
    const running: Partial<RunningNode> = { spec: node, native, ts, punts };
    running.loop = IoLoop.start({
      engine: native,
      netns: node.netns,
      tun: { name: node.tun, mtu: node.tunMtu },
      raw: true,
      workers: spec.workers,
      udpPort: spec.udpPort,
      pollMicros: spec.pollMicros,
      onPunt(packets) {
        if (ts && batch) {
          tsTransform(ts, batch, running.loop!, packets, punts);
          return;
        }
        for (const p of packets) punts.set(p.reason, (punts.get(p.reason) ?? 0) + 1);
      },
    });
    nodes.push(running as RunningNode);
  }
  wipeSpec(spec);
  process.stdout.write('ready\n');

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const node of nodes) {
      node.loop.stop();
      const stats = node.loop.stats();
      // One machine-readable line per node (the chain figure reads its relays' CPU per packet from it).
      process.stderr.write(`loop-stats ${JSON.stringify({ netns: node.spec.netns, stats })}\n`);
      const counters = (node.ts ?? node.native).counters();
      const drops = [...counters.entries()]
        .filter(([i, n]) => i > 0 && i < VERDICT_COUNTER_BASE && n > 0n)
        .map(([i, n]) => `${reasonName[i]}=${n}`);
      const punts = [...node.punts.entries()].map(([r, n]) => `${r}=${n}`);
      process.stderr.write(
        `${node.spec.netns}: ${JSON.stringify(stats)} ` +
          `engine drops/punts: ${drops.join(' ') || 'none'}; punts seen: ${punts.join(' ') || 'none'}\n`,
      );
      node.ts?.close();
      node.native.close();
    }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`mipsec bench gateway: ${(err as Error).message}\n`);
  process.exit(1);
});
