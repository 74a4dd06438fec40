// Issue 10, hole 5: the SMN's record of recent sends, which a failure message must quote. Bounded in packets per
// destination, destinations and time; a router's TTL and checksum changes do not matter; a shortened quote does.
import { describe, expect, it } from 'vitest';
import { SENT_DESTINATIONS, SENT_PER_DESTINATION, SENT_QUOTABLE_MS, SentLog } from '../../src/roles/smn/sent.js';
import { buildSecurityFailure, Icmp40Code, parseSecurityFailure } from '../../src/wire/icmp40.js';
import { buildUdpDatagram } from '../../src/wire/udp.js';

const datagram = (dst: number, seq: number) => {
  const payload = new Uint8Array(16);
  new DataView(payload.buffer).setUint32(0, seq);
  return buildUdpDatagram({ src: 0x0a000064, dst, srcPort: 40000 + seq, dstPort: 7 }, payload);
};
/** The quote an SGW's failure message about `packet` carries. */
const quoteOf = (packet: Uint8Array) => {
  const m = parseSecurityFailure(buildSecurityFailure(Icmp40Code.needAuthorization, packet), 0);
  if (!m.ok) throw new Error(m.reason);
  return m.message.original;
};

describe("hole 5: the SMN's record of recent sends", () => {
  it('hole 5: a quote matches a recorded send after the kernel filled in its identification and a router changed TTL and checksum, not after any other change', () => {
    const log = new SentLog(() => 0);
    const sent = datagram(0x0a00000a, 1);
    log.record(sent);
    const routed = quoteOf(sent).slice();
    routed[4] = 0x12;
    routed[5] = 0x34;
    routed[8] -= 3;
    routed[10] ^= 0xff;
    expect(log.quotes(routed)).toBe(true);
    const altered = quoteOf(sent).slice();
    altered[21] ^= 1;
    expect(log.quotes(altered)).toBe(false);
    // A sender that quotes more than needed is fine; one that quotes less proves too little.
    const longer = new Uint8Array(sent.length + 8);
    longer.set(sent);
    expect(log.quotes(longer)).toBe(true);
    expect(log.quotes(quoteOf(sent).subarray(0, 24))).toBe(false);
    expect(log.quotes(quoteOf(sent).subarray(0, 12))).toBe(false);
  });

  it('recording leaves the packet as it was, also a Buffer (whose slice() is a view: the lab hands the roles Buffers)', () => {
    const log = new SentLog(() => 0);
    const packet = Buffer.from(datagram(0x0a00000a, 1));
    const before = Buffer.from(packet);
    log.record(packet);
    expect(packet.equals(before)).toBe(true);
  });

  it('hole 5: the record is bounded per destination, in destinations, and in time', () => {
    let now = 0;
    const log = new SentLog(() => now);
    const first = datagram(1, 0);
    log.record(first);
    for (let i = 1; i <= SENT_PER_DESTINATION; i++) log.record(datagram(1, i));
    expect(log.quotes(quoteOf(first))).toBe(false);
    expect(log.quotes(quoteOf(datagram(1, SENT_PER_DESTINATION)))).toBe(true);
    for (let d = 2; d <= SENT_DESTINATIONS + 1; d++) log.record(datagram(d, 0));
    expect(log.quotes(quoteOf(datagram(1, SENT_PER_DESTINATION)))).toBe(false);
    expect(log.quotes(quoteOf(datagram(SENT_DESTINATIONS + 1, 0)))).toBe(true);
    now += SENT_QUOTABLE_MS + 1;
    expect(log.quotes(quoteOf(datagram(SENT_DESTINATIONS + 1, 0)))).toBe(false);
  });
});
