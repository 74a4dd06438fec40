// IPv4 codec: round trips, every truncation, each check of wire-formats §2, RFC 1071 and RFC 1624.
import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import {
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  IpProto,
  buildIpv4,
  internetChecksum,
  onesComplementSum,
  parseIpv4,
  setIpv4Checksum,
  updateChecksum,
  writeIpv4Header,
} from '../../src/wire/ipv4.js';

function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const SAMPLE = buildIpv4(
  {
    src: ipToU32('10.1.0.100'),
    dst: ipToU32('198.18.1.10'),
    tos: 0xb8,
    identification: 0xbeef,
    flagsFragment: IPV4_FLAG_DF,
    ttl: 17,
    protocol: IpProto.UDP,
  },
  Uint8Array.from({ length: 33 }, (_, i) => i),
);

/** A copy with `change` applied and the checksum recomputed. */
function withHeader(packet: Uint8Array, change: (p: Uint8Array) => void, headerLength = 20): Uint8Array {
  const out = Uint8Array.from(packet);
  change(out);
  setIpv4Checksum(out, 0, headerLength);
  return out;
}

describe('IPv4 header', () => {
  it('round-trips every field', () => {
    const r = parseIpv4(SAMPLE, 0);
    expect(r).toEqual({
      ok: true,
      header: {
        headerLength: 20,
        tos: 0xb8,
        totalLength: 53,
        identification: 0xbeef,
        flagsFragment: IPV4_FLAG_DF,
        ttl: 17,
        protocol: IpProto.UDP,
        checksum: (SAMPLE[10] << 8) | SAMPLE[11],
        src: ipToU32('10.1.0.100'),
        dst: ipToU32('198.18.1.10'),
      },
    });
    expect(onesComplementSum(SAMPLE, 0, 20)).toBe(0xffff);
  });

  it('parses at an offset and never past `end`', () => {
    const buf = new Uint8Array(SAMPLE.length + 10).fill(0xee);
    buf.set(SAMPLE, 7);
    expect(parseIpv4(buf, 7, 7 + SAMPLE.length).ok).toBe(true);
    expect(parseIpv4(buf, 7, 7 + SAMPLE.length - 1)).toEqual({ ok: false, reason: 'bad_total_length' });
  });

  it('every truncation: < 20 bytes is truncated, a shorter datagram than its total length is bad_total_length', () => {
    for (let l = 0; l < SAMPLE.length; l++) {
      expect(parseIpv4(SAMPLE.subarray(0, l), 0), `length ${l}`).toEqual({
        ok: false,
        reason: l < 20 ? 'truncated' : 'bad_total_length',
      });
    }
  });

  it('checks version, IHL, total length, checksum and fragments in that order', () => {
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[0] = 0x65;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'bad_ip_version' });
    for (const ihl of [0, 1, 4])
      expect(
        parseIpv4(
          withHeader(SAMPLE, (p) => {
            p[0] = 0x40 | ihl;
          }),
          0,
        ),
      ).toEqual({ ok: false, reason: 'bad_ihl' });
    // 4·IHL > total length is bad_ihl even when the total length also exceeds what was received.
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[0] = 0x4f;
          p[2] = 0;
          p[3] = 40;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'bad_ihl' });
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[0] = 0x4f;
          p[2] = 1;
          p[3] = 0;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'bad_total_length' });
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[3] = 19;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'bad_ihl' });
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[3] = 54;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'bad_total_length' });
    for (let byte = 0; byte < 20; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const p = Uint8Array.from(SAMPLE);
        p[byte] ^= 1 << bit;
        const r = parseIpv4(p, 0);
        expect(r.ok, `flip ${byte}.${bit}`).toBe(false);
        if (byte >= 4) expect(r.ok || r.reason).toBe('bad_ip_checksum');
      }
    }
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[6] |= IPV4_FLAG_MF >> 8;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'fragment' });
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[7] = 1;
        }),
        0,
      ),
    ).toEqual({ ok: false, reason: 'fragment' });
    expect(
      parseIpv4(
        withHeader(SAMPLE, (p) => {
          p[7] = 1;
        }),
        0,
        SAMPLE.length,
        { allowFragments: true },
      ).ok,
    ).toBe(true);
  });

  it('accepts options (IHL > 5) and a trailer beyond the total length', () => {
    const withOptions = new Uint8Array(24 + 4);
    withOptions.set([0x46, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x94, 4, 0, 0]);
    const fixed = withHeader(withOptions, () => {}, 24);
    const r = parseIpv4(Uint8Array.from([...fixed, 9, 9, 9]), 0);
    expect(r.ok && r.header.headerLength).toBe(24);
    expect(r.ok && r.header.totalLength).toBe(28);
  });

  it('writeIpv4Header writes a valid header at an offset', () => {
    const buf = new Uint8Array(50);
    writeIpv4Header(buf, 5, { totalLength: 45, protocol: 57, src: 1, dst: 2 });
    const r = parseIpv4(buf, 5);
    expect(r.ok && [r.header.ttl, r.header.protocol, r.header.src, r.header.dst, r.header.totalLength]).toEqual([
      64, 57, 1, 2, 45,
    ]);
  });
});

describe('Internet checksum', () => {
  it('pads an odd length with a zero byte (RFC 1071)', () => {
    const odd = Uint8Array.from([0x01, 0x02, 0x03]);
    expect(onesComplementSum(odd, 0, 3)).toBe(0x0102 + 0x0300);
    expect(internetChecksum(odd, 0, 3)).toBe(~(0x0102 + 0x0300) & 0xffff);
  });

  it('folds carries end-around', () => {
    const ff = new Uint8Array(8).fill(0xff);
    expect(onesComplementSum(ff, 0, 8)).toBe(0xffff);
    expect(onesComplementSum(Uint8Array.from([0xff, 0xff, 0x00, 0x02]), 0, 4)).toBe(0x0002);
  });

  it('RFC 1624 incremental update equals a full recompute over 5000 random headers and word changes', () => {
    const next = random(1624);
    for (let n = 0; n < 5000; n++) {
      const h = Uint8Array.from({ length: 20 }, () => next() & 0xff);
      h[10] = 0;
      h[11] = 0;
      const before = internetChecksum(h, 0, 20);
      h[10] = before >> 8;
      h[11] = before & 0xff;
      const word = [0, 1, 2, 3, 4, 6, 7, 8, 9][next() % 9] * 2; // any word but the checksum itself
      const oldWord = (h[word] << 8) | h[word + 1];
      const newWord = n % 7 === 0 ? (oldWord - 0x100) & 0xffff : next() & 0xffff; // TTL-1 style and random changes
      h[word] = newWord >> 8;
      h[word + 1] = newWord & 0xff;
      const incremental = updateChecksum(before, oldWord, newWord);
      h[10] = 0;
      h[11] = 0;
      expect(incremental, `header ${n}`).toBe(internetChecksum(h, 0, 20));
    }
  });
});
