// The SGW daemon's role with examples/spi: buildRole installs the manual SAs at start (traffic between
// the sites is plain RFC 4303 ESP with the configured SPIs) and removes them on close.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCertificate, loadIdentity, saveCertificate, saveX25519 } from '../../src/keys/keyfile.js';
import { CertCache } from '../../src/keys/cache.js';
import { buildRole, type RoleEvent, type RunningRole } from '../../src/daemon/roles.js';
import { createEngine } from '../../src/engine/index.js';
import { addSpiEndHosts, addSpiGatewayHost, addSpiLinks, loadSpiExample } from '../../src/lab/spi.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import { makeCa, makeIdentity } from '../../src/lab/world.js';
import { MemoryNetwork } from '../../src/net/memory.js';
import { IpProto, parseIpv4 } from '../../src/wire/ipv4.js';

const SPIS = { gwa: 4097, gwb: 8194 };
let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.reverse()) f();
  cleanup = [];
});

/** ESP SPIs seen on a link, in order. */
function espSpis(network: MemoryNetwork, link: string): number[] {
  return network
    .link(link)
    .captures()
    .flatMap((c) => {
      const ip = parseIpv4(c.packet, 0);
      if (!ip.ok || ip.header.protocol !== IpProto.ESP) return [];
      return [new DataView(c.packet.buffer, c.packet.byteOffset + ip.header.headerLength).getUint32(0)];
    });
}

describe('SGW daemon role with manualSas (examples/spi)', () => {
  it('installs the manual SAs at start, carries host A ↔ host B as ESP with the configured SPIs, removes them on close', async () => {
    const example = await loadSpiExample();
    cleanup.push(() => rmSync(example.dir, { recursive: true, force: true }));
    const network = new MemoryNetwork({ startMs: Date.now() });
    const nowS = Math.floor(network.clock.now() / 1000);
    const ca = makeCa(nowS);
    mkdirSync(join(example.dir, 'keys'), { recursive: true });
    mkdirSync(join(example.dir, 'ca'));
    saveCertificate(join(example.dir, 'ca/ca.crt'), ca.cert);
    addSpiLinks(network);
    const events: RoleEvent[] = [];
    const roles: RunningRole[] = [];
    for (const loaded of example.nodes) {
      const { node } = loaded;
      const outside = node.interfaces.find((i) => i.name === 'outside')!.address;
      const id = makeIdentity(ca.key, `sgw:${outside}`, nowS);
      saveX25519(join(example.dir, `keys/${node.name}.key`), id);
      saveCertificate(join(example.dir, `keys/${node.name}.crt`), id.cert);
      id.secretKey.fill(0);
      const host = addSpiGatewayHost(network, loaded);
      const paths = {
        ...loaded.paths,
        key: join(example.dir, `keys/${node.name}.key`),
        cert: join(example.dir, `keys/${node.name}.crt`),
        ca: join(example.dir, 'ca/ca.crt'),
      };
      roles.push(
        buildRole({
          loaded: { ...loaded, paths },
          host,
          clock: network.clock,
          engine: createEngine('ts'),
          identity: loadIdentity(paths.key, paths.cert),
          certs: new CertCache(loadCertificate(paths.ca)),
          onEvent: (e) => events.push(e),
        }),
      );
    }
    let closed = false;
    cleanup.push(() => {
      if (!closed) for (const r of roles) r.close();
    });
    const [hostA] = addSpiEndHosts(network);
    expect(events.filter((e) => e.event === 'manual_sas_installed')).toEqual([
      { event: 'manual_sas_installed', count: 1, names: ['to-gwb'] },
      { event: 'manual_sas_installed', count: 1, names: ['to-gwa'] },
    ]);

    const echoes = collectEchoes(hostA);
    hostA.send(probe('10.10.0.10', '10.20.0.10', 1));
    network.run(network.clock.now() + 1000);
    expect(echoes.seqs).toEqual([1]);
    expect(espSpis(network, 'internet')).toEqual([SPIS.gwa, SPIS.gwb]);
    expect(roles.map((r) => Object.keys(r.counters()).filter((k) => k.startsWith('manual_drop_')))).toEqual([[], []]);

    for (const r of roles) r.close();
    closed = true;
    expect(events.filter((e) => e.event === 'manual_sas_removed')).toHaveLength(2);
    hostA.send(probe('10.10.0.10', '10.20.0.10', 2));
    network.run(network.clock.now() + 1000);
    expect(espSpis(network, 'internet')).toEqual([SPIS.gwa, SPIS.gwb]);
    expect(echoes.seqs).toEqual([1]);
  });
});
