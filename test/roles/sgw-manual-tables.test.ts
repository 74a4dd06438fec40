// Manual SPI-mode SAs compiled into the I/O loops' interface tables (ManualSpiGateway `dataPath`): the inside
// table seals what the hook would seal, the outside table opens ESP to the outside address, and what the hook
// would not decide the same way (other destinations, other interfaces) is punted, never passed (both engines).
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, createEngine, Op, Reason, Verdict } from '../../src/engine/index.js';
import { addSpiGatewayHost, addSpiLinks, interfaceOf, loadSpiExample } from '../../src/lab/spi.js';
import { probe } from '../../src/lab/traffic.js';
import { MemoryNetwork } from '../../src/net/memory.js';
import { ManualSpiGateway } from '../../src/roles/sgw/manual.js';
import { IpProto, parseIpv4 } from '../../src/wire/ipv4.js';

const TABLES = { inside: 1, outside: 2 };
let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.reverse()) f();
  cleanup = [];
});

describe.each(['native', 'ts'] as const)('manual SAs in the data path tables (%s engine)', (impl) => {
  it('inside: the remote prefix is sealed, anything else punted; outside: ESP to the outside address opened, nothing passed', async () => {
    const example = await loadSpiExample();
    cleanup.push(() => rmSync(example.dir, { recursive: true, force: true }));
    const network = new MemoryNetwork({ startMs: Date.now() });
    addSpiLinks(network);
    const engines = example.nodes.map(() => createEngine(impl));
    for (const [i, g] of example.nodes.entries()) {
      const gateway = new ManualSpiGateway({
        host: addSpiGatewayHost(network, g),
        clock: network.clock,
        engine: engines[i],
        entries: g.node.manualSas ?? [],
        keys: g.paths.manualKeys ?? [],
        inside: interfaceOf(g, 'inside'),
        outside: interfaceOf(g, 'outside'),
        dataPath: TABLES,
      });
      cleanup.push(() => gateway.close());
    }
    const [gwa, gwb] = engines;
    const batch = new Batch();
    const run = (engine: typeof gwa, table: number, packet: Uint8Array) => {
      batch.clear();
      const i = batch.push(Op.OUTBOUND, packet, table);
      engine.process(batch);
      const r = batch.result(i);
      return { verdict: r.verdict, reason: r.reason, packet: r.packet.slice() };
    };

    const datagram = probe('10.10.0.10', '10.20.0.10', 1);
    const sealed = run(gwa, TABLES.inside, datagram);
    expect(sealed.verdict).toBe(Verdict.FORWARD);
    const outer = parseIpv4(sealed.packet, 0);
    expect(outer.ok && [outer.header.protocol, outer.header.dst]).toEqual([IpProto.ESP, 0xc6121401]);
    const opened = run(gwb, TABLES.outside, sealed.packet);
    expect(opened.verdict).toBe(Verdict.DELIVER);
    expect(opened.packet).toEqual(datagram);

    // Not for the remote prefix, or sealed traffic read on the wrong side: left to the hook.
    expect(run(gwa, TABLES.inside, probe('10.10.0.10', '10.30.0.10', 2))).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.no_policy,
    });
    expect(run(gwa, TABLES.outside, probe('198.18.30.1', '10.20.0.10', 3))).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.no_policy,
    });
    expect(run(gwb, TABLES.inside, sealed.packet)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.no_policy });
  });
});
