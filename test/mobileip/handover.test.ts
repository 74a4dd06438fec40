// Mobile IPv4 end to end on a MemoryNetwork (no IPsec): home link (r0, ha, ch0), the Internet,
// a foreign link (site 1). The MN moves away, registers, receives CH0's packets through the HA's
// tunnel, answers through a reverse tunnel, comes home and deregisters.
import { describe, expect, it } from 'vitest';
import type { CapturedPacket } from '../../src/net/index.js';
import { TunnelEndpoint } from '../../src/roles/smn/tunnel-endpoint.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeIpipHeader } from '../../src/wire/ipip.js';
import { describe as describeStack } from '../../src/wire/describe.js';
import { IpProto, parseIpv4 } from '../../src/wire/ipv4.js';
import {
  appPacket,
  appText,
  buildNetwork,
  CARE_OF,
  CH0_ADDRESS,
  HA_ADDRESS,
  HOME_ADDRESS,
  mnRegistrationClient,
  moveHome,
  moveToSite1,
} from './topology.js';

function mobileWorld() {
  const w = buildNetwork();
  const client = mnRegistrationClient(w, { reverseTunnel: true });
  const tunnel = new TunnelEndpoint({
    host: w.mn,
    homeAddress: HOME_ADDRESS,
    homeAgent: HA_ADDRESS,
    reverseTunnel: true,
  });
  const atMn: string[] = [];
  const atCh0: string[] = [];
  w.mn.onDeliver((packet) => {
    const text = appText(packet);
    if (text === undefined) return;
    atMn.push(text);
    // The MN answers from its home address, whatever its position.
    w.mn.send(appPacket(HOME_ADDRESS, CH0_ADDRESS, `re:${text}`));
  });
  w.ch0.onDeliver((packet) => {
    const text = appText(packet);
    if (text !== undefined) atCh0.push(text);
  });
  const leave = () => {
    moveToSite1(w.mn);
    tunnel.enterForeign(CARE_OF);
    client.attach(CARE_OF);
  };
  const comeHome = () => {
    moveHome(w.mn);
    tunnel.returnHome();
    client.returnHome();
  };
  const framesSince = (link: string, since: number) =>
    w.net
      .link(link)
      .captures()
      .filter((f) => f.time >= since && appFrame(f));
  return { ...w, client, tunnel, atMn, atCh0, leave, comeHome, framesSince };
}

/** Frames that carry application data (not registrations), tunnelled or not. */
function appFrame(frame: CapturedPacket): boolean {
  const ip = parseIpv4(frame.packet, 0);
  if (!ip.ok) return false;
  const inner = ip.header.protocol === IpProto.IPIP ? frame.packet.subarray(ip.header.headerLength) : frame.packet;
  return appText(inner) !== undefined;
}

