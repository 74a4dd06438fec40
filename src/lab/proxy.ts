// A UDP proxy for §3.5.1: the SMN talks to it through its VPN with the home SGW; the proxy talks
// to the correspondent from its own address, and its replies reach the SMN by Mobile IP (Figure 5).
// Request payload: destination IPv4 (4 bytes), destination port (2), data. Replies carry the
// correspondent's address and port the same way.
import type { Host, Network } from '../net/types.js';
import { ipToU32, readIp, writeIp } from '../wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../wire/udp.js';
import { endAhEsp, ipip, SGW, smnId, udp } from './formats.js';
import { F6 } from './scenarios/figure6-cases.js';
import { ECHO_PORT } from './traffic.js';
import type { World } from './world.js';

export const PROXY_PORT = 8080;
/** The proxy's own port toward correspondents; one client at a time is enough for the lab. */
export const PROXY_OUT_PORT = 50000;
const HEADER_BYTES = 6;

export function proxyRequest(dst: number, port: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + data.length);
  writeIp(out, 0, dst);
  out[4] = port >>> 8;
  out[5] = port & 0xff;
  out.set(data, HEADER_BYTES);
  return out;
}

export function runProxy(host: Host, address: number): () => void {
  let client: { address: number; port: number } | undefined;
  host.listenUdp?.(PROXY_PORT);
  host.listenUdp?.(PROXY_OUT_PORT);
  return host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok || udp.udp.dst !== address) return;
    const u = udp.udp;
    if (u.dstPort === PROXY_PORT && u.payload.length >= HEADER_BYTES) {
      client = { address: u.src, port: u.srcPort };
      const dst = readIp(u.payload, 0);
      const port = (u.payload[4] << 8) | u.payload[5];
      host.send(
        buildUdpDatagram(
          { src: address, dst, srcPort: PROXY_OUT_PORT, dstPort: port },
          u.payload.subarray(HEADER_BYTES),
        ),
      );
    } else if (u.dstPort === PROXY_OUT_PORT && client) {
      host.send(
        buildUdpDatagram(
          { src: address, dst: client.address, srcPort: PROXY_PORT, dstPort: client.port },
          proxyRequest(u.src, u.srcPort, u.payload),
        ),
      );
    }
  });
}

// §3.5.1 on Figure 6: the proxy sits in the SMN's home network, behind SGW0.
export const HOME_PROXY = '10.0.0.20';
const SMN_PORT = 40000;

/**
 * The SMN, at its home address, asks the home proxy to send `text` to CH2's echo port; returns the replies' payloads as
 * they reach the SMN.
 */
export function sendViaHomeProxy<N extends Network>(world: World<N>, text: string): Uint8Array[] {
  const replies: Uint8Array[] = [];
  world.smnHost.onDeliver((p) => {
    const u = parseUdpDatagram(p);
    if (u.ok && u.udp.srcPort === PROXY_PORT) replies.push(u.udp.payload.slice());
  });
  const request = proxyRequest(ipToU32(F6.ch2), ECHO_PORT, new TextEncoder().encode(text));
  world.smn.send(
    buildUdpDatagram(
      { src: ipToU32(F6.home), dst: ipToU32(HOME_PROXY), srcPort: SMN_PORT, dstPort: PROXY_PORT },
      request,
    ),
  );
  return replies;
}

/** What each link carries for that exchange with the SMN outside (Figure 5's steps in brackets). */
export function homeProxyStacks(): Record<string, string[]> {
  const S = smnId(F6.home);
  const toProxy = udp(F6.home, HOME_PROXY, SMN_PORT, PROXY_PORT);
  const out = udp(HOME_PROXY, F6.ch2, PROXY_OUT_PORT, ECHO_PORT);
  const back = udp(F6.ch2, HOME_PROXY, ECHO_PORT, PROXY_OUT_PORT);
  const toSmn = udp(HOME_PROXY, F6.home, PROXY_PORT, SMN_PORT);
  return {
    internet: [
      `smn > sgw0: ${endAhEsp(F6.out, F6.sgw0, S, SGW, toProxy)}`, // (1) VPN SMN/proxy's SGW
      `sgw0 > sgw2: ${endAhEsp(F6.sgw0, F6.sgw2, SGW, SGW, out)}`, // (2)
      `sgw2 > sgw0: ${endAhEsp(F6.sgw2, F6.sgw0, SGW, SGW, back)}`, // (5)
      `sgw0 > smn: ${endAhEsp(F6.sgw0, F6.out, SGW, S, ipip(F6.ha, F6.out, toSmn))}`, // (8)
    ],
    'sgw0-net': [
      `sgw0 > proxy: ${toProxy}`,
      `proxy > sgw0: ${out}`,
      `sgw0 > proxy: ${back}`,
      `proxy > ha: ${toSmn}`,
      `ha > sgw0: ${ipip(F6.ha, F6.out, toSmn)}`,
    ],
    'sgw2-net': [`sgw2 > ch2: ${out}`, `ch2 > sgw2: ${back}`], // (3), (4)
  };
}
