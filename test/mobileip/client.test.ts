import { describe, expect, it } from 'vitest';
import {
  RegistrationClient,
  type RegistrationEvent,
  type RegistrationTransport,
} from '../../src/roles/smn/registration-client.js';
import { UdpRegistrationTransport } from '../../src/roles/smn/registration-transport.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { decodeRequest, encodeReply, MIP_PORT, RequestFlag } from '../../src/wire/mobileip.js';
import { parseUdpDatagram } from '../../src/wire/udp.js';
import {
  buildNetwork,
  CARE_OF,
  HA_ADDRESS,
  HOME_ADDRESS,
  MN_AUTH,
  mnRegistrationClient,
  moveHome,
  moveToSite1,
} from './topology.js';

function world(options: { clockErrorMs?: number; lifetime?: number; ha?: Parameters<typeof buildNetwork>[0] } = {}) {
  const w = buildNetwork(options.ha);
  const client = mnRegistrationClient(w, { lifetime: options.lifetime, clockErrorMs: options.clockErrorMs });
  const events: RegistrationEvent[] = [];
  client.on((e) => events.push(e));
  /** Registration Requests as they entered `link`, with their time relative to `start`. */
  const requestsOn = (link: string, start: number) =>
    w.net
      .link(link)
      .captures()
      .flatMap((f) => {
        const udp = parseUdpDatagram(f.packet);
        if (!udp.ok || udp.udp.dstPort !== MIP_PORT || f.from !== 'mn/eth0') return [];
        const request = decodeRequest(udp.udp.payload);
        return request.ok ? [{ at: f.time - start, fate: f.fate, src: udp.udp.src, request: request.message }] : [];
      });
  return { ...w, client, events, requestsOn };
}

/** A client whose transport records each request it sends and lets the test hand it replies. */
function scriptedClient() {
  const w = buildNetwork();
  const sent: Uint8Array[] = [];
  const handlers: ((bytes: Uint8Array) => void)[] = [];
  const transport: RegistrationTransport = {
    send: (request) => sent.push(request),
    onReply: (handler) => {
      handlers.push(handler);
      return () => undefined;
    },
  };
  const client = mnRegistrationClient(w, { transport });
  const deliver = (bytes: Uint8Array) => handlers.forEach((h) => h(bytes));
  return { ...w, client, sent, deliver };
}

