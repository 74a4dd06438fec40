// Hostile and refused traffic on the Figure 6 world (issue 4, item 7), both engines: each case is
// dropped with its counted reason and answered with the right ICMP 40 code (or, for replays,
// silently); nothing crashes and nothing reaches the inside.
import { afterEach, describe, expect, it } from 'vitest';
import { Reason } from '../../src/engine/index.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { clearCaptures } from '../../src/lab/stacks.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import { makeCa, makeIdentity, type World, type WorldOptions } from '../../src/lab/world.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { parseSecurityFailure } from '../../src/wire/icmp40.js';
import { IpProto, parseIpv4 } from '../../src/wire/ipv4.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';

process.env.MIPSEC_NATIVE = '1';
const DAY = 86400;
/** Offsets in the SMN's Next-hop layer: IPv4 (20) / SKIP with source MKID (56) / AH (GMAC: 12 + IV 8 + tag 16). */
const SKIP_AT = 20;
const N_AT = SKIP_AT + 4;
const AH_TAG_AT = SKIP_AT + 56 + 20;

/** ICMP 40 codes that crossed a link toward `to`. */
function failureCodes(world: World, link: string, to: string): number[] {
  return world.network
    .link(link)
    .captures()
    .flatMap((f) => {
      const ip = parseIpv4(f.packet, 0);
      if (!ip.ok || ip.header.protocol !== IpProto.ICMP || ip.header.dst !== ipToU32(to)) return [];
      const m = parseSecurityFailure(f.packet, ip.header.headerLength, ip.header.totalLength);
      return m.ok ? [m.message.code] : [];
    });
}

/** Lets the SMN's next SKIP packet to SGW1 be lost on the link and returns its bytes (unused sequence numbers). */
function interceptNext(world: World, send: () => void): Uint8Array {
  const link = world.network.link('sgw1-net');
  let taken: Uint8Array | undefined;
  link.setLoss((packet) => {
    const ip = parseIpv4(packet, 0);
    if (taken || !ip.ok || ip.header.protocol !== IPPROTO_SKIP || ip.header.src !== ipToU32(F6.coa1)) return false;
    taken = packet.slice();
    return true;
  });
  send();
  world.network.runFor(50);
  link.setLoss(undefined);
  if (!taken) throw new Error('no SKIP packet from the SMN was intercepted');
  return taken;
}

