// What a lab role host hands its kernel's sockets (src/net/linux/network.ts isApplicationTraffic): the applications'
// traffic, and the ICMP errors about it — "fragmentation needed" is how the host's TCP learns a path's MTU.
import { describe, expect, it } from 'vitest';
import { APP_PORT, isApplicationTraffic } from '../../src/net/linux/network.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';

const HOST = ipToU32('10.0.0.100');
const PEER = ipToU32('10.1.0.10');
const SGW = ipToU32('10.0.0.1');

/** A datagram from the host with 8 bytes of transport header (ports, or ICMP type and code). */
function sent(protocol: number, first8: number[]): Uint8Array {
  return buildIpv4({ protocol, src: HOST, dst: PEER }, Uint8Array.from(first8));
}

/** ICMP `type`/`code` from the SGW to the host quoting `datagram`'s header and first 8 bytes. */
function icmpError(type: number, code: number, datagram: Uint8Array): Uint8Array {
  const icmp = Uint8Array.from([type, code, 0, 0, 0, 0, 0x05, 0x14, ...datagram.subarray(0, 28)]);
  return buildIpv4({ protocol: IpProto.ICMP, src: SGW, dst: HOST }, icmp);
}

const port = (p: number) => [p >> 8, p & 0xff];
const tcp = sent(IpProto.TCP, [...port(40000), ...port(APP_PORT), 0, 0, 0, 1]);
const udpApp = sent(IpProto.UDP, [...port(40000), ...port(APP_PORT), 0, 8, 0, 0]);
const udpOther = sent(IpProto.UDP, [...port(434), ...port(434), 0, 8, 0, 0]);
const skip = sent(57, [1, 0, 0, 0, 0, 0, 0, 0]);

describe('isApplicationTraffic', () => {
  it('takes the applications’ own traffic, not the role’s', () => {
    expect([tcp, udpApp, udpOther, skip].map((p) => isApplicationTraffic(p))).toEqual([true, true, false, false]);
  });

  it('takes an unreachable or time exceeded about an application datagram (PMTU: 3/4 about a TCP segment)', () => {
    expect(isApplicationTraffic(icmpError(3, 4, tcp))).toBe(true);
    expect(isApplicationTraffic(icmpError(11, 0, udpApp))).toBe(true);
  });

  it('leaves the role the errors about its own datagrams, other ICMP types, and errors about errors', () => {
    expect(isApplicationTraffic(icmpError(3, 4, skip))).toBe(false);
    expect(isApplicationTraffic(icmpError(3, 3, udpOther))).toBe(false);
    expect(isApplicationTraffic(icmpError(5, 1, tcp))).toBe(false); // a redirect
    expect(isApplicationTraffic(icmpError(3, 4, icmpError(3, 4, tcp)))).toBe(false);
    expect(isApplicationTraffic(new Uint8Array(12))).toBe(false);
  });
});