describe('registration client', () => {
  it('registers a co-located care-of address with the D flag, from the care-of address', () => {
    const w = world();
    const start = w.net.clock.now();
    moveToSite1(w.mn);
    w.client.attach(CARE_OF);
    expect(w.client.state).toBe('registering');
    w.net.runFor(1000);
    expect(w.client.state).toBe('registered');
    expect(w.client.registration).toEqual({ careOf: CARE_OF, lifetime: 600, expiresAt: start + 600_000 });
    const [sent] = w.requestsOn('site1', start);
    expect(sent.src).toBe(ipToU32(CARE_OF));
    expect(sent.request).toMatchObject({
      flags: RequestFlag.D,
      lifetime: 600,
      homeAddress: ipToU32(HOME_ADDRESS),
      homeAgent: ipToU32(HA_ADDRESS),
      careOf: ipToU32(CARE_OF),
    });
    expect(w.ha.bindings()).toMatchObject([{ homeAddress: HOME_ADDRESS, careOf: CARE_OF, lifetime: 600 }]);
    expect(w.events).toEqual([{ type: 'registered', careOf: CARE_OF, lifetime: 600 }]);
  });

  it('resynchronises its identification on 133 and then registers', () => {
    const w = world({ clockErrorMs: -3_600_000 });
    moveToSite1(w.mn);
    w.client.attach(CARE_OF);
    w.net.runFor(1000);
    expect(w.ha.counters().replies).toEqual({ 133: 1, 0: 1 });
    expect(w.events.map((e) => e.type)).toEqual(['resync', 'registered']);
    const resync = w.events[0] as Extract<RegistrationEvent, { type: 'resync' }>;
    // One hour behind, corrected to the second (the HA's clock has 1 s resolution in the high half).
    expect(Math.abs(resync.correctionMs - 3_600_000)).toBeLessThanOrEqual(1000);
    expect(w.client.counters()).toMatchObject({ requests: 2, resyncs: 1, retransmissions: 0 });
    expect(w.client.state).toBe('registered');
  });

  it('retransmits with exponential back-off while requests are lost', () => {
    const w = world();
    moveToSite1(w.mn);
    let registrationFrames = 0;
    // Lose the first three requests on the foreign link.
    w.net.link('site1').setLoss((packet) => {
      const udp = parseUdpDatagram(packet);
      return udp.ok && udp.udp.dstPort === MIP_PORT && ++registrationFrames <= 3;
    });
    const start = w.net.clock.now();
    w.client.attach(CARE_OF);
    w.net.runFor(10_000);
    expect(w.requestsOn('site1', start).map((r) => [r.at, r.fate])).toEqual([
      [0, 'lost'],
      [1000, 'lost'],
      [3000, 'lost'],
      [7000, 'delivered'],
    ]);
    expect(w.events.filter((e) => e.type === 'retransmit')).toEqual([
      { type: 'retransmit', attempt: 1, timeoutMs: 2000 },
      { type: 'retransmit', attempt: 2, timeoutMs: 4000 },
      { type: 'retransmit', attempt: 3, timeoutMs: 8000 },
    ]);
    expect(w.client.state).toBe('registered');
    // Each retransmission carried a fresh, larger identification.
    const ids = w.requestsOn('site1', start).map((r) => r.request.identification);
    expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
  });

  it('caps the back-off at maxRetransmitMs and registers once a lossy Internet lets a request through', () => {
    const w = world();
    moveToSite1(w.mn);
    w.net.link('internet').setLoss(() => true);
    const start = w.net.clock.now();
    w.client.attach(CARE_OF);
    w.net.runFor(120_000);
    const times = w.requestsOn('site1', start).map((r) => r.at);
    expect(times).toEqual([0, 1000, 3000, 7000, 15000, 31000, 63000, 95000]);
    expect(w.client.state).toBe('registering');
    w.net.link('internet').setLoss(0.5, 3);
    w.net.runFor(600_000);
    expect(w.client.state).toBe('registered');
    expect(w.ha.bindings()).toHaveLength(1);
  });

  it('re-registers at 80 % of the granted lifetime, so the binding never lapses', () => {
    const w = world({ lifetime: 100 });
    const haEvents: string[] = [];
    w.ha.on((e) => haEvents.push(e.type));
    moveToSite1(w.mn);
    const start = w.net.clock.now();
    w.client.attach(CARE_OF);
    w.net.runFor(1_000_000);
    const times = w.requestsOn('site1', start).map((r) => r.at);
    expect(times.slice(0, 4)).toEqual([0, 80_000, 160_000, 240_000]);
    expect(times).toHaveLength(13);
    expect(haEvents).not.toContain('expired');
    expect(w.ha.bindings()).toHaveLength(1);
  });

  it('follows a lifetime the HA shortened', () => {
    const w = world({ lifetime: 1000, ha: { maxLifetime: 50 } });
    moveToSite1(w.mn);
    const start = w.net.clock.now();
    w.client.attach(CARE_OF);
    w.net.runFor(100_000);
    expect(w.client.registration?.lifetime).toBe(50);
    expect(w.requestsOn('site1', start).map((r) => r.at)).toEqual([0, 40_000, 80_000]);
  });

  it('deregisters from the home address when it returns home', () => {
    const w = world();
    moveToSite1(w.mn);
    w.client.attach(CARE_OF);
    w.net.runFor(1000);
    moveHome(w.mn);
    const start = w.net.clock.now();
    w.client.returnHome();
    expect(w.client.state).toBe('deregistering');
    w.net.runFor(1000);
    expect(w.client.state).toBe('home');
    expect(w.client.registration).toBeUndefined();
    expect(w.ha.bindings()).toEqual([]);
    const [dereg] = w.requestsOn('home', start);
    expect(dereg.src).toBe(ipToU32(HOME_ADDRESS));
    expect(dereg.request).toMatchObject({ lifetime: 0, careOf: ipToU32(HOME_ADDRESS) });
    expect(w.events.map((e) => e.type)).toEqual(['registered', 'deregistered']);
  });

  it('gives up deregistering after a few attempts when the HA never answers', () => {
    const w = world();
    w.net.link('home').setLoss(() => true);
    w.client.returnHome();
    w.net.runFor(60_000);
    expect(w.client.state).toBe('home');
    expect(w.client.counters()).toMatchObject({ requests: 4, retransmissions: 3 });
    expect(w.events.at(-1)).toEqual({ type: 'gave_up' });
  });

  it('stops on a denial and does not retransmit', () => {
    const w = world({ ha: { authorize: () => false } });
    moveToSite1(w.mn);
    w.client.attach(CARE_OF);
    w.net.runFor(60_000);
    expect(w.client.state).toBe('denied');
    expect(w.events).toEqual([{ type: 'denied', code: 129 }]);
    expect(w.client.counters().requests).toBe(1);
  });

  it('ignores replies that are forged, for another request, or for another node', () => {
    const { client, sent, deliver } = scriptedClient();
    client.attach(CARE_OF);
    const request = decodeRequest(sent[0]);
    if (!request.ok) throw new Error(request.detail);
    const id = request.message.identification;
    const base = {
      code: 0,
      lifetime: 600,
      homeAddress: ipToU32(HOME_ADDRESS),
      homeAgent: ipToU32(HA_ADDRESS),
      identification: id,
    };
    deliver(encodeReply(base, { spi: MN_AUTH.spi, key: new Uint8Array(16) }));
    deliver(encodeReply({ ...base, identification: id + 1n }, MN_AUTH));
    deliver(encodeReply({ ...base, homeAddress: ipToU32('10.0.0.101') }, MN_AUTH));
    deliver(new Uint8Array([3, 0, 1]));
    expect(client.counters()).toMatchObject({ replies: 0, ignoredReplies: 4 });
    expect(client.state).toBe('registering');
    deliver(encodeReply(base, MN_AUTH));
    expect(client.state).toBe('registered');
    client.stop();
    expect(client.state).toBe('stopped');
    expect(() => client.attach(CARE_OF)).toThrow(/stopped/);
  });

  it('treats an acceptance with lifetime 0 as no registration instead of re-registering in a loop', () => {
    const { net, client, sent, deliver } = scriptedClient();
    client.attach(CARE_OF);
    const request = decodeRequest(sent[0]);
    if (!request.ok) throw new Error(request.detail);
    deliver(
      encodeReply(
        {
          code: 0,
          lifetime: 0,
          homeAddress: ipToU32(HOME_ADDRESS),
          homeAgent: ipToU32(HA_ADDRESS),
          identification: request.message.identification,
        },
        MN_AUTH,
      ),
    );
    net.runFor(60_000);
    expect(client.state).toBe('denied');
    expect(sent).toHaveLength(1);
  });

  it('accepts a late reply to an earlier transmission and counts the lifetime from that request', () => {
    const { net, client, sent, deliver } = scriptedClient();
    const start = net.clock.now();
    client.attach(CARE_OF);
    net.runFor(1500);
    expect(sent).toHaveLength(2);
    const first = decodeRequest(sent[0]);
    if (!first.ok) throw new Error(first.detail);
    deliver(
      encodeReply(
        {
          code: 0,
          lifetime: 600,
          homeAddress: ipToU32(HOME_ADDRESS),
          homeAgent: ipToU32(HA_ADDRESS),
          identification: first.message.identification,
        },
        MN_AUTH,
      ),
    );
    expect(client.state).toBe('registered');
    expect(client.registration?.expiresAt).toBe(start + 600_000);
    net.runFor(10_000);
    expect(sent).toHaveLength(2);
  });

  it('lets a new care-of address supersede a registration in progress', () => {
    const w = world();
    moveToSite1(w.mn);
    w.net.link('internet').setLoss(() => true);
    w.client.attach(CARE_OF);
    w.net.runFor(500);
    w.net.link('internet').setLoss(undefined);
    w.mn.moveInterface('eth0', 'site1', '10.1.0.101/16');
    w.mn.addRoute('0.0.0.0/0', { via: '10.1.0.1' });
    w.client.attach('10.1.0.101');
    w.net.runFor(5000);
    expect(w.ha.bindings()).toMatchObject([{ careOf: '10.1.0.101' }]);
    expect(w.client.registration?.careOf).toBe('10.1.0.101');
    expect(w.client.counters().retransmissions).toBe(0);
  });

  it('refuses nonsense options, naming them', () => {
    const w = buildNetwork();
    const base = {
      clock: w.net.clock,
      transport: new UdpRegistrationTransport(w.mn, HA_ADDRESS),
      homeAddress: HOME_ADDRESS,
      homeAgent: HA_ADDRESS,
      auth: MN_AUTH,
    };
    expect(() => new RegistrationClient({ ...base, lifetime: 0 })).toThrow(/lifetime/);
    expect(() => new RegistrationClient({ ...base, initialRetransmitMs: 5000, maxRetransmitMs: 1000 })).toThrow(
      /initialRetransmitMs/,
    );
    expect(() => new RegistrationClient({ ...base, reregisterAt: 1 })).toThrow(/reregisterAt/);
    expect(() => new RegistrationClient(base).attach(HOME_ADDRESS)).toThrow(/returnHome/);
  });
});
