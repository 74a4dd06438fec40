// Issue 10 hole 1, the reassembler on its own (src/roles/common/reassembly.ts): any order gives back
// the datagram byte for byte; overlaps, a second end, pieces past the end, oversize, empty or unaligned
// pieces drop the datagram; memory is bounded overall and per source; incomplete datagrams time out.
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/net/clock.js';
import { Tally } from '../../src/roles/common/counters.js';
import { Reassembler, readableHeader } from '../../src/roles/common/reassembly.js';
import { probe } from '../../src/lab/traffic.js';
import { fragmentIpv4 } from '../../src/wire/fragment.js';
import { buildIpv4, IPV4_FLAG_MF, IpProto, parseIpv4 } from '../../src/wire/ipv4.js';

function setup(limits = {}) {
  const clock = new VirtualClock(0);
  const tally = new Tally();
  const r = new Reassembler(clock, tally, limits);
  const push = (packet: Uint8Array) => {
    const ip = parseIpv4(packet, 0, packet.length, { allowFragments: true });
    if (!ip.ok) throw new Error(ip.reason);
    return r.push(packet, ip.header);
  };
  return { clock, tally, r, push };
}

function piece(offset: number, size: number, more: boolean, id = 1, src = 0x0a000001): Uint8Array {
  const flagsFragment = (more ? IPV4_FLAG_MF : 0) | (offset / 8);
  const payload = new Uint8Array(size).fill(offset & 0xff);
  return buildIpv4({ src, dst: 0x0a010001, identification: id, flagsFragment, protocol: IpProto.UDP }, payload);
}

describe('hole 1: the reassembler', () => {
  it('puts a datagram together from its fragments in any order, byte for byte, and returns the fragments as received', () => {
    const datagram = probe('10.0.0.10', '10.1.0.10', 5, 3000);
    const parts = fragmentIpv4(datagram, 576)!;
    expect(parts.length).toBe(6);
    const { push, tally, r } = setup();
    const order = [3, 0, 5, 1, 4, 2];
    const results = order.map((i) => push(parts[i]));
    expect(results.slice(0, -1).every((x) => x === undefined)).toBe(true);
    const whole = results.at(-1)!;
    expect(whole.datagram).toEqual(datagram);
    expect(whole.header.totalLength).toBe(datagram.length);
    expect(whole.fragments).toEqual(order.map((i) => parts[i]));
    expect(tally.snapshot()).toEqual({ frag_received: 6, frag_reassembled: 1 });
    expect(r.held()).toEqual({ bytes: 0, datagrams: 0 });
  });

  it('drops the whole datagram on overlap, a duplicate, a second different end, or a piece past the end', () => {
    const cases: [string, Uint8Array[]][] = [
      ['drop_frag_overlap', [piece(0, 800, true), piece(792, 16, true)]],
      ['drop_frag_overlap', [piece(8, 16, true), piece(8, 16, true)]],
      ['drop_frag_inconsistent', [piece(800, 100, false), piece(0, 808, false)]],
      ['drop_frag_inconsistent', [piece(800, 100, false), piece(1000, 8, true)]],
      ['drop_frag_inconsistent', [piece(1000, 8, true), piece(0, 100, false)]],
    ];
    for (const [reason, packets] of cases) {
      const { push, tally, r } = setup();
      for (const p of packets) expect(push(p)).toBeUndefined();
      expect(tally.get(reason), reason).toBe(1);
      expect(r.held()).toEqual({ bytes: 0, datagrams: 0 });
    }
  });

  it('refuses empty or unaligned pieces and a datagram that would exceed 65,535 bytes', () => {
    const { push, tally } = setup();
    push(piece(0, 0, true));
    push(piece(0, 12, true));
    push(piece(65528, 8, false, 2));
    expect(tally.snapshot()).toMatchObject({ drop_frag_malformed: 2, drop_frag_too_big: 1 });
  });

  it('bounds memory: the oldest give way to new datagrams, one source gets its share only, too many pieces drop the datagram', () => {
    const { push, tally, r } = setup({ maxDatagrams: 8, maxBytes: 8 * 1000, perSourceShare: 0.5, maxFragments: 4 });
    for (let i = 0; i < 20; i++) push(piece(0, 800, true, i, 0x0b000000 + i));
    expect(r.held().datagrams).toBe(8);
    expect(tally.get('drop_frag_memory')).toBe(12);
    for (let i = 0; i < 6; i++) push(piece(0, 800, true, 100 + i));
    expect(tally.get('drop_frag_source_share')).toBe(2);
    for (let k = 0; k < 5; k++) push(piece(8 * k, 8, true, 200, 0x0c000001));
    expect(tally.get('drop_frag_too_many')).toBe(1);
    expect(r.held().bytes).toBeLessThanOrEqual(8 * 1000);
  });

  it('times out an incomplete datagram, counted, and keeps nothing of it', () => {
    const { push, tally, r, clock } = setup({ timeoutMs: 1000 });
    push(piece(0, 800, true));
    clock.runFor(500);
    push(piece(0, 800, true, 2));
    clock.runFor(600);
    expect(tally.get('drop_frag_timeout')).toBe(1);
    expect(r.held().datagrams).toBe(1);
    clock.runFor(1000);
    expect(tally.get('drop_frag_timeout')).toBe(2);
    expect(r.held()).toEqual({ bytes: 0, datagrams: 0 });
    // The end after the timeout starts afresh: no datagram from pieces of two.
    expect(push(piece(800, 8, false))).toBeUndefined();
  });

  it('a hook drops what has no readable IPv4 header, counted by reason', () => {
    const tally = new Tally();
    expect(readableHeader(new Uint8Array(10), tally)).toBeUndefined();
    const bad = piece(0, 8, true);
    bad[10] ^= 1;
    expect(readableHeader(bad, tally)).toBeUndefined();
    expect(tally.snapshot()).toEqual({ drop_ipv4_truncated: 1, drop_ipv4_bad_ip_checksum: 1 });
    expect(readableHeader(piece(0, 8, true), tally)?.flagsFragment).toBe(IPV4_FLAG_MF);
  });
});
