// The TUN offload helpers (native/io/gso.h) against an independent TS model: TCP super-packets split into
// segments (RFC 793/9293 sequence and flags, RFC 1071 checksums) and runs coalesced back, as the loop does.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/engine/addon.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IPV4_FLAG_DF, IpProto, buildIpv4, onesComplementSum, parseIpv4 } from '../../src/wire/ipv4.js';

const offload = loadAddon().binding!.offload as {
  splitTcp4(packet: Uint8Array, gsoSize: number): Uint8Array[] | null;
  coalesceTcp4(datagrams: Uint8Array[]): { runs: number[]; writes: Uint8Array[] };
  fragNeeded(quote: Uint8Array, mtu: number): Uint8Array | null;
};

const SRC = ipToU32('10.77.1.1');
const DST = ipToU32('10.77.2.1');
const ACK = 0x10,
  PSH = 0x08,
  FIN = 0x01,
  CWR = 0x80;
const TCP_HEADER = 32; // 20 + NOP NOP timestamps

interface Tcp {
  seq: number;
  ack?: number;
  flags: number;
  payload: Uint8Array;
  window?: number;
  proto?: number;
}

function tcpPacket(t: Tcp, id = 0x4321): Uint8Array {
  const seg = new Uint8Array(TCP_HEADER + t.payload.length);
  const v = new DataView(seg.buffer);
  v.setUint16(0, 40000);
  v.setUint16(2, 5001);
  v.setUint32(4, t.seq >>> 0);
  v.setUint32(8, t.ack ?? 0x12345678);
  seg[12] = (TCP_HEADER / 4) << 4;
  seg[13] = t.flags;
  v.setUint16(14, t.window ?? 502);
  seg.set([1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9], 20);
  seg.set(t.payload, TCP_HEADER);
  const packet = buildIpv4(
    {
      src: SRC,
      dst: DST,
      tos: 0,
      identification: id,
      flagsFragment: IPV4_FLAG_DF,
      ttl: 64,
      protocol: t.proto ?? IpProto.TCP,
    },
    seg,
  );
  new DataView(packet.buffer).setUint16(20 + 16, tcpChecksum(packet)); // a valid sender checksum
  return packet;
}

/** The TCP checksum of packet as it should be (field taken as zero). */
function tcpChecksum(packet: Uint8Array): number {
  const seg = Uint8Array.from(packet.subarray(20));
  seg[16] = seg[17] = 0;
  return ~onesComplementSum(seg, 0, seg.length, pseudoSum(seg.length)) & 0xffff;
}

function pseudoSum(l4Length: number): number {
  return (SRC >>> 16) + (SRC & 0xffff) + (DST >>> 16) + (DST & 0xffff) + IpProto.TCP + l4Length;
}

const u16 = (b: Uint8Array, at: number) => (b[at] << 8) | b[at + 1];
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);
const payload = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff);

