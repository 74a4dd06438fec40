import { describe, expect, it } from 'vitest';
import { createEngine, Verdict, VERDICT_COUNTER_BASE, type Engine } from '../../src/engine/index.js';
import type { MemoryHost } from '../../src/net/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeIpipHeader } from '../../src/wire/ipip.js';
import { IPV4_HEADER_BYTES, parseIpv4 } from '../../src/wire/ipv4.js';
import {
  decodeReply,
  encodeRequest,
  idHigh,
  idLow,
  makeId,
  MIP_PORT,
  ntpFromUnixMs,
  ReplyCode,
  RequestFlag,
  verifyMnHaAuth,
  type MnHaKey,
  type RegistrationReply,
  type RegistrationRequest,
} from '../../src/wire/mobileip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';
import {
  appPacket,
  appText,
  buildNetwork,
  CARE_OF,
  CH0_ADDRESS,
  HA_ADDRESS,
  HOME_ADDRESS,
  MN_AUTH,
  moveToSite1,
} from './topology.js';

/** Sends hand-made Registration Requests from the MN host and collects the verified replies. */
function rawClient(mn: MemoryHost, clockNow: () => number) {
  const replies: RegistrationReply[] = [];
  mn.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok || udp.udp.srcPort !== MIP_PORT) return;
    const parsed = decodeReply(udp.udp.payload);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(verifyMnHaAuth(udp.udp.payload, parsed.mnHaAuth, MN_AUTH)).toEqual({ ok: true });
    replies.push(parsed.message);
  });
  const request = (fields: Partial<RegistrationRequest> = {}): RegistrationRequest => ({
    flags: RequestFlag.D,
    lifetime: 300,
    homeAddress: ipToU32(HOME_ADDRESS),
    homeAgent: ipToU32(HA_ADDRESS),
    careOf: ipToU32(CARE_OF),
    identification: ntpFromUnixMs(clockNow()),
    ...fields,
  });
  const sendBytes = (payload: Uint8Array, from = CARE_OF) =>
    mn.send(
      buildUdpDatagram({ src: ipToU32(from), dst: ipToU32(HA_ADDRESS), srcPort: 5000, dstPort: MIP_PORT }, payload),
    );
  const send = (fields: Partial<RegistrationRequest> = {}, auth: MnHaKey = MN_AUTH, from = CARE_OF) => {
    const bytes = encodeRequest(request(fields), auth);
    sendBytes(bytes, from);
    return bytes;
  };
  return { replies, send, sendBytes, request };
}

function away(engine?: Engine) {
  const world = buildNetwork({ maxLifetime: 600, engine });
  moveToSite1(world.mn);
  world.mn.addLocalAddress(HOME_ADDRESS);
  const client = rawClient(world.mn, () => world.net.clock.now());
  return { ...world, client };
}

