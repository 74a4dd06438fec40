// Pre-fragmentation (native/wire/fragment.h): the I/O loop splits a datagram without DF whose sealed packet its link
// refused, then seals each piece. Checked against the TS fragmenter the roles use (src/wire/fragment.ts) on whole
// datagrams and on fragments, with and without options, and against RFC 791's rules directly.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/engine/addon.js';
import { fragmentIpv4 } from '../../src/wire/fragment.js';
import { IPV4_FLAG_DF, IPV4_FLAG_MF, parseIpv4, setIpv4Checksum } from '../../src/wire/ipv4.js';

const offload = loadAddon().binding!.offload as {
  fragmentIpv4(datagram: Uint8Array, mtu: number): Uint8Array[] | null;
};

/** A datagram of `payload` bytes with `options` (a multiple of 4 bytes) and the flags/offset word `flagsFragment`. */
function datagram(payload: number, options: number[] = [], flagsFragment = 0, seed = 1): Uint8Array {
  const header = 20 + options.length;
  const d = new Uint8Array(header + payload);
  d[0] = 0x40 | (header / 4);
  d[2] = d.length >> 8;
  d[3] = d.length & 0xff;
  d[4] = 0x12;
  d[5] = seed & 0xff;
  d[6] = flagsFragment >> 8;
  d[7] = flagsFragment & 0xff;
  d[8] = 63;
  d[9] = 17;
  d.set([10, 0, 0, 10, 10, 1, 0, 10], 12);
  d.set(options, 20);
  for (let i = header; i < d.length; i++) d[i] = (i * 7 + seed) & 0xff;
  setIpv4Checksum(d, 0, header);
  return d;
}

// Record route (0x07, not copied) and a copied experimental option (0x88), then NOP and end-of-options padding.
const OPTIONS = [0x07, 7, 4, 0, 0, 0, 0, 0x88, 4, 0xaa, 0xbb, 0x01, 0x00, 0x00, 0x00, 0x00];

describe('pre-fragmentation: native/wire/fragment.h splits as src/wire/fragment.ts does', () => {
  it('the same fragments, byte for byte, for whole datagrams and fragments, options or none, at many MTUs', () => {
    let compared = 0;
    for (const payload of [9, 100, 1473, 1480, 2972, 8000])
      for (const options of [[], OPTIONS])
        for (const flagsFragment of [0, IPV4_FLAG_MF, IPV4_FLAG_MF | 185, 370])
          for (const mtu of [68, 576, 1280, 1393, 1500]) {
            const d = datagram(payload, options, flagsFragment, payload + mtu);
            const ts = fragmentIpv4(d, mtu) ?? null;
            const native = offload.fragmentIpv4(d, mtu);
            expect(native && native.map((f) => Buffer.from(f).toString('hex'))).toEqual(
              ts && ts.map((f) => Buffer.from(f).toString('hex')),
            );
            if (ts && ts.length > 1) compared++;
          }
    expect(compared).toBeGreaterThan(50);
  });

  it('RFC 791: every piece fits, offsets in 8-byte units cover the payload once, MF on all but the last (else as given)', () => {
    const d = datagram(2972, OPTIONS, IPV4_FLAG_MF | 100);
    const pieces = offload.fragmentIpv4(d, 1393)!;
    expect(pieces.length).toBe(3);
    let next = 100 * 8;
    pieces.forEach((p, i) => {
      expect(p.length).toBeLessThanOrEqual(1393);
      const ip = parseIpv4(p, 0, p.length, { allowFragments: true });
      expect(ip.ok).toBe(true);
      if (!ip.ok) return;
      const h = ip.header;
      expect((h.flagsFragment & 0x1fff) * 8).toBe(next);
      expect(h.flagsFragment & IPV4_FLAG_MF).toBe(IPV4_FLAG_MF); // the datagram itself had MF: so does its last piece
      // The first keeps every option (16 bytes); later ones only the copied one (4 bytes).
      expect(h.headerLength).toBe(i === 0 ? 36 : 24);
      next += p.length - h.headerLength;
    });
    expect(next).toBe(100 * 8 + 2972);
    const last = datagram(2972, [], 0);
    const split = offload.fragmentIpv4(last, 1500)!;
    expect(split.map((p) => (p[6] << 8) & IPV4_FLAG_MF)).toEqual([IPV4_FLAG_MF, IPV4_FLAG_MF, 0]);
  });

  it('refuses what must not or cannot be split: DF, an MTU below a header and 8 bytes, what does not parse', () => {
    expect(offload.fragmentIpv4(datagram(3000, [], IPV4_FLAG_DF), 1500)).toBeNull();
    expect(offload.fragmentIpv4(datagram(3000, OPTIONS), 43)).toBeNull();
    const bad = datagram(3000);
    bad[10] ^= 1; // header checksum
    expect(offload.fragmentIpv4(bad, 1500)).toBeNull();
    expect(offload.fragmentIpv4(new Uint8Array(19), 1500)).toBeNull();
    // One that fits comes back whole, DF or not.
    const small = datagram(100, [], IPV4_FLAG_DF);
    expect(offload.fragmentIpv4(small, 1500)).toEqual([Buffer.from(small)]);
  });
});