describe.each(['native', 'ts'] as const)('refusals on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  async function visiting(options: Omit<WorldOptions, 'map' | 'engine'> = {}): Promise<World> {
    world = await figure6World({ engine, ...options });
    world.place('sgw1');
    world.network.runFor(SETTLE_MS);
    return world;
  }

  it('forged Next-hop AH: dropped by SGW1 (auth), answered with code 1, nothing relayed', async () => {
    const w = await visiting();
    const packet = interceptNext(w, () => w.smn.send(probe(F6.home, F6.ch0, 1)));
    const forged = packet.slice();
    forged[AH_TAG_AT] ^= 0x01;
    const authBefore = w.engines[1].counters()[Reason.auth];
    clearCaptures(w.network);
    w.smnHost.send(forged, { bypassHooks: true });
    w.network.runFor(200);
    expect(w.engines[1].counters()[Reason.auth]).toBe(authBefore + 1n);
    expect(w.sgws.get('sgw1')!.counters()).toMatchObject({ drop_engine_auth: 1, icmp40_sent_code1: 1 });
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toEqual([1]);
    expect(w.network.link('internet').captures()).toEqual([]);
  });

  it('SKIP counter n two hours ahead: outside ±1, dropped (counter_window) with code 0', async () => {
    const w = await visiting();
    const packet = interceptNext(w, () => w.smn.send(probe(F6.home, F6.ch0, 1)));
    const skewed = packet.slice();
    const view = new DataView(skewed.buffer);
    view.setUint32(N_AT, view.getUint32(N_AT) + 2);
    clearCaptures(w.network);
    w.smnHost.send(skewed, { bypassHooks: true });
    w.network.runFor(200);
    expect(w.sgws.get('sgw1')!.counters()).toMatchObject({ drop_keying_counter_window: 1, icmp40_sent_code0: 1 });
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toEqual([0]);
    expect(w.network.link('internet').captures()).toEqual([]);
  });

  it('replayed registration: the captured request sent again is dropped by SGW1 (replay), silently; the HA sees one request', async () => {
    world = await figure6World({ engine });
    const w = world;
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    const request = w.network
      .link('sgw1-net')
      .captures()
      .find(
        (f) =>
          f.from === 'smn/eth0' &&
          f.fate === 'delivered' &&
          f.packet[9] === IPPROTO_SKIP &&
          new DataView(f.packet.buffer, f.packet.byteOffset).getUint32(16) === ipToU32(F6.sgw1),
      );
    expect(request).toBeDefined();
    const accepted = w.ha.counters().replies[0];
    const replaysBefore = w.engines[1].counters()[Reason.replay];
    clearCaptures(w.network);
    for (let i = 0; i < 3; i++) w.smnHost.send(request!.packet, { bypassHooks: true });
    w.network.runFor(200);
    expect(w.engines[1].counters()[Reason.replay]).toBe(replaysBefore + 3n);
    expect(w.sgws.get('sgw1')!.counters().drop_engine_replay).toBe(3);
    expect(w.ha.counters().replies[0]).toBe(accepted);
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toEqual([]);
    expect(w.network.link('internet').captures()).toEqual([]);
  });

  it('SMN not admitted by Site 1: its Next-hop layer is refused with code 5, it stops trying and stays unregistered', async () => {
    const w = await visiting({ admitsVisitor: { sgw1: () => false } });
    expect(w.sgws.get('sgw1')!.counters()).toMatchObject({
      'visitor-refused': 1,
      icmp40_sent_code4: 1,
      icmp40_sent_code5: 1,
    });
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toEqual([4, 5]);
    expect(w.smn.counters().failure_visit_refused).toBe(1);
    expect(w.smn.registration.state).toBe('registering');
    expect(w.ha.bindings()).toEqual([]);
    expect(
      w.network
        .link('internet')
        .captures()
        .filter((f) => f.from.startsWith('sgw1')),
    ).toEqual([]);
  });

  it('certificate from another CA: discovery brings it, the cache refuses it (foreign_ca), the layer is answered with code 0', async () => {
    const nowS = Date.UTC(2026, 0, 1) / 1000;
    const foreign = makeCa(nowS);
    const w = await visiting({
      certificates: 'minimal',
      identities: { [`smn:${F6.home}`]: makeIdentity(foreign.key, `smn:${F6.home}`, nowS) },
    });
    const c = w.sgws.get('sgw1')!.counters();
    expect(c.certificate_foreign_ca).toBeGreaterThanOrEqual(1);
    expect(c.drop_certificate_foreign_ca).toBeGreaterThanOrEqual(1);
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toContain(0);
    expect(
      w.network
        .link('internet')
        .captures()
        .filter((f) => f.from.startsWith('sgw1') && f.packet[9] === IPPROTO_SKIP),
    ).toEqual([]);
    expect(w.ha.bindings()).toEqual([]);
  });

  it('expired certificate: discovery brings it, the cache refuses it (expired), code 0', async () => {
    const nowS = Date.UTC(2026, 0, 1) / 1000;
    const ca = makeCa(nowS);
    const expired = makeIdentity(ca.key, `smn:${F6.home}`, nowS, { from: -2 * DAY, to: -DAY });
    const w = await visiting({ ca, certificates: 'minimal', identities: { [`smn:${F6.home}`]: expired } });
    const c = w.sgws.get('sgw1')!.counters();
    expect(c.certificate_expired).toBeGreaterThanOrEqual(1);
    expect(c.drop_certificate_expired).toBeGreaterThanOrEqual(1);
    expect(c.certificate_foreign_ca).toBeUndefined();
    expect(failureCodes(w, 'sgw1-net', F6.coa1)).toContain(0);
    expect(w.ha.bindings()).toEqual([]);
  });

  it("certificate discovery: with only their own certificates the nodes fetch each other's on UDP 1640, then register and talk", async () => {
    const w = await visiting({ certificates: 'minimal' });
    expect(w.smn.registration.state).toBe('registered');
    expect(w.sgws.get('sgw1')!.counters().discovery_certificate_added).toBeGreaterThanOrEqual(2);
    expect(w.smn.counters().discovery_certificate_added).toBe(1);
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, F6.ch2, 7));
    w.network.runFor(SETTLE_MS);
    w.smn.send(probe(F6.home, F6.ch2, 8));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toContain(8);
  });

  it('garbage to every SGW address never crashes a role and is counted', async () => {
    const w = await visiting();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const targets = [F6.sgw1, F6.sgw0, F6.coa1];
    for (let i = 0; i < 300; i++) {
      const body = Uint8Array.from({ length: 20 + (rand() % 180) }, rand);
      const dst = targets[i % targets.length];
      const packet = new Uint8Array(20 + body.length);
      packet.set([
        0x45,
        0,
        (packet.length >> 8) & 0xff,
        packet.length & 0xff,
        0,
        0,
        0,
        0,
        64,
        i % 3 === 0 ? IpProto.AH : IPPROTO_SKIP,
        0,
        0,
      ]);
      new DataView(packet.buffer).setUint32(12, ipToU32(F6.coa1));
      new DataView(packet.buffer).setUint32(16, ipToU32(dst));
      let sum = 0;
      for (let k = 0; k < 20; k += 2) sum += (packet[k] << 8) | packet[k + 1];
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      packet[10] = (~sum >> 8) & 0xff;
      packet[11] = ~sum & 0xff;
      packet.set(body, 20);
      w.smnHost.send(packet, { bypassHooks: true });
    }
    w.network.runFor(500);
    const dropped = Object.entries(w.sgws.get('sgw1')!.counters())
      .filter(([k]) => k.startsWith('drop'))
      .reduce((n, [, v]) => n + v, 0);
    expect(dropped).toBeGreaterThan(0);
    // Still working afterwards.
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, F6.ch0, 99));
    w.network.runFor(500);
    expect(echoes.seqs).toEqual([99]);
  });
});
