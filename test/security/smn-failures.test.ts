// Issue 10, hole 5: forged ICMP 40 (RFC 2521) must not steer the mobile node. The SMN visits Site 1 of the Figure 6
// world and is registered; an attacker on the visited link ('mallory') forges failure messages with spoofed SGW
// sources. A failure counts only if it quotes a packet the SMN sent lately and comes from an SGW on that packet's
// path; a refusal by the visited site expires. Both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, Op } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying } from '../../src/keys/keying.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { clearCaptures } from '../../src/lab/stacks.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';
import type { Host } from '../../src/net/types.js';
import { NodeKeys } from '../../src/roles/common/keys.js';
import { DEFAULT_SUITES } from '../../src/roles/common/suites.js';
import { REFUSAL_MS, type Procedure } from '../../src/roles/smn/paths.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildSecurityFailurePacket, Icmp40Code, type Icmp40CodeValue } from '../../src/wire/icmp40.js';
import { buildIpv4, parseIpv4 } from '../../src/wire/ipv4.js';
import { IPPROTO_SKIP, NSID_IPV4 } from '../../src/wire/skip.js';
import { runOne } from '../engine/fixtures.js';

process.env.MIPSEC_NATIVE = '1';
/** An attacker's address on Site 1's network, next to the visiting SMN. */
const MALLORY = '10.1.0.66';

