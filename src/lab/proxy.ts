// A UDP proxy for §3.5.1: the SMN talks to it through its VPN with the home SGW; the proxy talks
// to the correspondent from its own address, and its replies reach the SMN by Mobile IP (Figure 5).
// Request payload: destination IPv4 (4 bytes), destination port (2), data. Replies carry the
// correspondent's address and port the same way.
import type { Host } from '../net/types.js';
import { readIp, writeIp } from '../wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../wire/udp.js';

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
  return host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok || udp.udp.dst !== address) return;
    const u = udp.udp;
    if (u.dstPort === PROXY_PORT && u.payload.length >= HEADER_BYTES) {
      client = { address: u.src, port: u.srcPort };
      const dst = readIp(u.payload, 0);
      const port = (u.payload[4] << 8) | u.payload[5];
      host.send(buildUdpDatagram({ src: address, dst, srcPort: PROXY_OUT_PORT, dstPort: port }, u.payload.subarray(HEADER_BYTES)));
    } else if (u.dstPort === PROXY_OUT_PORT && client) {
      host.send(buildUdpDatagram({ src: address, dst: client.address, srcPort: PROXY_PORT, dstPort: client.port }, proxyRequest(u.src, u.srcPort, u.payload)));
    }
  });
}
