// The packets the tshark tests decode, built by a real engine: an SPI-mode ESP tunnel packet, a SKIP-mode
// End-End packet (IPv4/SKIP/AH/ESP) and a next-hop-wrapped one (IPv4/SKIP/AH/IPv4/SKIP/AH/ESP, draft §4.5.3 <1>).
import { Op, Verdict, type EngineImpl, type SaDesc } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { ADDR, bytes, endSaPair, engineWith, nexthopSaPair, runOne } from '../engine/fixtures.js';

export interface CapturePacket {
  name: 'spi' | 'skip' | 'nexthop';
  packet: Uint8Array;
}

export interface Captures {
  packets: CapturePacket[];
  /** Every SA used (both directions), as the key log receives them. */
  sas: SaDesc[];
  /** The datagram inside the ESP of each packet, in order. */
  inner: InnerDatagram[];
}

export interface InnerDatagram {
  src: string;
  dst: string;
  bytes: Uint8Array;
}

/** UDP port the inner datagrams go to: any port: the test reads the stack only up to the inner UDP header. */
export const INNER_UDP_PORT = 47000;

/** An IPv4/UDP datagram of `size` bytes; UDP checksum 0 (none, RFC 768). */
function innerDatagram(src: string, dst: string, size: number): InnerDatagram {
  const udp = bytes(size - 20, size);
  udp.set([0xb7, 0x98, INNER_UDP_PORT >> 8, INNER_UDP_PORT & 0xff, (size - 20) >> 8, (size - 20) & 0xff, 0, 0], 0);
  return {
    src,
    dst,
    bytes: buildIpv4(
      { src: ipToU32(src), dst: ipToU32(dst), protocol: IpProto.UDP, ttl: 63, identification: size },
      udp,
    ),
  };
}

/** SKIP counter n the fixtures put in every header: 1996-12-17T00:00Z (wire-formats §4.4). */
export const FIXTURE_N = 0x4320;

/** SPI-mode ESP tunnel SGW1 → SGW0 (AES-128-GCM). */
export const spiPair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 11, src: ADDR.sgw1, dst: ADDR.sgw0 });
/** SKIP End-End SGW0 → SMN care-of, destination identified by the SMN's home address (AES-128-GCM + AH GMAC). */
export const skipPair = endSaPair({
  suite: 'aes128gcm',
  ah: 'gmac-aes128',
  mode: 'skip',
  id: 12,
  src: ADDR.sgw0,
  dst: ADDR.smnCoa,
  mkid: { dst: ADDR.smnHome },
});
/** SKIP End-End SMN → SGW0 (AES-256-GCM + AH HMAC-SHA-256-128), source identified by the home address. */
export const endPair = endSaPair({
  suite: 'aes256gcm',
  ah: 'hmac-sha256-128',
  mode: 'skip',
  id: 13,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});
/** Next-hop layer SMN → SGW1 around it (AH GMAC), NSID 0 on both sides. */
export const nexthopPair = nexthopSaPair({
  alg: 'gmac-aes128',
  mode: 'skip',
  id: 14,
  src: ADDR.smnCoa,
  dst: ADDR.sgw1,
});

function expectForward(r: { verdict: number; reason: number }, what: string): void {
  if (r.verdict !== Verdict.FORWARD)
    throw new Error(`${what}: engine verdict ${r.verdict} reason ${r.reason}, expected FORWARD`);
}

export function buildCaptures(impl: EngineImpl): Captures {
  const sas = [spiPair, skipPair, endPair, nexthopPair].flatMap((p) => [p.out, p.in]);
  const engine = engineWith(impl, [spiPair.out, skipPair.out, endPair.out, nexthopPair.out]);
  try {
    const inner = [
      innerDatagram(ADDR.smnHome, ADDR.ch0, 120),
      innerDatagram(ADDR.ch0, ADDR.smnHome, 100),
      innerDatagram(ADDR.smnHome, ADDR.ha, 80),
    ];
    const spi = runOne(engine, Op.ENCAP, inner[0].bytes, spiPair.out.id);
    expectForward(spi, 'SPI-mode ENCAP');
    const skip = runOne(engine, Op.ENCAP, inner[1].bytes, skipPair.out.id);
    expectForward(skip, 'SKIP-mode ENCAP');
    const end = runOne(engine, Op.ENCAP, inner[2].bytes, endPair.out.id);
    expectForward(end, 'SKIP-mode ENCAP under the next-hop layer');
    const wrapped = runOne(engine, Op.WRAP, end.packet, nexthopPair.out.id);
    expectForward(wrapped, 'next-hop WRAP');
    return {
      packets: [
        { name: 'spi', packet: spi.packet },
        { name: 'skip', packet: skip.packet },
        { name: 'nexthop', packet: wrapped.packet },
      ],
      sas,
      inner,
    };
  } finally {
    engine.close();
  }
}