describe.each(['native', 'ts'] as const)('hole 5: forged ICMP 40 on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => {
    world?.close();
    mallory = undefined;
  });

  async function visiting(procedure: Procedure = 'direct'): Promise<World> {
    world = await figure6World({ engine, smn: { procedure } });
    world.place('sgw1');
    world.network.runFor(SETTLE_MS);
    expect(world.smn.registration.state).toBe('registered');
    return world;
  }

  /** Sends `seq` to CH0 and returns whether its echo came back. */
  function echoed(w: World, seq: number): boolean {
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, F6.ch0, seq));
    w.network.runFor(SETTLE_MS);
    echoes.stop();
    return echoes.seqs.includes(seq);
  }

  /** The last SKIP packet the SMN put on the visited link: what an on-path attacker can quote. */
  function lastSent(w: World): Uint8Array {
    const frames = w.network
      .link('sgw1-net')
      .captures()
      .filter((f) => f.from === 'smn/eth0' && f.packet[9] === IPPROTO_SKIP);
    if (frames.length === 0) throw new Error('the SMN sent no SKIP packet on sgw1-net');
    return frames.at(-1)!.packet;
  }

  let mallory: Host | undefined;
  /** A failure message "from" `sender` to the SMN's care-of address about `quoted`, sent by mallory. */
  function forge(w: World, sender: string, code: Icmp40CodeValue, quoted: Uint8Array): void {
    mallory ??= w.addHost('mallory', MALLORY);
    mallory.send(buildSecurityFailurePacket(ipToU32(sender), ipToU32(F6.coa1), code, quoted), { bypassHooks: true });
    w.network.runFor(50);
  }

  it('hole 5: a forged code 5 "from the visited SGW" quoting a packet the SMN never sent does not blackhole it', async () => {
    const w = await visiting();
    expect(echoed(w, 1)).toBe(true);
    const invented = buildIpv4(
      { src: ipToU32(F6.coa1), dst: ipToU32(F6.sgw1), protocol: IPPROTO_SKIP, ttl: 64 },
      new Uint8Array(64).fill(7),
    );
    forge(w, F6.sgw1, Icmp40Code.needAuthorization, invented);
    expect(echoed(w, 2)).toBe(true);
    expect(w.smn.counters().drop_visit_refused).toBeUndefined();
    expect(w.smn.counters().failure_visit_refused).toBeUndefined();
    expect(w.smn.counters()).toMatchObject({ failure_quote_not_sent: 1 });
  });

  it('hole 5: a forged code 4 "from" an SGW off the path (SGW2), quoting a real packet, does not detour the SMN there', async () => {
    const w = await visiting();
    expect(echoed(w, 1)).toBe(true);
    forge(w, F6.sgw2, Icmp40Code.needAuthentication, lastSent(w));
    clearCaptures(w.network);
    expect(echoed(w, 2)).toBe(true);
    // Nothing of the SMN's went to SGW2: every layer it sent names SGW1 or SGW0.
    const outer = w.network
      .link('internet')
      .captures()
      .flatMap((f) => {
        const ip = parseIpv4(f.packet, 0);
        return ip.ok ? [ip.header.dst] : [];
      });
    expect(outer).not.toContain(ipToU32(F6.sgw2));
    expect(w.smn.counters()).toMatchObject({ failure_off_path: 1 });
  });

  it('hole 5: a refusal (code 5 from the visited SGW, quoting a real packet) expires after REFUSAL_MS', async () => {
    const w = await visiting();
    expect(echoed(w, 1)).toBe(true);
    // An on-path attacker can quote what it saw: the refusal takes, but only for a while.
    forge(w, F6.sgw1, Icmp40Code.needAuthorization, lastSent(w));
    expect(w.smn.counters()).toMatchObject({ failure_visit_refused: 1 });
    expect(echoed(w, 2)).toBe(false);
    expect(w.smn.counters().drop_visit_refused).toBeGreaterThanOrEqual(1);
    w.network.runFor(REFUSAL_MS);
    expect(echoed(w, 3)).toBe(true);
  });

  it('hole 5: a failure the End-End peer (SGW0) sends inside its own SA is trusted without quoting a recent send', async () => {
    const w = await visiting();
    expect(echoed(w, 1)).toBe(true);
    const older = buildIpv4(
      { src: ipToU32(F6.coa1), dst: ipToU32(F6.sgw0), protocol: IPPROTO_SKIP, ttl: 64 },
      new Uint8Array(64).fill(9),
    );
    const failure = buildSecurityFailurePacket(
      ipToU32(F6.sgw0),
      ipToU32(F6.coa1),
      Icmp40Code.needAuthentication,
      older,
    );
    // Plain, the same message proves nothing.
    forge(w, F6.sgw0, Icmp40Code.needAuthentication, older);
    expect(w.smn.counters()).toMatchObject({ failure_quote_not_sent: 1 });
    // Inside an End-End layer keyed with SGW0's certificate (as SGW0 would build it), it is authenticated.
    const nowS = () => Math.floor(w.network.clock.now() / 1000);
    const certs = new CertCache(w.ca.cert);
    certs.add(w.identities.get(`smn:${F6.home}`)!.cert, nowS());
    const sgw0Engine = createEngine(engine);
    const sgw0 = new NodeKeys(
      new SkipKeying({ identity: w.identities.get(`sgw:${F6.sgw0}`)!, certs, now: nowS }),
      sgw0Engine,
    );
    const sa = sgw0.outbound({
      peer: { nsid: NSID_IPV4, address: ipToU32(F6.home) },
      src: F6.sgw0,
      dst: F6.coa1,
      role: 'end',
      esp: DEFAULT_SUITES.esp,
      ah: DEFAULT_SUITES.endAh,
    });
    if (!sa.ok) throw new Error(sa.message);
    const sealed = runOne(sgw0Engine, Op.ENCAP, failure, sa.id);
    sgw0.close();
    sgw0Engine.close();
    const nexthopNotes = w.smn.counters().failure_need_nexthop ?? 0;
    w.addHost('mallory-sgw0', '10.1.0.67').send(sealed.packet, { bypassHooks: true });
    w.network.runFor(50);
    expect(w.smn.counters()).toMatchObject({ failure_authenticated: 1, failure_need_nexthop: nexthopNotes + 1 });
    expect(w.smn.counters().failure_quote_not_sent).toBe(1);
  });

  it("code 0 (a restarted receiver lost our key) retires a packet key only when that key's receiver quotes a packet it sealed lately", async () => {
    const w = await visiting();
    expect(echoed(w, 1)).toBe(true);
    // The outer layer the SMN last sent is its Next-hop layer for SGW1: only SGW1 may say it lost that key.
    const quoted = lastSent(w);
    expect(parseIpv4(quoted, 0)).toMatchObject({ ok: true, header: { dst: ipToU32(F6.sgw1) } });
    const wrappedKp = (p: Uint8Array) => Buffer.from(p.subarray(20, 60)).toString('hex');
    forge(w, F6.sgw0, Icmp40Code.badSpi, quoted);
    const invented = buildIpv4(
      { src: ipToU32(F6.coa1), dst: ipToU32(F6.sgw1), protocol: IPPROTO_SKIP, ttl: 64 },
      new Uint8Array(64).fill(7),
    );
    forge(w, F6.sgw1, Icmp40Code.badSpi, invented);
    expect(w.smn.counters()).toMatchObject({ failure_quote_not_sent: 2 });
    expect(w.smn.counters().rekey_peer_lost_key).toBeUndefined();
    expect(echoed(w, 2)).toBe(true);
    expect(wrappedKp(lastSent(w))).toBe(wrappedKp(quoted));
    // From SGW1 about a packet the SMN sent under that key (what a restarted SGW1 says): a fresh Kp from now on.
    forge(w, F6.sgw1, Icmp40Code.badSpi, lastSent(w));
    expect(w.smn.counters()).toMatchObject({ rekey_peer_lost_key: 1, failure_quote_not_sent: 2 });
    expect(echoed(w, 3)).toBe(true);
    expect(wrappedKp(lastSent(w))).not.toBe(wrappedKp(quoted));
  });

  it('hole 5: genuine failures still drive the three-step procedure (§3.2): plain, Next-hop AH, End-End', async () => {
    const w = await visiting('three-step');
    echoed(w, 1);
    expect(echoed(w, 2)).toBe(true);
    const c = w.smn.counters();
    expect(c.failure_need_nexthop).toBeGreaterThanOrEqual(1);
    expect(c.failure_need_end_end).toBeGreaterThanOrEqual(1);
    expect(c.failure_quote_not_sent).toBeUndefined();
    expect(c.failure_off_path).toBeUndefined();
  });
});