describe('home agent: registration', () => {
  it('accepts an authenticated request, binds the care-of address and proxies the home address', () => {
    const { net, ha, client } = away();
    const sent = client.send({ lifetime: 300 });
    net.runFor(100);
    expect(client.replies).toHaveLength(1);
    const reply = client.replies[0];
    expect(reply).toMatchObject({
      code: ReplyCode.ACCEPTED,
      lifetime: 300,
      homeAddress: ipToU32(HOME_ADDRESS),
      homeAgent: ipToU32(HA_ADDRESS),
    });
    // Success replies echo the whole identification.
    expect(reply.identification).toBe(new DataView(sent.buffer).getBigUint64(16));
    expect(ha.bindings()).toEqual([
      { homeAddress: HOME_ADDRESS, careOf: CARE_OF, lifetime: 300, expiresAt: expect.any(Number) },
    ]);
    // The reply left the HA for the care-of address from port 434 to the request's source port.
    const onHome = net
      .link('home')
      .captures()
      .filter((f) => f.from === 'ha/eth0');
    const udp = parseUdpDatagram(onHome[0].packet);
    expect(udp.ok && [udp.udp.src, udp.udp.dst, udp.udp.srcPort, udp.udp.dstPort]).toEqual([
      ipToU32(HA_ADDRESS),
      ipToU32(CARE_OF),
      434,
      5000,
    ]);
  });

  it('caps the lifetime at maxLifetime, also for an infinite request, and answers S with code 1', () => {
    const { net, ha, client } = away();
    client.send({ lifetime: 0xffff, flags: RequestFlag.D | RequestFlag.S });
    net.runFor(100);
    expect(client.replies[0]).toMatchObject({ code: ReplyCode.ACCEPTED_NO_SIMULTANEOUS, lifetime: 600 });
    expect(ha.bindings()[0].lifetime).toBe(600);
  });

  it('answers 131 to a bad authenticator or a wrong SPI and binds nothing', () => {
    const { net, ha, client } = away();
    const tampered = encodeRequest(client.request(), MN_AUTH);
    tampered[tampered.length - 1] ^= 1;
    client.sendBytes(tampered);
    client.send({}, { spi: MN_AUTH.spi, key: new Uint8Array(16) });
    client.send({}, { spi: MN_AUTH.spi + 1, key: MN_AUTH.key });
    net.runFor(100);
    expect(client.replies.map((r) => r.code)).toEqual([131, 131, 131]);
    expect(ha.bindings()).toEqual([]);
    expect(ha.counters().replies).toEqual({ 131: 3 });
  });

  it('answers 133 to a replayed request, with its own clock in the high half and the low half copied', () => {
    const { net, ha, client } = away();
    const first = client.send();
    net.runFor(100);
    net.runFor(2000);
    client.sendBytes(first);
    net.runFor(100);
    expect(client.replies.map((r) => r.code)).toEqual([0, 133]);
    const firstId = new DataView(first.buffer).getBigUint64(16);
    const mismatch = client.replies[1].identification;
    expect(idLow(mismatch)).toBe(idLow(firstId));
    expect(idHigh(mismatch)).toBe(idHigh(ntpFromUnixMs(net.clock.now())));
    expect(idHigh(mismatch)).toBeGreaterThan(idHigh(firstId));
    expect(ha.bindings()).toHaveLength(1);
  });

  it('requires identifications to increase strictly and to lie within 7 s of its clock', () => {
    const { net, client } = away();
    const now = ntpFromUnixMs(net.clock.now());
    client.send({ identification: now });
    net.runFor(100);
    client.send({ identification: now - 1n });
    client.send({ identification: now });
    client.send({ identification: makeId(idHigh(now) + 8, 0) });
    client.send({ identification: makeId(idHigh(now) - 8, 0) });
    net.runFor(100);
    const tolerated = ntpFromUnixMs(net.clock.now() + 6500);
    client.send({ identification: tolerated });
    net.runFor(100);
    expect(client.replies.map((r) => r.code)).toEqual([0, 133, 133, 133, 133, 0]);
  });

  it('expires a binding at the end of its lifetime on the virtual clock and stops proxying', () => {
    const { net, ha, ch0, client } = away();
    const events: string[] = [];
    ha.on((e) => events.push(e.type));
    client.send({ lifetime: 30 });
    net.runFor(100);
    const expiresAt = ha.bindings()[0].expiresAt;
    net.run(expiresAt - 1);
    expect(ha.bindings()).toHaveLength(1);
    net.run(expiresAt);
    expect(ha.bindings()).toEqual([]);
    expect(events).toEqual(['reply', 'binding', 'expired']);
    // Nobody answers for the home address on the home link any more.
    ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'late'));
    net.runFor(100);
    expect(ch0.counters().unresolved).toBe(1);
    expect(ha.counters().tunnelled).toBe(0);
  });

  it('deregisters on lifetime 0 and on care-of = home address', () => {
    const { net, ha, client } = away();
    client.send();
    net.runFor(100);
    client.send({ lifetime: 0, identification: ntpFromUnixMs(net.clock.now()) + 1n });
    net.runFor(100);
    expect(ha.bindings()).toEqual([]);
    client.send({ identification: ntpFromUnixMs(net.clock.now()) + 2n });
    net.runFor(100);
    expect(ha.bindings()).toHaveLength(1);
    client.send({ careOf: ipToU32(HOME_ADDRESS), identification: ntpFromUnixMs(net.clock.now()) + 3n });
    net.runFor(100);
    expect(ha.bindings()).toEqual([]);
    expect(client.replies.map((r) => [r.code, r.lifetime])).toEqual([
      [0, 300],
      [0, 0],
      [0, 300],
      [0, 0],
    ]);
  });

  it('denies what it cannot or may not do, each with its code', () => {
    const denied = (options: Parameters<typeof buildNetwork>[0], fields: Partial<RegistrationRequest>) => {
      const world = buildNetwork(options);
      moveToSite1(world.mn);
      const client = rawClient(world.mn, () => world.net.clock.now());
      client.send(fields);
      world.net.runFor(100);
      expect(world.ha.bindings()).toEqual([]);
      return client.replies.map((r) => r.code);
    };
    expect(denied({}, { homeAgent: ipToU32('10.0.0.3') })).toEqual([ReplyCode.UNKNOWN_HA_ADDRESS]);
    expect(denied({}, { flags: RequestFlag.D | RequestFlag.G })).toEqual([139]);
    expect(denied({}, { careOf: ipToU32(HA_ADDRESS) })).toEqual([ReplyCode.POORLY_FORMED_REQUEST]);
    expect(denied({ authorize: (_home, careOf) => careOf !== CARE_OF }, {})).toEqual([ReplyCode.ADMIN_PROHIBITED]);
    expect(denied({ maxBindings: 0 }, {})).toEqual([ReplyCode.INSUFFICIENT_RESOURCES]);
  });

  it('answers a malformed request from a known MN with 134 and drops one it cannot attribute', () => {
    const { net, ha, client } = away();
    const good = encodeRequest(client.request(), MN_AUTH);
    const unknownNonSkippable = new Uint8Array([...good.subarray(0, 24), 99, 0, ...good.subarray(24)]);
    client.sendBytes(unknownNonSkippable);
    client.sendBytes(good.subarray(0, 6));
    const stranger = encodeRequest(client.request({ homeAddress: ipToU32('10.0.0.200') }), MN_AUTH);
    client.sendBytes(stranger);
    net.runFor(100);
    expect(client.replies.map((r) => r.code)).toEqual([ReplyCode.POORLY_FORMED_REQUEST]);
    expect(client.replies[0].identification).toBe(new DataView(good.buffer).getBigUint64(16));
    expect(ha.counters().drops).toMatchObject({ malformed_request: 1, unknown_mobile_node: 1 });
  });
});

