// SkipKeying between an SMN and an SGW: agreement, counter window, forged keys, certificates,
// Kp rotation, expiry, and hostile headers.
import { describe, expect, it } from 'vitest';
import { CertCache } from '../../src/keys/cache.js';
import { deriveKij, deriveKijn } from '../../src/keys/derive.js';
import {
  kpSoftLimit,
  MAX_KP_ROTATION_HEADROOM,
  SkipKeying,
  wipeSaKeys,
  type KeyingResult,
} from '../../src/keys/keying.js';
import type { Identity } from '../../src/keys/keyfile.js';
import type { SaDesc } from '../../src/engine/types.js';
import { decodeSkipHeader, encodeSkipHeader } from '../../src/wire/skip.js';
import { hex, makeCa, makeIdentity, T0, type TestCa } from './helpers.js';

const HOUR = 3600;
const SMN_COA = '10.1.0.100';
const SGW_ADDR = '198.18.0.1';

interface Pair {
  ca: TestCa;
  smnId: Identity;
  sgwId: Identity;
  clock: { now: number };
  smn: SkipKeying;
  sgw: SkipKeying;
}

function setup(opts: { kpMaxPackets?: number; maxInboundSas?: number } = {}): Pair {
  const ca = makeCa();
  const smnId = makeIdentity(ca, 'smn:10.0.0.100');
  const sgwId = makeIdentity(ca, `sgw:${SGW_ADDR}`);
  const clock = { now: T0 };
  const keying = (id: Identity, peer: Identity) => {
    const certs = new CertCache(ca.cert);
    expect(certs.add(peer.cert, clock.now)).toEqual({ ok: true });
    return new SkipKeying({
      identity: { ...id, secretKey: id.secretKey.slice() },
      certs,
      now: () => clock.now,
      ...opts,
    });
  };
  return { ca, smnId, sgwId, clock, smn: keying(smnId, sgwId), sgw: keying(sgwId, smnId) };
}

function created(r: KeyingResult): SaDesc {
  if (!r.ok || !r.created) throw new Error(`expected a new SA, got ${JSON.stringify(r)}`);
  return r.sa;
}

const endRequest = (p: Pair) => ({
  peer: p.sgwId.name,
  src: SMN_COA,
  dst: SGW_ADDR,
  role: 'end' as const,
  esp: 'aes128gcm' as const,
  ah: 'gmac-aes128' as const,
});

