// Issue 10 hole 1: fragments never bypass policy. A fragment used to fail parseIpv4 in the SGW's and
// the SMN's hooks, which then returned 'pass': the host forwarded it as plain IP (from the Internet
// to any inside host, and between sites in clear). Now every fragment is reassembled first and the
// whole datagram takes the path an unfragmented one takes (policy, engine). Both engines; the
// namespace tests (root) do the same with kernel-made fragments.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import { MAX_PACKET } from '../../src/engine/io.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { addSpiEndHosts, addSpiGatewayHost, addSpiLinks, interfaceOf, loadSpiExample } from '../../src/lab/spi.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { sleep } from '../../src/lab/runtime-linux.js';
import { clearCaptures } from '../../src/lab/stacks.js';
import { probe } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';
import { APP_PORT, LINK_MTU, LinuxNetwork } from '../../src/net/linux/network.js';
import { MemoryNetwork } from '../../src/net/memory.js';
import { randomSuffix } from '../../src/net/netns.js';
import { ManualSpiGateway } from '../../src/roles/sgw/manual.js';
import type { CapturedPacket, Host, Network } from '../../src/net/types.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { fragmentIpv4, isFragment } from '../../src/wire/fragment.js';
import { buildIpv4, IPV4_FLAG_MF, IpProto, parseIpv4, setIpv4Checksum } from '../../src/wire/ipv4.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';
import { parseUdpDatagram } from '../../src/wire/udp.js';
import { canRunNetns } from '../io/topology.js';
import { routedPair } from '../lab/routed.js';

process.env.MIPSEC_NATIVE = '1';
const BIG = 3000;
const MTU = 1300;

/** UDP payloads `host` had delivered to it (whole datagrams only). */
function received(host: Host): Uint8Array[] {
  const got: Uint8Array[] = [];
  host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (udp.ok) got.push(udp.udp.payload.slice());
  });
  return got;
}

function header(frame: CapturedPacket) {
  const ip = parseIpv4(frame.packet, 0, frame.packet.length, { allowFragments: true });
  if (!ip.ok) throw new Error(`unreadable frame on ${frame.link}`);
  return ip.header;
}

/** What crossed `link`: anything but a whole SKIP datagram is carried in clear. */
function clearOn(network: Network, link: string): string[] {
  return network
    .link(link)
    .captures()
    .flatMap((f) => {
      const h = header(f);
      return h.protocol === IPPROTO_SKIP && !isFragment(h)
        ? []
        : [`${f.from}: proto ${h.protocol}${isFragment(h) ? ' fragment' : ''}`];
    });
}

function fragments(datagram: Uint8Array, mtu = MTU): Uint8Array[] {
  const out = fragmentIpv4(datagram, mtu);
  if (!out || out.length < 2) throw new Error('expected fragments');
  return out;
}

/** A UDP fragment of datagram `id` from `src`: payload bytes [offset, offset + size), MF = `more`. */
function fragment(src: string, dst: string, id: number, offset: number, size: number, more: boolean): Uint8Array {
  const flagsFragment = (more ? IPV4_FLAG_MF : 0) | (offset / 8);
  const payload = new Uint8Array(size).fill(0x5a);
  return buildIpv4(
    { src: ipToU32(src), dst: ipToU32(dst), identification: id, flagsFragment, protocol: IpProto.UDP },
    payload,
  );
}

/** Counter changes from `a` to `b`, fragment counters left out. */
function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const changed = Object.entries(b).filter(([k, v]) => !k.startsWith('frag_') && v !== (a[k] ?? 0));
  return Object.fromEntries(changed.map(([k, v]) => [k, v - (a[k] ?? 0)]));
}