describe('TUN offload: split and coalesce TCP/IPv4', () => {
  it('splits a super-packet into MSS segments: lengths, ids, sequence numbers, flags and both checksums', () => {
    const data = payload(5000);
    const seq0 = 0xfffff000; // the sequence space wraps inside the packet
    const segments = offload.splitTcp4(tcpPacket({ seq: seq0, flags: ACK | PSH | FIN | CWR, payload: data }), 1448)!;
    expect(segments.map((s) => s.length - 20 - TCP_HEADER)).toEqual([1448, 1448, 1448, 656]);
    segments.forEach((s, i) => {
      const ip = parseIpv4(s, 0, s.length);
      expect(ip.ok, `segment ${i} IPv4 header`).toBe(true);
      if (!ip.ok) return;
      expect(ip.header.totalLength).toBe(s.length);
      expect(ip.header.identification).toBe(0x4321 + i);
      expect(u32(s, 24)).toBe((seq0 + i * 1448) >>> 0);
      expect(s[33], `segment ${i} flags`).toBe(i === 0 ? ACK | CWR : i === 3 ? ACK | PSH | FIN : ACK);
      expect(u16(s, 36), `segment ${i} TCP checksum`).toBe(tcpChecksum(s));
    });
    expect(Buffer.concat(segments.map((s) => s.subarray(20 + TCP_HEADER)))).toEqual(Buffer.from(data));
  });

  it('an exact multiple of the MSS, a bare ACK, and what it cannot split', () => {
    expect(
      offload.splitTcp4(tcpPacket({ seq: 1, flags: ACK, payload: payload(2896) }), 1448)!.map((s) => s.length),
    ).toEqual([1500, 1500]);
    const bare = tcpPacket({ seq: 1, flags: ACK, payload: new Uint8Array(0) });
    expect(offload.splitTcp4(bare, 1448)).toEqual([Buffer.from(bare)]);
    expect(
      offload.splitTcp4(tcpPacket({ seq: 1, flags: ACK, payload: payload(100), proto: IpProto.UDP }), 1448),
    ).toBeNull();
    expect(offload.splitTcp4(new Uint8Array(30), 1448)).toBeNull();
    expect(offload.splitTcp4(tcpPacket({ seq: 1, flags: ACK, payload: payload(100) }), 0)).toBeNull();
  });

  it('coalesces a run into one virtio super-packet that splits back into the same segments', () => {
    const segments = offload.splitTcp4(tcpPacket({ seq: 77, flags: ACK | PSH, payload: payload(5000) }), 1448)!;
    const { runs, writes } = offload.coalesceTcp4(segments);
    expect(runs).toEqual([4]);
    const w = writes[0];
    const hdr = new DataView(w.buffer, w.byteOffset, 10);
    expect({
      flags: w[0],
      gsoType: w[1],
      hdrLen: hdr.getUint16(2, true),
      gsoSize: hdr.getUint16(4, true),
      csumStart: hdr.getUint16(6, true),
      csumOffset: hdr.getUint16(8, true),
    }).toEqual({ flags: 1, gsoType: 1, hdrLen: 20 + TCP_HEADER, gsoSize: 1448, csumStart: 20, csumOffset: 16 });
    const packet = w.subarray(10);
    const ip = parseIpv4(packet, 0, packet.length);
    expect(ip.ok && ip.header.totalLength).toBe(20 + TCP_HEADER + 5000);
    expect(packet[33]).toBe(ACK | PSH);
    expect(u16(packet, 36)).toBe(onesComplementSum(new Uint8Array(0), 0, 0, pseudoSum(TCP_HEADER + 5000))); // NEEDS_CSUM: pseudo-header sum
    expect(Buffer.from(packet.subarray(20 + TCP_HEADER))).toEqual(Buffer.from(payload(5000)));
    // The kernel's own checksum completion (the field already holds the pseudo sum) gives a valid packet.
    const completed = Uint8Array.from(packet);
    new DataView(completed.buffer).setUint16(36, ~onesComplementSum(completed, 20, completed.length) & 0xffff);
    expect(u16(completed, 36)).toBe(tcpChecksum(completed));
    expect(offload.splitTcp4(completed, 1448)!.map((s) => Buffer.from(s).toString('hex'))).toEqual(
      segments.map((s) => Buffer.from(s).toString('hex')),
    );
  });

  it('keeps apart what must not merge: a gap, another ack, a bigger segment, PSH mid-run, another protocol', () => {
    const seg = (seq: number, o: Partial<Tcp> = {}) =>
      tcpPacket({ seq, flags: ACK, payload: payload(o.payload?.length ?? 1000), ...o });
    const cases: [Uint8Array[], number[]][] = [
      [[seg(0), seg(1000), seg(2000)], [3]],
      [
        [seg(0), seg(1001)],
        [1, 1],
      ],
      [
        [seg(0), seg(1000, { ack: 5 })],
        [1, 1],
      ],
      [
        [seg(0), seg(1000, { payload: payload(1001) })],
        [1, 1],
      ],
      [
        [seg(0), seg(1000, { flags: ACK | PSH }), seg(2000)],
        [2, 1],
      ],
      [
        [seg(0, { flags: ACK | PSH }), seg(1000)],
        [1, 1],
      ],
      [
        [seg(0), seg(1000, { window: 9 })],
        [1, 1],
      ],
      [
        [seg(0), seg(1000, { payload: payload(500) }), seg(1500)],
        [2, 1],
      ],
      [
        [seg(0), seg(1000, { proto: IpProto.UDP }), seg(1000)],
        [1, 1, 1],
      ],
    ];
    for (const [datagrams, runs] of cases) {
      const out = offload.coalesceTcp4(datagrams);
      expect(out.runs).toEqual(runs);
      // A datagram written alone is written exactly as it is.
      out.runs.forEach(
        (n, i) =>
          n === 1 &&
          expect(out.writes[i].length).toBe(datagrams[out.runs.slice(0, i).reduce((a, b) => a + b, 0)].length),
      );
    }
  });
});

