// Lab traffic: UDP echo on the correspondent hosts, numbered probes, and a continuous flow that
// counts what comes back (for the handover figures).
import type { Clock, Host, Timer } from '../net/types.js';
import { ipToU32 } from '../wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../wire/udp.js';

export const ECHO_PORT = 7;
export const PROBE_PORT = 40000;

/** Answers every UDP datagram to port 7 with the same payload, addresses and ports swapped. */
export function echoServer(host: Host): () => void {
  host.listenUdp?.(ECHO_PORT);
  return host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok || udp.udp.dstPort !== ECHO_PORT) return;
    const u = udp.udp;
    host.send(buildUdpDatagram({ src: u.dst, dst: u.src, srcPort: ECHO_PORT, dstPort: u.srcPort }, u.payload));
  });
}

/** A UDP probe carrying a sequence number (and padding up to `size` bytes of payload). */
export function probe(src: string, dst: string, seq: number, size = 32, srcPort = PROBE_PORT): Uint8Array {
  const payload = new Uint8Array(Math.max(4, size));
  new DataView(payload.buffer).setUint32(0, seq);
  return buildUdpDatagram({ src: ipToU32(src), dst: ipToU32(dst), srcPort, dstPort: ECHO_PORT }, payload);
}

/** Sequence numbers of the echo replies `host` receives on `port`. */
export function collectEchoes(host: Host, port = PROBE_PORT): { seqs: number[]; stop: () => void } {
  const seqs: number[] = [];
  const stop = host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (udp.ok && udp.udp.srcPort === ECHO_PORT && udp.udp.dstPort === port && udp.udp.payload.length >= 4) {
      seqs.push(new DataView(udp.udp.payload.buffer, udp.udp.payload.byteOffset).getUint32(0));
    }
  });
  return { seqs, stop };
}

/** A flow of probes every `intervalMs`, each sent from the source `source()` names at that moment. */
export class Flow {
  private seq = 0;
  private timer?: Timer;
  readonly sentAt = new Map<number, number>();
  readonly echoes: { seq: number; at: number }[] = [];
  private readonly stopCollecting: () => void;
  private readonly port: number;

  constructor(
    private readonly clock: Clock,
    host: Host,
    private readonly send: (packet: Uint8Array) => void,
    private readonly source: () => string,
    private readonly dst: string,
    private readonly intervalMs = 20,
    port = PROBE_PORT + 1,
  ) {
    this.port = port;
    this.stopCollecting = host.onDeliver((packet) => {
      const udp = parseUdpDatagram(packet);
      if (udp.ok && udp.udp.srcPort === ECHO_PORT && udp.udp.dstPort === this.port && udp.udp.payload.length >= 4) {
        this.echoes.push({
          seq: new DataView(udp.udp.payload.buffer, udp.udp.payload.byteOffset).getUint32(0),
          at: this.clock.now(),
        });
      }
    });
  }

  start(): void {
    const tick = () => {
      const seq = this.seq++;
      this.sentAt.set(seq, this.clock.now());
      this.send(probe(this.source(), this.dst, seq, 32, this.port));
      this.timer = this.clock.setTimer(this.intervalMs, tick);
    };
    tick();
  }

  stop(): void {
    this.timer?.cancel();
    this.stopCollecting();
  }

  get sent(): number {
    return this.seq;
  }
}