describe.each(['native', 'ts'] as const)(
  'hole 1: fragments never bypass policy, memory network, %s engine',
  (engine) => {
    let world: World | undefined;
    afterEach(() => world?.close());

    async function settled(): Promise<World> {
      world = await figure6World({ engine });
      world.network.runFor(SETTLE_MS);
      clearCaptures(world.network);
      return world;
    }

    it('hole 1: fragmented UDP from an Internet host to CH0 is dropped exactly like the same datagram unfragmented', async () => {
      const w = await settled();
      const chx = w.network.host('chx');
      const atCh0 = received(w.network.host('ch0'));
      const sgw0 = w.sgws.get('sgw0')!;
      const datagram = probe(F6.chx, F6.ch0, 1, BIG);
      const before = sgw0.counters();
      chx.send(datagram);
      w.network.runFor(100);
      const whole = sgw0.counters();
      for (const f of fragments(datagram)) chx.send(f);
      w.network.runFor(100);
      const after = sgw0.counters();
      expect(atCh0).toEqual([]);
      expect(
        w.network
          .link('sgw0-net')
          .captures()
          .filter((f) => header(f).src === ipToU32(F6.chx)),
      ).toEqual([]);
      // The policy saw one whole datagram each time and decided the same.
      expect(delta(whole, after)).toEqual(delta(before, whole));
      expect(Object.keys(delta(before, whole)).some((k) => k.startsWith('drop'))).toBe(true);
      expect(after).toMatchObject({ frag_received: 3, frag_reassembled: 1 });
    });

    it('hole 1: a 3,000-byte UDP datagram CH0 → CH1, fragmented by its sender, arrives whole, crossing the Internet in ESP', async () => {
      const w = await settled();
      const atCh1 = received(w.network.host('ch1'));
      const atCh0 = received(w.network.host('ch0'));
      const datagram = probe(F6.ch0, F6.ch1, 7, BIG);
      for (const f of fragments(datagram)) w.network.host('ch0').send(f);
      w.network.runFor(500);
      const sent = parseUdpDatagram(datagram);
      expect(sent.ok && atCh1).toEqual([sent.ok && sent.udp.payload]);
      // CH1's echo (3,000 bytes, unfragmented) comes back the same way.
      expect(atCh0.map((p) => p.length)).toEqual([BIG]);
      expect(clearOn(w.network, 'internet')).toEqual([]);
      expect(w.network.link('internet').captures().length).toBeGreaterThanOrEqual(2);
      expect(w.sgws.get('sgw0')!.counters()).toMatchObject({ frag_received: 3, frag_reassembled: 1 });
    });

    it('hole 1: overlapping fragments drop the whole datagram, counted (drop_frag_overlap); nothing crosses', async () => {
      const w = await settled();
      const atCh1 = received(w.network.host('ch1'));
      const ch0 = w.network.host('ch0');
      ch0.send(fragment(F6.ch0, F6.ch1, 0x77, 0, 800, true));
      // Rewrites bytes 400..1199 (RFC 1858's overlapping-fragment trick), then the end.
      ch0.send(fragment(F6.ch0, F6.ch1, 0x77, 400, 800, true));
      ch0.send(fragment(F6.ch0, F6.ch1, 0x77, 800, 812, false));
      w.network.runFor(200);
      expect(atCh1).toEqual([]);
      expect(w.network.link('internet').captures()).toEqual([]);
      expect(w.sgws.get('sgw0')!.counters()).toMatchObject({ drop_frag_overlap: 1 });
      expect(w.sgws.get('sgw0')!.counters().frag_reassembled).toBeUndefined();
    });

    it('hole 1: a flood of incomplete datagrams from many sources stays within the memory bound, times out; traffic goes on', async () => {
      const w = await settled();
      const chx = w.network.host('chx');
      const sgw0 = w.sgws.get('sgw0')!;
      // 400 sources, one first fragment each: the table holds 256 datagrams, the oldest give way.
      for (let i = 0; i < 400; i++) chx.send(fragment(`198.18.${100 + (i >> 8)}.${i & 0xff}`, F6.ch0, i, 0, 800, true));
      w.network.runFor(100);
      expect(sgw0.counters()).toMatchObject({ frag_received: 400, drop_frag_memory: 400 - 256 });
      // One source alone gets a quarter of the table, 64 datagrams (each pushing out the oldest of the flood).
      for (let i = 0; i < 100; i++) chx.send(fragment(F6.chx, F6.ch0, 1000 + i, 0, 800, true));
      w.network.runFor(100);
      expect(sgw0.counters()).toMatchObject({ drop_frag_source_share: 100 - 64, drop_frag_memory: 144 + 64 });
      // A real datagram pushes out one more and is reassembled.
      const atCh1 = received(w.network.host('ch1'));
      for (const f of fragments(probe(F6.ch0, F6.ch1, 9, BIG))) w.network.host('ch0').send(f);
      w.network.runFor(500);
      expect(atCh1.map((p) => p.length)).toEqual([BIG]);
      expect(
        w.network
          .link('sgw0-net')
          .captures()
          .filter((f) => f.from.startsWith('sgw0') && header(f).src !== ipToU32(F6.ch1)),
      ).toEqual([]);
      // The 255 datagrams still held expire after 15 s.
      w.network.runFor(16_000);
      expect(sgw0.counters()).toMatchObject({
        drop_frag_memory: 144 + 64 + 1,
        drop_frag_timeout: 255,
        frag_reassembled: 1,
      });
    });

    it("hole 1: the SMN's own fragments leave inside its layers; a SKIP packet fragmented on the way to it is opened whole", async () => {
      const w = await settled();
      w.place('sgw1');
      w.network.runFor(SETTLE_MS);
      clearCaptures(w.network);
      const atCh0 = received(w.network.host('ch0'));
      const atSmn = received(w.smnHost);
      // Output: the application's fragments go out through the SMN's output hook.
      for (const f of fragments(probe(F6.home, F6.ch0, 3, BIG))) w.smn.send(f);
      w.network.runFor(500);
      expect(atCh0.map((p) => p.length)).toEqual([BIG]);
      expect(clearOn(w.network, 'sgw1-net').filter((s) => s.startsWith('smn'))).toEqual([]);
      expect(w.smn.counters()).toMatchObject({ frag_reassembled: 1 });
      // CH0's 3,000-byte echo came back in SKIP layers; the SMN opened it.
      expect(atSmn.map((p) => p.length)).toEqual([BIG]);
      // Input: the next SKIP packet to the SMN is split on its link; the SMN puts it together and opens it.
      const link = w.network.link('sgw1-net');
      const split: Uint8Array[] = [];
      link.setLoss((packet) => {
        const ip = parseIpv4(packet, 0);
        if (split.length || !ip.ok || ip.header.protocol !== IPPROTO_SKIP || ip.header.dst !== ipToU32(F6.coa1))
          return false;
        split.push(...fragments(packet, 1000));
        return true;
      });
      w.smn.send(probe(F6.home, F6.ch0, 4, BIG));
      w.network.runFor(500);
      link.setLoss(undefined);
      expect(split.length).toBeGreaterThanOrEqual(3);
      const before = atSmn.length;
      for (const f of split) w.smnHost.inject(f, { iface: 'eth0' });
      w.network.runFor(100);
      expect(atSmn.slice(before).map((p) => p.length)).toEqual([BIG]);
      expect(w.smn.counters().frag_reassembled).toBe(2);
    });
  },
);