describe('home agent: tunnelling', () => {
  it('drops an intercepted packet whose source is the care-of address (RFC 2003 loop) and one whose TTL runs out', () => {
    const { net, ha, ch0, client } = away();
    client.send();
    net.runFor(100);
    ch0.send(appPacket(CARE_OF, HOME_ADDRESS, 'spoofed-loop'));
    ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'ttl', 1));
    net.runFor(100);
    expect(ha.counters()).toMatchObject({ tunnelled: 0, drops: { loop: 1, ttl_expired: 1 } });
  });

  it('decapsulates a reverse tunnel only from the bound care-of address with the home address inside', () => {
    const { net, ha, mn, ch0, client } = away();
    client.send();
    net.runFor(100);
    const got: string[] = [];
    ch0.onDeliver((packet) => got.push(appText(packet) ?? '?'));
    const tunnelled = (outerSrc: string, inner: Uint8Array) => {
      const ip = parseIpv4(inner, 0);
      if (!ip.ok) throw new Error(ip.reason);
      const out = new Uint8Array(IPV4_HEADER_BYTES + inner.length);
      out.set(inner, IPV4_HEADER_BYTES);
      writeIpipHeader(out, 0, ip.header, ipToU32(outerSrc), ipToU32(HA_ADDRESS));
      return out;
    };
    mn.send(tunnelled(CARE_OF, appPacket(HOME_ADDRESS, CH0_ADDRESS, 'reverse')));
    mn.send(tunnelled(CARE_OF, appPacket('10.0.0.77', CH0_ADDRESS, 'wrong-inner-source')));
    mn.addInterface('eth1', 'site1', '10.1.0.101/16');
    mn.send(tunnelled('10.1.0.101', appPacket(HOME_ADDRESS, CH0_ADDRESS, 'wrong-outer-source')));
    net.runFor(100);
    expect(got).toEqual(['reverse']);
    expect(ha.counters()).toMatchObject({ decapsulated: 1, drops: { untrusted_tunnel: 2 } });
  });

  it.each(['native', 'ts'] as const)(
    "builds the tunnel and opens the reverse tunnel with the %s engine's IPIP_ENCAP / IPIP_DECAP",
    (impl) => {
      process.env.MIPSEC_NATIVE = '1';
      const engine = createEngine(impl);
      const { net, ha, mn, ch0, client } = away(engine);
      client.send();
      net.runFor(100);
      const verdicts = () => engine.counters();
      const forwards = verdicts()[VERDICT_COUNTER_BASE + Verdict.FORWARD];
      const delivers = verdicts()[VERDICT_COUNTER_BASE + Verdict.DELIVER];
      const atMn: Uint8Array[] = [];
      mn.addHook('input', (packet) => (atMn.push(packet.slice()), 'pass'));
      ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'to-mn'));
      net.runFor(100);
      expect(verdicts()[VERDICT_COUNTER_BASE + Verdict.FORWARD]).toBe(forwards + 1n);
      const tunnel = atMn.find((p) => p[9] === 4)!;
      expect(parseIpv4(tunnel, 0)).toMatchObject({
        ok: true,
        header: { src: ipToU32(HA_ADDRESS), dst: ipToU32(CARE_OF) },
      });
      expect(appText(tunnel.subarray(IPV4_HEADER_BYTES))).toBe('to-mn');
      const inner = appPacket(HOME_ADDRESS, CH0_ADDRESS, 'reverse');
      const ip = parseIpv4(inner, 0);
      if (!ip.ok) throw new Error(ip.reason);
      const out = new Uint8Array(IPV4_HEADER_BYTES + inner.length);
      out.set(inner, IPV4_HEADER_BYTES);
      writeIpipHeader(out, 0, ip.header, ipToU32(CARE_OF), ipToU32(HA_ADDRESS));
      const got: string[] = [];
      ch0.onDeliver((packet) => got.push(appText(packet) ?? '?'));
      mn.send(out);
      net.runFor(100);
      expect(got).toEqual(['reverse']);
      expect(verdicts()[VERDICT_COUNTER_BASE + Verdict.DELIVER]).toBe(delivers + 1n);
      expect(ha.counters()).toMatchObject({ tunnelled: 1, decapsulated: 1 });
      ha.close();
      engine.close();
    },
  );

  it('stops answering on close and leaves the caller key alone', () => {
    const world = buildNetwork();
    const key = MN_AUTH.key.slice();
    world.ha.close();
    expect(MN_AUTH.key).toEqual(key); // the caller's key is the caller's
    moveToSite1(world.mn);
    const client = rawClient(world.mn, () => world.net.clock.now());
    client.send();
    world.net.runFor(100);
    expect(client.replies).toEqual([]);
  });
});
