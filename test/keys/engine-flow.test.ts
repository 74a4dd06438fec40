// The DESIGN §3 flow through the TypeScript data path: the SMN's keying makes an outbound SA, the
// SGW's engine punts the first packet (unknown_key), the SGW's keying derives the inbound SA from
// the punted SKIP header, and the re-injected packet is delivered. Both data paths (native and TS).
import { describe, expect, it } from 'vitest';
import { Batch, createEngine, Op, Reason, Verdict } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying, type KeyingResult } from '../../src/keys/keying.js';
import type { SaDesc } from '../../src/engine/types.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto, IPV4_HEADER_BYTES } from '../../src/wire/ipv4.js';
import { makeCa, makeIdentity, T0 } from './helpers.js';

const SMN_COA = '10.1.0.100';
const SGW = '198.18.0.1';

/** The SMN and its SGW, each with a certificate from one CA and the other's certificate cached. */
function skipPeers() {
  const ca = makeCa();
  const smnId = makeIdentity(ca, 'smn:10.0.0.100');
  const sgwId = makeIdentity(ca, `sgw:${SGW}`);
  const smnCerts = new CertCache(ca.cert);
  smnCerts.add(sgwId.cert, T0);
  const sgwCerts = new CertCache(ca.cert);
  sgwCerts.add(smnId.cert, T0);
  return {
    sgwId,
    smnKeys: new SkipKeying({ identity: smnId, certs: smnCerts, now: () => T0 }),
    sgwKeys: new SkipKeying({ identity: sgwId, certs: sgwCerts, now: () => T0 }),
  };
}

function created(r: KeyingResult): SaDesc {
  if (!r.ok || !r.created) throw new Error(`expected a new SA, got ${JSON.stringify(r)}`);
  return r.sa;
}

describe.each(['ts', 'native'] as const)('SKIP keying through the %s engine', (impl) => {
  for (const [esp, ah] of [
    ['aes128gcm', 'gmac-aes128'],
    ['chacha20poly1305', undefined],
    ['aes256gcm', 'hmac-sha256-128'],
  ] as const) {
    it(`end layer ${esp}${ah ? ` + ${ah}` : ''}: punt, derive, install, deliver`, () => {
      const { sgwId, smnKeys, sgwKeys } = skipPeers();

      const smnEngine = createEngine(impl);
      const out = created(smnKeys.outboundSa({ peer: sgwId.name, src: SMN_COA, dst: SGW, role: 'end', esp, ah }));
      smnEngine.installSa(out);
      const inner = buildIpv4(
        { protocol: IpProto.UDP, src: ipToU32('10.0.0.100'), dst: ipToU32('10.0.0.20'), ttl: 64 },
        new TextEncoder().encode('hello through SKIP'),
      );
      const batch = new Batch({ capacity: 4 });
      batch.push(Op.ENCAP, inner, out.id);
      smnEngine.process(batch);
      const sent = batch.result(0);
      expect(sent.verdict).toBe(Verdict.FORWARD);
      const wire = sent.packet.slice();

      const sgwEngine = createEngine(impl);
      sgwEngine.setLocalAddresses([SGW]);
      const rx = new Batch({ capacity: 4 });
      rx.push(Op.INBOUND, wire);
      sgwEngine.process(rx);
      expect(rx.result(0)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.unknown_key });

      const inbound = created(sgwKeys.inboundSa({ packet: wire, offset: IPV4_HEADER_BYTES, src: SMN_COA, dst: SGW }));
      sgwEngine.installSa(inbound);
      rx.clear();
      rx.push(Op.INBOUND, wire);
      sgwEngine.process(rx);
      const delivered = rx.result(0);
      expect(delivered).toMatchObject({ verdict: Verdict.DELIVER, sa: inbound.id });
      expect(Buffer.from(delivered.packet).equals(Buffer.from(inner))).toBe(true);

      // A forged wrapped Kp in the same packet never yields an SA.
      const forged = wire.slice();
      forged[IPV4_HEADER_BYTES + 12] ^= 1;
      expect(sgwKeys.inboundSa({ packet: forged, offset: IPV4_HEADER_BYTES, src: SMN_COA, dst: SGW })).toMatchObject({
        ok: false,
        reason: 'forged_key',
      });
      smnEngine.close();
      sgwEngine.close();
    });
  }

  it('next-hop layer (AH headers coverage): punt, derive, install, verify (the plain datagram is punted nexthop_plain)', () => {
    const { sgwId, smnKeys, sgwKeys } = skipPeers();
    const smnEngine = createEngine(impl);
    const out = created(
      smnKeys.outboundSa({
        peer: sgwId.name,
        src: SMN_COA,
        dst: SGW,
        role: 'nexthop',
        ah: 'gmac-aes128',
        coverage: 'headers',
      }),
    );
    smnEngine.installSa(out);
    const datagram = buildIpv4(
      { protocol: IpProto.UDP, src: ipToU32(SMN_COA), dst: ipToU32(SGW), ttl: 64 },
      new Uint8Array(40).fill(7),
    );
    const batch = new Batch({ capacity: 4 });
    batch.push(Op.WRAP, datagram, out.id);
    smnEngine.process(batch);
    expect(batch.result(0).verdict).toBe(Verdict.FORWARD);
    const wire = batch.result(0).packet.slice();

    const sgwEngine = createEngine(impl);
    sgwEngine.setLocalAddresses([SGW]);
    const inbound = created(
      sgwKeys.inboundSa({ packet: wire, offset: IPV4_HEADER_BYTES, src: SMN_COA, dst: SGW, coverage: 'headers' }),
    );
    expect(inbound.role).toBe('nexthop');
    sgwEngine.installSa(inbound);
    const rx = new Batch({ capacity: 4 });
    rx.push(Op.INBOUND, wire);
    sgwEngine.process(rx);
    // Verified; a plain datagram under a next-hop layer alone goes to the policy with it (docs/engine.md §5).
    expect(rx.result(0)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.nexthop_plain, sa: inbound.id });
    expect(Buffer.from(rx.result(0).packet).equals(Buffer.from(datagram))).toBe(true);
    smnEngine.close();
    sgwEngine.close();
  });
});