describe.each(['native', 'ts'] as const)(
  'hole 1: SPI-mode gateways (manual SAs), memory network, %s engine',
  (engine) => {
    it('hole 1: a 3,000-byte datagram host A → host B, fragmented by its sender, arrives whole, crossing the Internet in ESP', async () => {
      const network = new MemoryNetwork();
      const example = await loadSpiExample();
      const gateways: ManualSpiGateway[] = [];
      try {
        addSpiLinks(network);
        for (const g of example.nodes) addSpiGatewayHost(network, g);
        const [a, b] = addSpiEndHosts(network);
        for (const g of example.nodes) {
          gateways.push(
            new ManualSpiGateway({
              host: network.host(g.node.name),
              clock: network.clock,
              engine: createEngine(engine),
              entries: g.node.manualSas ?? [],
              keys: g.paths.manualKeys ?? [],
              inside: interfaceOf(g, 'inside'),
              outside: interfaceOf(g, 'outside'),
            }),
          );
        }
        const atB = received(b);
        const atA = received(a);
        for (const f of fragments(probe('10.10.0.10', '10.20.0.10', 1, BIG))) a.send(f);
        network.runFor(500);
        expect(atB.map((p) => p.length)).toEqual([BIG]);
        expect(atA.map((p) => p.length)).toEqual([BIG]);
        const internet = network.link('internet').captures().map(header);
        expect(internet.length).toBe(2);
        expect(internet.filter((h) => h.protocol !== IpProto.ESP || isFragment(h))).toEqual([]);
        expect(gateways[0].counters()).toMatchObject({ manual_frag_received: 3, manual_frag_reassembled: 1 });
      } finally {
        for (const g of gateways) g.close();
        rmSync(example.dir, { recursive: true, force: true });
      }
    });
  },
);

// ── namespaces: kernel-made fragments ────────────────────────────────────────────────────────