describe('ICMP 3/4 "fragmentation needed" (native/wire/icmp.h), as the loop answers a too-big packet', () => {
  const udp = (flags: number, payload = payload8(40)) =>
    buildIpv4(
      { src: SRC, dst: DST, tos: 0, identification: 7, flagsFragment: flags, ttl: 61, protocol: IpProto.UDP },
      payload,
    );
  const payload8 = (n: number) => Uint8Array.from({ length: n }, (_, i) => i + 1);
  const icmp = (type: number) =>
    buildIpv4(
      { src: SRC, dst: DST, tos: 0, identification: 7, flagsFragment: IPV4_FLAG_DF, ttl: 61, protocol: IpProto.ICMP },
      Uint8Array.of(type, 0, 0, 0, 0, 0, 0, 0, 9, 9),
    );

  it('answers the sender from the destination: type 3 code 4, the MTU, the header and 8 bytes quoted, checksums valid', () => {
    const datagram = udp(IPV4_FLAG_DF);
    const m = offload.fragNeeded(datagram.subarray(0, 68), 1234)!;
    expect(m.length).toBe(20 + 8 + 28);
    const ip = parseIpv4(m, 0, m.length);
    expect(ip.ok).toBe(true);
    if (!ip.ok) return;
    expect({ src: ip.header.src, dst: ip.header.dst, protocol: ip.header.protocol, ttl: ip.header.ttl }).toEqual({
      src: DST,
      dst: SRC,
      protocol: IpProto.ICMP,
      ttl: 64,
    });
    expect([m[20], m[21], u16(m, 26)]).toEqual([3, 4, 1234]);
    expect(~onesComplementSum(m, 20, m.length) & 0xffff).toBe(0);
    expect(Buffer.from(m.subarray(28))).toEqual(Buffer.from(datagram.subarray(0, 28)));
  });

  it('says nothing without DF, about an ICMP error, or about what it cannot read', () => {
    expect(offload.fragNeeded(udp(0), 1000)).toBeNull();
    for (const type of [3, 4, 5, 11, 12]) expect(offload.fragNeeded(icmp(type), 1000), `ICMP type ${type}`).toBeNull();
    expect(offload.fragNeeded(icmp(8), 1000)).not.toBeNull(); // an echo request is answered
    expect(offload.fragNeeded(icmp(8).subarray(0, 20), 1000)).toBeNull(); // ICMP whose type is not quoted
    expect(offload.fragNeeded(udp(IPV4_FLAG_DF).subarray(0, 19), 1000)).toBeNull();
    const v6 = Uint8Array.from(udp(IPV4_FLAG_DF));
    v6[0] = 0x65;
    expect(offload.fragNeeded(v6, 1000)).toBeNull();
  });
});