describe('SkipKeying', () => {
  it('both nodes derive the same Kij and Kijn', () => {
    const { smnId, sgwId } = setup();
    const a = deriveKij(smnId.secretKey, smnId.publicKey, sgwId.publicKey)!;
    const b = deriveKij(sgwId.secretKey, sgwId.publicKey, smnId.publicKey)!;
    expect(hex(a)).toBe(hex(b));
    expect(hex(deriveKijn(a, 279684))).toBe(hex(deriveKijn(b, 279684)));
    expect(hex(deriveKijn(a, 279684))).not.toBe(hex(deriveKijn(a, 279685)));
    expect(deriveKij(smnId.secretKey, smnId.publicKey, new Uint8Array(32))).toBeUndefined(); // low-order peer key
  });

  it("the receiver's inbound SA carries the sender's outbound keys (end and next-hop layers)", () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    expect(out).toMatchObject({ direction: 'out', role: 'end', mode: 'skip', src: SMN_COA, dst: SGW_ADDR });
    expect(out.esp).toMatchObject({ suite: 'aes128gcm', spi: 1 });
    expect(out.esp!.key).toHaveLength(20);
    expect(out.ah).toMatchObject({ alg: 'gmac-aes128', spi: 1 });
    const header = decodeSkipHeader(out.skipHeader!, 0);
    expect(header.ok && header.header).toMatchObject({
      srcNsid: 1,
      srcMkid: 0x0a000064,
      dstNsid: 0,
      nextHeader: 51,
      kijAlg: 250,
      cryptAlg: 250,
      macAlg: 250,
    });

    const inn = created(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR }));
    expect(inn).toMatchObject({ direction: 'in', role: 'end', mode: 'skip', src: SMN_COA, dst: SGW_ADDR });
    expect(hex(inn.esp!.key)).toBe(hex(out.esp!.key));
    expect(hex(inn.ah!.key)).toBe(hex(out.ah!.key));
    expect(hex(inn.skipHeader!)).toBe(hex(out.skipHeader!));
    expect(hex(inn.esp!.key)).not.toBe(hex(inn.ah!.key).slice(0, 40));

    const back = created(
      p.sgw.outboundSa({
        peer: p.smnId.name,
        src: SGW_ADDR,
        dst: SMN_COA,
        role: 'nexthop',
        ah: 'hmac-sha256-128',
        coverage: 'headers',
      }),
    );
    expect(back.ah).toMatchObject({ alg: 'hmac-sha256-128', coverage: 'headers', spi: 1 });
    expect(back.esp).toBeUndefined();
    const backHeader = decodeSkipHeader(back.skipHeader!, 0);
    expect(backHeader.ok && backHeader.header).toMatchObject({
      srcNsid: 0,
      dstNsid: 1,
      dstMkid: 0x0a000064,
      cryptAlg: 0,
      macAlg: 251,
      nextHeader: 51,
    });
    const backIn = created(
      p.smn.inboundSa({ packet: back.skipHeader!, src: SGW_ADDR, dst: SMN_COA, coverage: 'headers' }),
    );
    expect(backIn.role).toBe('nexthop');
    expect(backIn.ah!.coverage).toBe('headers');
    expect(hex(backIn.ah!.key)).toBe(hex(back.ah!.key));
  });

  it('the SKIP header may sit inside a packet at an offset', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    const packet = new Uint8Array(20 + out.skipHeader!.length + 30);
    packet.set(out.skipHeader!, 20);
    const inn = created(p.sgw.inboundSa({ packet, offset: 20, src: SMN_COA, dst: SGW_ADDR }));
    expect(hex(inn.skipHeader!)).toBe(hex(out.skipHeader!));
  });

  it('n within ±1 of the receiver is accepted, ±2 rejected', () => {
    for (const [skew, accepted] of [
      [-2, false],
      [-1, true],
      [0, true],
      [1, true],
      [2, false],
    ] as const) {
      const p = setup();
      p.clock.now = T0 + skew * HOUR;
      const out = created(p.smn.outboundSa(endRequest(p)));
      p.clock.now = T0;
      const r = p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR });
      if (accepted) expect(r.ok, `skew ${skew}`).toBe(true);
      else expect(r, `skew ${skew}`).toMatchObject({ ok: false, reason: 'counter_window' });
    }
  });

  it('every flipped bit of the wrapped Kp is rejected as a forged key', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    for (let bit = 0; bit < 40 * 8; bit++) {
      const forged = out.skipHeader!.slice();
      forged[12 + (bit >> 3)] ^= 0x80 >> (bit & 7);
      expect(p.sgw.inboundSa({ packet: forged, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
        ok: false,
        reason: 'forged_key',
      });
    }
  });

  it('a Kp wrapped under another Kij (a different peer key) is a forged key', () => {
    const p = setup();
    const impostor = makeIdentity(p.ca, 'smn:10.0.0.100');
    const certs = new CertCache(p.ca.cert);
    certs.add(p.sgwId.cert, T0);
    const fake = new SkipKeying({ identity: impostor, certs, now: () => T0 });
    const out = created(fake.outboundSa(endRequest(p)));
    // The SGW knows the real SMN certificate for smn:10.0.0.100, so the impostor's wrap fails.
    expect(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'forged_key',
    });
  });

  it('a certificate from another CA never enters the cache, so its keys are unknown', () => {
    const p = setup();
    const otherCa = makeCa('Other CA');
    const stranger = makeIdentity(otherCa, 'smn:10.0.0.200');
    const sgwCerts = new CertCache(p.ca.cert);
    expect(sgwCerts.add(stranger.cert, T0)).toMatchObject({ ok: false, reason: 'foreign_ca' });
    const sgw = new SkipKeying({ identity: p.sgwId, certs: sgwCerts, now: () => T0 });
    const strangerCerts = new CertCache(otherCa.cert);
    // The stranger holds the SGW certificate re-issued by its own CA (same key, foreign signature).
    const forgedSgw = makeIdentity(otherCa, `sgw:${SGW_ADDR}`);
    expect(strangerCerts.add({ ...forgedSgw.cert, publicKey: p.sgwId.publicKey }, T0)).toMatchObject({
      ok: false,
      reason: 'bad_signature',
    });
    strangerCerts.add(forgedSgw.cert, T0);
    const out = created(
      new SkipKeying({ identity: stranger, certs: strangerCerts, now: () => T0 }).outboundSa({
        ...endRequest(p),
        peer: forgedSgw.name,
      }),
    );
    expect(sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'unknown_certificate',
    });
  });

  it('an expired certificate is rejected, for inbound and outbound keying', () => {
    const p = setup();
    const shortLived = makeIdentity(p.ca, 'smn:10.0.0.150', T0 - 86400, T0 + 600);
    const certs = new CertCache(p.ca.cert);
    certs.add(p.sgwId.cert, T0);
    const smn = new SkipKeying({ identity: shortLived, certs, now: () => T0 });
    const sgwCerts = new CertCache(p.ca.cert);
    expect(sgwCerts.add(shortLived.cert, T0)).toEqual({ ok: true });
    let now = T0;
    const sgw = new SkipKeying({ identity: p.sgwId, certs: sgwCerts, now: () => now });
    const out = created(smn.outboundSa(endRequest(p)));
    now = T0 + 1200;
    expect(sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'expired_certificate',
    });
    expect(
      sgw.outboundSa({ peer: shortLived.name, src: SGW_ADDR, dst: SMN_COA, role: 'nexthop', ah: 'gmac-aes128' }),
    ).toMatchObject({ ok: false });
  });

  it('a header for another MKID is not for us', () => {
    const p = setup();
    const out = created(
      p.sgw.outboundSa({ peer: p.smnId.name, src: SGW_ADDR, dst: SMN_COA, role: 'end', esp: 'chacha20poly1305' }),
    );
    const other = out.skipHeader!.slice();
    other[other.length - 1] ^= 1;
    expect(p.smn.inboundSa({ packet: other, src: SGW_ADDR, dst: SMN_COA })).toMatchObject({
      ok: false,
      reason: 'bad_dst_mkid',
    });
    expect(p.smn.inboundSa({ packet: out.skipHeader!, src: SGW_ADDR, dst: SMN_COA }).ok).toBe(true);
  });

  it('the same key tuple gives the same SA once; the same tuple with other algorithms is refused', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    const first = created(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR }));
    expect(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toEqual({
      ok: true,
      created: false,
      id: first.id,
    });
    const otherAlgs = out.skipHeader!.slice();
    otherAlgs[9] = 251;
    expect(p.sgw.inboundSa({ packet: otherAlgs, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'sa_mismatch',
    });
  });

  it('the soft limit: a quarter of the hard one early, at most MAX_KP_ROTATION_HEADROOM packets, none for a limit of 1', () => {
    expect([1, 2, 3, 4, 1000, 50_000, 1 << 20, 2 ** 32 - 1].map(kpSoftLimit)).toEqual([
      undefined,
      1,
      2,
      3,
      750,
      37_500,
      (1 << 20) - MAX_KP_ROTATION_HEADROOM,
      2 ** 32 - 1 - MAX_KP_ROTATION_HEADROOM,
    ]);
  });

  it('outbound: one SA per request until n moves or the soft packet count is reached; ids unique and > 0', () => {
    const p = setup({ kpMaxPackets: 1000 });
    const first = created(p.smn.outboundSa(endRequest(p)));
    expect(first.id).toBeGreaterThan(0);
    // The engine gets both limits: it reports the soft one (rekey_due) and stops sealing at the hard one (rekey).
    expect([first.softPackets, first.maxPackets]).toEqual([750, 1000]);
    expect(p.smn.outboundSa(endRequest(p), 749)).toEqual({ ok: true, created: false, id: first.id });
    const rotated = p.smn.outboundSa(endRequest(p), 750);
    if (!rotated.ok || !rotated.created) throw new Error('expected a rotation');
    expect(rotated.retire).toBe(first.id);
    expect(hex(rotated.sa.skipHeader!.subarray(12, 52))).not.toBe(hex(first.skipHeader!.subarray(12, 52)));
    expect(hex(rotated.sa.esp!.key)).not.toBe(hex(first.esp!.key));
    p.clock.now += HOUR;
    const nextHour = p.smn.outboundSa(endRequest(p));
    if (!nextHour.ok || !nextHour.created) throw new Error('expected a new SA for the next n');
    expect(nextHour.retire).toBe(rotated.sa.id);
    const n = decodeSkipHeader(nextHour.sa.skipHeader!, 0);
    expect(n.ok && n.header.n).toBe(Math.floor((p.clock.now - 788918400) / 3600));
    const ids = new Set([first.id, rotated.sa.id, nextHour.sa.id]);
    const differentPeerLayer = created(p.smn.outboundSa({ ...endRequest(p), role: 'nexthop', esp: undefined }));
    ids.add(differentPeerLayer.id);
    expect(ids.size).toBe(4);
  });

  it('expire() hands back the SAs whose n left the window', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    const inn = created(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR }));
    p.clock.now += HOUR;
    expect(p.sgw.expire()).toEqual([]);
    expect(p.smn.expire()).toEqual([]);
    p.clock.now += HOUR;
    expect(p.sgw.expire()).toEqual([inn.id]);
    expect(p.smn.expire()).toEqual([out.id]);
    expect(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'counter_window',
    });
  });

  it('the inbound table is bounded', () => {
    const p = setup({ maxInboundSas: 2, kpMaxPackets: 1 });
    for (let i = 0; i < 2; i++) {
      const out = created(p.smn.outboundSa(endRequest(p), 1));
      expect(p.sgw.inboundSa({ packet: out.skipHeader!, src: SMN_COA, dst: SGW_ADDR }).ok).toBe(true);
    }
    const third = created(p.smn.outboundSa(endRequest(p), 1));
    expect(p.sgw.inboundSa({ packet: third.skipHeader!, src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'too_many_sas',
    });
  });

  it('header/layer combinations that do not make an SA are refused', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    const parsed = decodeSkipHeader(out.skipHeader!, 0);
    if (!parsed.ok) throw new Error('bad header');
    const variant = (change: object) => encodeSkipHeader({ ...parsed.header, ...change });
    expect(p.sgw.inboundSa({ packet: variant({ nextHeader: 50 }), src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'bad_skip',
    });
    expect(p.sgw.inboundSa({ packet: variant({ cryptAlg: 0, macAlg: 0 }), src: SMN_COA, dst: SGW_ADDR })).toMatchObject(
      { ok: false, reason: 'bad_skip' },
    );
    expect(p.sgw.inboundSa({ packet: variant({ macAlg: 0 }), src: SMN_COA, dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'bad_skip',
    });
    expect(p.sgw.inboundSa({ packet: out.skipHeader!, src: 'not-an-ip', dst: SGW_ADDR })).toMatchObject({
      ok: false,
      reason: 'bad_address',
    });
  });

  it('hostile headers: every truncation and random bytes give a reason, never an exception', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    for (let len = 0; len < out.skipHeader!.length; len++) {
      const r = p.sgw.inboundSa({ packet: out.skipHeader!.subarray(0, len), src: SMN_COA, dst: SGW_ADDR });
      expect(r.ok).toBe(false);
    }
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 3000; i++) {
      const junk = out.skipHeader!.slice();
      for (let k = 0; k < 1 + (i % 4); k++) junk[rand() % junk.length] = rand();
      const r = p.sgw.inboundSa({ packet: junk, src: SMN_COA, dst: SGW_ADDR, offset: i % 3 === 0 ? rand() % 80 : 0 });
      expect(typeof r.ok).toBe('boolean');
      if (!r.ok) expect(r.message).not.toMatch(/[0-9a-f]{64}/);
    }
  });

  it('wipeSaKeys zeroes the key bytes handed out', () => {
    const p = setup();
    const out = created(p.smn.outboundSa(endRequest(p)));
    wipeSaKeys(out);
    expect(out.esp!.key.every((b) => b === 0)).toBe(true);
    expect(out.ah!.key.every((b) => b === 0)).toBe(true);
  });

  it('bad outbound requests are programming errors with a clear message', () => {
    const p = setup();
    expect(() => p.smn.outboundSa({ ...endRequest(p), esp: undefined })).toThrow(/end SA needs esp/);
    expect(() => p.smn.outboundSa({ ...endRequest(p), role: 'nexthop' })).toThrow(/nexthop SA needs ah .* and no esp/);
    expect(() => p.smn.outboundSa({ ...endRequest(p), dst: '300.1.1.1' })).toThrow(/dotted IPv4/);
  });
});
