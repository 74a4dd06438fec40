// Registrations as UDP datagrams to port 434 (RFC 5944 §3) sent and received by a Network host: an SMN's output
// hooks then carry them inside whatever SKIP/AH/ESP stack its position needs (draft §4.4).
import type { Host } from '../../net/types.js';
import { ipToU32 } from '../../wire/addr.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';
import { MIP_PORT } from '../../wire/mobileip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import type { RegistrationTransport } from './registration-client.js';

/** Registrations as plain UDP datagrams (port 434) sent and received by a Network host. */
export class UdpRegistrationTransport implements RegistrationTransport {
  private readonly homeAgent: number;

  constructor(
    private readonly host: Host,
    homeAgent: string,
    /** Local UDP port requests leave from; replies come back to it. */
    private readonly localPort = MIP_PORT,
  ) {
    this.homeAgent = ipToU32(homeAgent);
  }

  send(request: Uint8Array, source: string): void {
    this.host.send(
      buildUdpDatagram(
        { src: ipToU32(source), dst: this.homeAgent, srcPort: this.localPort, dstPort: MIP_PORT },
        request,
      ),
    );
  }

  onReply(handler: (reply: Uint8Array) => void): () => void {
    return this.host.onDeliver((packet) => {
      const ip = parseIpv4(packet, 0);
      if (!ip.ok || ip.header.protocol !== IpProto.UDP) return;
      const udp = parseUdpDatagram(packet);
      if (
        udp.ok &&
        udp.udp.src === this.homeAgent &&
        udp.udp.srcPort === MIP_PORT &&
        udp.udp.dstPort === this.localPort
      )
        handler(udp.udp.payload);
    });
  }
}
