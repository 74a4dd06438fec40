// echoReply: what a daemon's host answers for the kernel that never sees its traffic.
import { describe, expect, it } from 'vitest';
import { echoReply, isFragmentationNeeded } from '../../src/net/echo.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, internetChecksum, IpProto, IPV4_FLAG_MF, parseIpv4 } from '../../src/wire/ipv4.js';

function echoRequest(type = 8, corrupt = false): Uint8Array {
  const icmp = Uint8Array.from([type, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, ...new TextEncoder().encode('ping data')]);
  const c = internetChecksum(icmp, 0, icmp.length);
  icmp[2] = c >>> 8;
  icmp[3] = (c & 0xff) ^ (corrupt ? 1 : 0);
  return buildIpv4({ protocol: IpProto.ICMP, src: ipToU32('10.10.0.10'), dst: ipToU32('10.10.0.1'), tos: 0x10 }, icmp);
}

describe('echoReply', () => {
  it('answers an echo request: addresses swapped, type 0, same identifier, sequence and data, valid checksums', () => {
    const reply = echoReply(echoRequest())!;
    const ip = parseIpv4(reply, 0);
    expect(ip.ok && [ip.header.src, ip.header.dst, ip.header.protocol, ip.header.tos]).toEqual([
      ipToU32('10.10.0.1'),
      ipToU32('10.10.0.10'),
      IpProto.ICMP,
      0x10,
    ]);
    expect([...reply.subarray(20, 21)]).toEqual([0]);
    expect([...reply.subarray(24)]).toEqual([...echoRequest().subarray(24)]);
    expect(internetChecksum(reply, 20, reply.length)).toBe(0);
  });

  it('answers nothing else: a reply, a bad checksum, a fragment, a truncated header, another protocol', () => {
    expect(echoReply(echoRequest(0))).toBeUndefined();
    expect(echoReply(echoRequest(8, true))).toBeUndefined();
    const fragment = echoRequest();
    fragment[6] = IPV4_FLAG_MF >>> 8;
    fragment[10] = fragment[11] = 0;
    const c = internetChecksum(fragment, 0, 20);
    fragment[10] = c >>> 8;
    fragment[11] = c & 0xff;
    expect(echoReply(fragment)).toBeUndefined();
    expect(
      echoReply(buildIpv4({ protocol: IpProto.ICMP, src: 1, dst: 2 }, Uint8Array.from([8, 0, 0]))),
    ).toBeUndefined();
    expect(echoReply(buildIpv4({ protocol: IpProto.UDP, src: 1, dst: 2 }, echoRequest().subarray(20)))).toBeUndefined();
  });
});

describe('isFragmentationNeeded', () => {
  const ME = ipToU32('10.0.0.3');
  const ROUTER = ipToU32('10.0.0.1');
  /** A SKIP packet from ME to 198.18.0.1, as a router quotes it: its header and 8 bytes. */
  const quoted = (src = ME) =>
    buildIpv4({ protocol: IpProto.SKIP, src, dst: ipToU32('198.18.0.1') }, new Uint8Array(8).fill(1));
  function message(type: number, code: number, quote: Uint8Array, corrupt = false): Uint8Array {
    const icmp = new Uint8Array(8 + quote.length);
    icmp.set([type, code, 0, 0, 0, 0, 0x05, 0x00]); // next-hop MTU 1280
    icmp.set(quote, 8);
    const c = internetChecksum(icmp, 0, icmp.length);
    icmp[2] = c >>> 8;
    icmp[3] = (c & 0xff) ^ (corrupt ? 1 : 0);
    return buildIpv4({ protocol: IpProto.ICMP, src: ROUTER, dst: ME }, icmp);
  }

  it('takes a well-formed ICMP 3/4 quoting a packet this host sent', () => {
    expect(isFragmentationNeeded(message(3, 4, quoted()))).toBe(true);
  });

  it('refuses another type or code, a bad checksum, a short quote, a quote of a packet another host sent', () => {
    expect(isFragmentationNeeded(message(3, 1, quoted()))).toBe(false);
    expect(isFragmentationNeeded(message(11, 0, quoted()))).toBe(false);
    expect(isFragmentationNeeded(message(3, 4, quoted(), true))).toBe(false);
    expect(isFragmentationNeeded(message(3, 4, quoted().subarray(0, 24)))).toBe(false);
    expect(isFragmentationNeeded(message(3, 4, quoted(ipToU32('10.0.0.9'))))).toBe(false);
    expect(isFragmentationNeeded(echoRequest())).toBe(false);
  });
});
