// A small Figure-6-like network for the Mobile IP tests:
//   home 10.0.0.0/16:    r0 .1, ha .2, ch0 .10, mn .100 (its home address)
//   internet 198.18.0.0/16: r0 198.18.0.1, r1 198.18.1.1
//   site1 10.1.0.0/16:   r1 .1, the mn's care-of address .100 once it moved there
import { MemoryNetwork, type MemoryHost } from '../../src/net/index.js';
import { HomeAgent, type HomeAgentOptions } from '../../src/roles/ha/home-agent.js';
import { RegistrationClient, type RegistrationClientOptions } from '../../src/roles/smn/registration-client.js';
import { UdpRegistrationTransport } from '../../src/roles/smn/registration-transport.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';

export const HOME_ADDRESS = '10.0.0.100';
export const HA_ADDRESS = '10.0.0.2';
export const CH0_ADDRESS = '10.0.0.10';
export const CARE_OF = '10.1.0.100';
export const MN_AUTH = { spi: 0x100, key: new Uint8Array(Buffer.from('6d697073656320686f6d65206b657921', 'hex')) };

/**
 * `startMs`: the virtual clock's start (a restarted HA comes up later than the first one). `setUpHaHost` runs on the
 * HA's host before the HA starts (e.g. to give it a data path).
 */
export function buildNetwork(
  haOptions: Partial<HomeAgentOptions> = {},
  startMs = 0,
  setUpHaHost?: (host: MemoryHost) => void,
) {
  const net = new MemoryNetwork({ startMs });
  net.addLink('home');
  net.addLink('internet', { latencyMs: 10 });
  net.addLink('site1');
  const r0 = net.addHost('r0', { forwarding: true });
  r0.addInterface('home', 'home', '10.0.0.1/16');
  r0.addInterface('wan', 'internet', '198.18.0.1/16');
  r0.addRoute('10.1.0.0/16', { via: '198.18.1.1' });
  const r1 = net.addHost('r1', { forwarding: true });
  r1.addInterface('wan', 'internet', '198.18.1.1/16');
  r1.addInterface('site', 'site1', '10.1.0.1/16');
  r1.addRoute('10.0.0.0/16', { via: '198.18.0.1' });
  const haHost = net.addHost('ha');
  haHost.addInterface('eth0', 'home', `${HA_ADDRESS}/16`);
  haHost.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
  setUpHaHost?.(haHost);
  const ch0 = net.addHost('ch0');
  ch0.addInterface('eth0', 'home', `${CH0_ADDRESS}/16`);
  ch0.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
  const mn = net.addHost('mn');
  mn.addInterface('eth0', 'home', `${HOME_ADDRESS}/16`);
  mn.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
  const ha = new HomeAgent({
    host: haHost,
    clock: net.clock,
    address: HA_ADDRESS,
    homeInterface: 'eth0',
    mobileNodes: [{ homeAddress: HOME_ADDRESS, auth: MN_AUTH }],
    ...haOptions,
  });
  return { net, r0, r1, haHost, ch0, mn, ha };
}

/** The MN's registration client: UDP from the MN host to the HA, the network's clock, MN_AUTH; `options` on top. */
export function mnRegistrationClient(
  w: Pick<ReturnType<typeof buildNetwork>, 'net' | 'mn'>,
  options: Partial<RegistrationClientOptions> = {},
): RegistrationClient {
  return new RegistrationClient({
    clock: w.net.clock,
    transport: new UdpRegistrationTransport(w.mn, HA_ADDRESS),
    homeAddress: HOME_ADDRESS,
    homeAgent: HA_ADDRESS,
    auth: MN_AUTH,
    ...options,
  });
}

/** The MN leaves home for site 1. */
export function moveToSite1(mn: ReturnType<typeof buildNetwork>['mn']): void {
  mn.moveInterface('eth0', 'site1', `${CARE_OF}/16`);
  mn.addRoute('0.0.0.0/0', { via: '10.1.0.1' });
}

export function moveHome(mn: ReturnType<typeof buildNetwork>['mn']): void {
  mn.moveInterface('eth0', 'home', `${HOME_ADDRESS}/16`);
  mn.addRoute('0.0.0.0/0', { via: '10.0.0.1' });
}

const APP_PORT = 7000;

/** An application datagram (UDP port 7000) carrying `text`. */
export function appPacket(src: string, dst: string, text: string, ttl = 64): Uint8Array {
  return buildUdpDatagram(
    { src: ipToU32(src), dst: ipToU32(dst), srcPort: APP_PORT, dstPort: APP_PORT, ttl },
    new TextEncoder().encode(text),
  );
}

/** The text of an application datagram, or undefined for anything else. */
export function appText(packet: Uint8Array): string | undefined {
  const udp = parseUdpDatagram(packet);
  return udp.ok && udp.udp.dstPort === APP_PORT ? new TextDecoder().decode(udp.udp.payload) : undefined;
}