/** Runs a Python `script` in `host`'s namespace as the lab's application user; resolves with what it printed. */
function udpApp(net: LinuxNetwork, host: string, script: string): Promise<string> {
  const [cmd, ...args] = net.appCommand(host, ['/usr/bin/python3', '-c', script]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise<string>((resolve) => child.on('close', () => resolve(out)));
}

// Bytes that read as port 5201 wherever a later fragment starts, so the host would hand it to the kernel's sockets too.
const PATTERN = 'bytes([0x14, 0x51]) * 1486';
const listen = `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',${APP_PORT})); s.settimeout(8)
try:
  while True: d,a=s.recvfrom(65535); print(len(d),a[0],flush=True)
except socket.timeout: pass`;
const send = (dst: string) => `import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(${PATTERN},('${dst}',${APP_PORT}))`;

describe.skipIf(!canRunNetns)('hole 1 in namespaces: kernel-made fragments (root)', () => {
  let world: World<LinuxNetwork> | undefined;
  afterEach(async () => {
    world?.close();
    await world?.network.close();
    world = undefined;
  });

  it('hole 1: 2,972 UDP bytes ch0 → ch1 arrive whole, only SKIP on the Internet link; fragments from chx never reach ch0', async () => {
    world = await figure6World({ engine: 'native', network: new LinuxNetwork({ prefix: `mfrag-${randomSuffix()}` }) });
    const net = world.network;
    await net.startCapture();
    await sleep(SETTLE_MS);
    clearCaptures(net);
    const ch1 = udpApp(net, 'ch1', listen);
    const ch0 = udpApp(net, 'ch0', listen);
    await sleep(500);
    await udpApp(net, 'ch0', send(F6.ch1));
    await udpApp(net, 'chx', send(F6.ch0));
    const [atCh1, atCh0] = await Promise.all([ch1, ch0]);
    expect(atCh1.trim()).toBe(`2972 ${F6.ch0}`);
    expect(atCh0.trim()).toBe('');
    const internet = net.link('internet').captures();
    expect(
      internet.filter((f) => header(f).src === ipToU32(F6.ch0)),
      'ch0 → ch1 in clear',
    ).toEqual([]);
    expect(internet.some((f) => header(f).protocol === IPPROTO_SKIP && header(f).src === ipToU32(F6.sgw0))).toBe(true);
    // The kernel fragmented both (application MTU 1300); SGW0 reassembled both and passed neither in clear.
    expect(
      net
        .link('sgw0-net')
        .captures()
        .filter((f) => header(f).src === ipToU32(F6.chx)),
    ).toEqual([]);
    const c = world.sgws.get('sgw0')!.counters();
    expect(c.frag_reassembled).toBe(2);
  }, 120_000);

  // A Linux lab host's links carry 3,520 bytes (the I/O loop's cap); a reassembled datagram and its encapsulation may be larger.
  it("hole 1: a datagram larger than a Linux host's links carry leaves in fragments; with DF it is dropped, counted", async () => {
    const net = new LinuxNetwork({ prefix: `mfrag-${randomSuffix()}` });
    try {
      const { a, b } = routedPair(net, '10.51', '10.61');
      const got: Uint8Array[] = [];
      b.onDeliver((p) => void got.push(p.slice()));
      await net.startCapture();
      const big = probe('10.51.0.10', '10.61.0.10', 1, 5000);
      expect(a.send(big)).toEqual({ ok: true });
      const deadline = Date.now() + 5000;
      while (got.length < 2 && Date.now() < deadline) await sleep(20);
      await sleep(300);
      // The host fragments to what its link carries (the I/O loop's packet cap, if the link were larger).
      const carried = Math.min(LINK_MTU, MAX_PACKET);
      expect(got.map((p) => p.length)).toEqual(fragmentIpv4(big, carried)!.map((p) => p.length));
      expect(
        net
          .link('left')
          .captures()
          .every((f) => f.packet.length <= carried),
      ).toBe(true);
      const dontFragment = probe('10.51.0.10', '10.61.0.10', 2, 5000);
      dontFragment[6] |= 0x40;
      dontFragment[10] = dontFragment[11] = 0;
      setIpv4Checksum(dontFragment);
      expect(a.send(dontFragment)).toEqual({ ok: false, reason: 'too_big' });
      expect(a.counters().too_big).toBe(1);
    } finally {
      await net.close();
    }
  }, 60_000);
});
