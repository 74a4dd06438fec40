// A temporary copy of examples/figure6 with a fresh CA and identity files, and a MemoryNetwork whose
// hosts are made from the node configs the way a Linux host factory would attach real interfaces.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadedNode } from '../../src/config/index.js';
import { saveCertificate, saveX25519 } from '../../src/keys/keyfile.js';
import { makeCa, makeIdentity } from '../../src/lab/world.js';
import { MemoryNetwork } from '../../src/net/memory.js';
import type { Host } from '../../src/net/types.js';

export const EXAMPLE_DIR = new URL('../../examples/figure6/', import.meta.url).pathname;

export interface Fixture {
  dir: string;
  file(name: string): string;
  network: MemoryNetwork;
  /** runDaemon's host factory: a host named after the node, its interfaces on the links of their networks. */
  hostFor(loaded: LoadedNode): Host;
}

/** Link of an address in the figure6 lab: the Internet (198.18/16) or a site network. */
function linkOf(address: string): string {
  const [a, b, c] = address.split('.').map(Number);
  if (a === 198 && b === 18) return 'internet';
  if (a === 10 && c === 0) return `site${b}`;
  throw new Error(`no figure6 link for ${address}`);
}

export function figure6Fixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'mipsec-daemon-'));
  for (const f of readdirSync(EXAMPLE_DIR).filter((f) => f.endsWith('.yaml')))
    copyFileSync(join(EXAMPLE_DIR, f), join(dir, f));
  mkdirSync(join(dir, 'keys'));
  mkdirSync(join(dir, 'ca'));
  const network = new MemoryNetwork({ startMs: Date.now() });
  const nowS = Math.floor(network.clock.now() / 1000);
  const ca = makeCa(nowS);
  saveCertificate(join(dir, 'ca/ca.crt'), ca.cert);
  const names: Record<string, string> = {
    sgw0: 'sgw:198.18.0.1',
    sgw1: 'sgw:198.18.1.1',
    sgw2: 'sgw:198.18.2.1',
    smn: 'smn:10.0.0.100',
  };
  for (const [node, name] of Object.entries(names)) {
    const id = makeIdentity(ca.key, name, nowS);
    saveX25519(join(dir, `keys/${node}.key`), id);
    saveCertificate(join(dir, `keys/${node}.crt`), id.cert);
    id.secretKey.fill(0);
  }
  for (const link of ['internet', 'site0', 'site1', 'site2']) network.addLink(link);
  const hostFor = (loaded: LoadedNode): Host => {
    const { node } = loaded;
    const host = network.addHost(node.name, { forwarding: node.role === 'sgw' });
    for (const itf of node.interfaces)
      host.addInterface(itf.name, linkOf(itf.address), `${itf.address}/${itf.prefixLength}`);
    for (const itf of node.interfaces) if (itf.gateway) host.addRoute('0.0.0.0/0', { via: itf.gateway });
    // The lab's Internet routes each site's prefix to its Border-SGW.
    if (node.role === 'sgw')
      for (const sgw of loaded.map.sgws)
        if (sgw.name !== node.name) host.addRoute(`10.${sgw.outside.split('.')[2]}.0.0/16`, { via: sgw.outside });
    return host;
  };
  return { dir, file: (name) => join(dir, name), network, hostFor };
}

/** A correspondent host on a site network with its SGW as default router. */
export function addCorrespondent(network: MemoryNetwork, name: string, address: string): Host {
  const host = network.addHost(name);
  host.addInterface('eth0', linkOf(address), `${address}/16`);
  host.addRoute('0.0.0.0/0', { via: address.replace(/\.\d+$/, '.1') });
  return host;
}