describe('Mobile IPv4 on a MemoryNetwork', () => {
  it('tunnels CH0 → home address through the HA to the care-of address, and back through the reverse tunnel', () => {
    const w = mobileWorld();
    // At home: plain delivery on the home link.
    w.ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'at-home'));
    w.net.runFor(100);
    expect(w.atMn).toEqual(['at-home']);
    expect(w.atCh0).toEqual(['re:at-home']);

    w.leave();
    w.net.runFor(1000);
    expect(w.client.state).toBe('registered');
    expect(w.ha.bindings()).toMatchObject([{ homeAddress: HOME_ADDRESS, careOf: CARE_OF }]);

    const sentAt = w.net.clock.now();
    w.ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'away'));
    w.net.runFor(1000);
    expect(w.atMn).toEqual(['at-home', 'away']);
    expect(w.atCh0).toEqual(['re:at-home', 're:away']);
    expect(w.ha.counters()).toMatchObject({ tunnelled: 1, decapsulated: 1 });

    const home = w.framesSince('home', sentAt).map((f) => [f.from, f.to, describeStack(f.packet)]);
    expect(home).toEqual([
      // CH0's packet to the home address goes to the HA, which answers for it on the home link.
      ['ch0/eth0', 'ha/eth0', `IPv4(${CH0_ADDRESS}>${HOME_ADDRESS}) / UDP(7000>7000)`],
      // IP-in-IP from the HA to the care-of address, via the home router.
      ['ha/eth0', 'r0/home', `IPv4(${HA_ADDRESS}>${CARE_OF}) / IPv4(${CH0_ADDRESS}>${HOME_ADDRESS}) / UDP(7000>7000)`],
      // The MN's answer arrives reverse-tunnelled to the HA, which sends the inner datagram to CH0.
      ['r0/home', 'ha/eth0', `IPv4(${CARE_OF}>${HA_ADDRESS}) / IPv4(${HOME_ADDRESS}>${CH0_ADDRESS}) / UDP(7000>7000)`],
      ['ha/eth0', 'ch0/eth0', `IPv4(${HOME_ADDRESS}>${CH0_ADDRESS}) / UDP(7000>7000)`],
    ]);
    expect(w.framesSince('internet', sentAt).map((f) => [f.from, f.to, describeStack(f.packet)])).toEqual([
      ['r0/wan', 'r1/wan', `IPv4(${HA_ADDRESS}>${CARE_OF}) / IPv4(${CH0_ADDRESS}>${HOME_ADDRESS}) / UDP(7000>7000)`],
      ['r1/wan', 'r0/wan', `IPv4(${CARE_OF}>${HA_ADDRESS}) / IPv4(${HOME_ADDRESS}>${CH0_ADDRESS}) / UDP(7000>7000)`],
    ]);
    expect(w.framesSince('site1', sentAt).map((f) => [f.from, f.to, describeStack(f.packet)])).toEqual([
      ['r1/site', 'mn/eth0', `IPv4(${HA_ADDRESS}>${CARE_OF}) / IPv4(${CH0_ADDRESS}>${HOME_ADDRESS}) / UDP(7000>7000)`],
      ['mn/eth0', 'r1/site', `IPv4(${CARE_OF}>${HA_ADDRESS}) / IPv4(${HOME_ADDRESS}>${CH0_ADDRESS}) / UDP(7000>7000)`],
    ]);
    // The HA took one hop off the inner TTL (it forwarded the datagram); the routers only touched the outer header.
    const delivered = w.framesSince('site1', sentAt)[0].packet;
    expect(delivered[8]).toBe(64 - 2);
    expect(delivered[20 + 8]).toBe(64 - 1);

    // Home again: deregistration, then plain delivery with no tunnel anywhere.
    w.comeHome();
    w.net.runFor(1000);
    expect(w.client.state).toBe('home');
    expect(w.ha.bindings()).toEqual([]);
    const backAt = w.net.clock.now();
    w.ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, 'back'));
    w.net.runFor(1000);
    expect(w.atMn.at(-1)).toBe('back');
    expect(w.atCh0.at(-1)).toBe('re:back');
    expect(w.framesSince('home', backAt).map((f) => [f.from, f.to, describeStack(f.packet)])).toEqual([
      ['ch0/eth0', 'mn/eth0', `IPv4(${CH0_ADDRESS}>${HOME_ADDRESS}) / UDP(7000>7000)`],
      ['mn/eth0', 'ch0/eth0', `IPv4(${HOME_ADDRESS}>${CH0_ADDRESS}) / UDP(7000>7000)`],
    ]);
    expect(w.framesSince('internet', backAt)).toEqual([]);
    expect(w.tunnel.counters()).toEqual({
      bad_tunnel: 0,
      ttl_expired: 0,
      untrusted_tunnel: 0,
      unauthenticated_tunnel: 0,
    });
  });

  it('keeps a steady flow going through loss on the Internet link: registration retransmits, traffic resumes', () => {
    const w = mobileWorld();
    w.net.link('internet').setLoss(0.3, 3);
    w.leave();
    // CH0 sends one datagram every 100 ms for 60 s.
    let sequence = 0;
    const tick = () => {
      w.ch0.send(appPacket(CH0_ADDRESS, HOME_ADDRESS, `d${sequence++}`));
      if (sequence < 600) w.net.clock.setTimer(100, tick);
    };
    tick();
    w.net.runFor(61_000);
    expect(w.client.state).toBe('registered');
    // With this seed, lost requests or replies made the client retransmit.
    expect(w.client.counters().retransmissions).toBeGreaterThan(0);
    const received = w.atMn.filter((t) => t.startsWith('d')).length;
    // Roughly 70 % of what flows after registration arrives; none before the binding exists.
    expect(received).toBeGreaterThan(350);
    expect(received).toBeLessThan(500);
    expect(w.ha.counters().tunnelled).toBeGreaterThan(received);
  });

  it('drops a tunnelled packet at the MN unless it comes from its HA for its home address', () => {
    const w = mobileWorld();
    w.leave();
    w.net.runFor(1000);
    // A forged tunnel from CH0 to the care-of address.
    const inner = appPacket(CH0_ADDRESS, HOME_ADDRESS, 'forged');
    const outer = new Uint8Array(20 + inner.length);
    outer.set(inner, 20);
    const ip = parseIpv4(inner, 0);
    if (!ip.ok) throw new Error(ip.reason);
    writeIpipHeader(outer, 0, ip.header, ipToU32(CH0_ADDRESS), ipToU32(CARE_OF));
    w.ch0.send(outer);
    w.net.runFor(1000);
    expect(w.atMn).not.toContain('forged');
    expect(w.tunnel.counters().untrusted_tunnel).toBe(1);
  });
});
