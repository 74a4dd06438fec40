// echoReply: what a daemon's host answers for the kernel that never sees its traffic.
import { describe, expect, it } from 'vitest';
import { echoReply } from '../../src/net/echo.js';
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
