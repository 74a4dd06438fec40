// Differential fuzzing: seeded random mutations of valid packets of every kind go through INBOUND (and the other
// ops) on both paths with identical state; every outcome — verdict, reason, SA, next hop, where the packet ends
// up, and its bytes unless it was dropped — must be the same.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Batch, Op, Reason, type Engine, type OpCode, type Policy, type SaDesc } from '../../src/engine/index.js';
import { Verdict } from '../../src/engine/types.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, setIpv4Checksum } from '../../src/wire/ipv4.js';
import { ADDR, closedAfterEach, datagram, endSaPair, engineWith, hex, nexthopSaPair, rng, runOne } from './fixtures.js';

const track = closedAfterEach();

/** One random mutation: bit flips, byte writes, a cut (with or without a fixed-up header), or an insertion. */
function mutate(p: Uint8Array, r: (n: number) => number): Uint8Array {
  let out = Uint8Array.from(p);
  const kind = r(6);
  if (kind <= 1) {
    for (let i = 0, n = 1 + r(3); i < n; i++) out[r(out.length)] ^= 1 << r(8);
  } else if (kind === 2) {
    out[r(Math.min(out.length, 160))] = [0, 1, 4, 50, 51, 57, 59, 0xff, r(256)][r(9)];
  } else if (kind === 3) {
    out = out.subarray(0, r(out.length));
  } else if (kind === 4) {
    out = Uint8Array.from([
      ...out.subarray(0, 20 + r(Math.max(1, out.length - 20))),
      ...Array.from({ length: r(9) }, () => r(256)),
    ]);
  } else {
    out = out.subarray(0, 20 + r(Math.max(1, out.length - 20)));
  }
  // Half the time repair the outer header so the mutation reaches the layers behind it.
  if (out.length >= 20 && r(2) === 0) {
    const ihl = (out[0] & 15) * 4;
    out[2] = out.length >> 8;
    out[3] = out.length & 0xff;
    if (ihl >= 20 && ihl <= out.length) setIpv4Checksum(out, 0, ihl);
  }
  return out;
}

function outcomes(engine: Engine, op: OpCode, packets: Uint8Array[], arg0 = 0, arg1 = 0): string[] {
  const batch = new Batch({ capacity: packets.length });
  for (const p of packets) batch.push(op, p, arg0, arg1);
  engine.process(batch);
  return packets.map((_, i) => {
    const r = batch.result(i);
    const at = batch.desc[i * 8 + 3] - i * batch.slotSize;
    const bytes = r.verdict === Verdict.DROP ? '' : hex(r.packet);
    return `v${r.verdict} r${r.reason} sa${r.sa} nh${r.nexthop} @${at}+${r.packet.length} ${bytes}`;
  });
}

describe('[ts→native] differential fuzzing', () => {
  const end = endSaPair({
    suite: 'aes128gcm',
    ah: 'gmac-aes128',
    mode: 'skip',
    id: 141,
    src: ADDR.smnCoa,
    dst: ADDR.sgw0,
    mkid: { src: ADDR.smnHome },
  });
  const esp = endSaPair({ suite: 'chacha20poly1305', mode: 'spi', id: 142, src: ADDR.sgw1, dst: ADDR.sgw0 });
  const hop = nexthopSaPair({
    alg: 'hmac-sha256-128',
    coverage: 'headers',
    mode: 'skip',
    id: 143,
    src: ADDR.sgw1,
    dst: ADDR.sgw0,
  });
  const hopFull = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 144, src: ADDR.sgw2, dst: ADDR.sgw0 });
  const relay = nexthopSaPair({
    alg: 'gmac-aes128',
    coverage: 'headers',
    mode: 'skip',
    id: 145,
    src: ADDR.sgw0,
    dst: ADDR.sgw2,
  });
  const receiverSas: SaDesc[] = [end.in, esp.in, hop.in, hopFull.in, relay.out];
  const setup = {
    local: [ADDR.sgw0],
    routes: [
      { prefix: '10.9.0.0/16', sa: relay.out.id },
      { prefix: '10.8.0.0/16', sa: 0 },
    ],
  };

  /** Valid packets of every kind; each round gets fresh sequence numbers so the window does not mask the rest. */
  function seeds(round: number): Uint8Array[] {
    const fresh = (sa: SaDesc): SaDesc => ({
      ...sa,
      ah: sa.ah && { ...sa.ah, seq: round * 8 },
      esp: sa.esp && { ...sa.esp, seq: round * 8 },
    });
    const tx = engineWith('ts', [end.out, esp.out, hop.out, hopFull.out].map(fresh));
    const e1 = runOne(tx, Op.ENCAP, datagram(90), end.out.id).packet;
    const e2 = runOne(tx, Op.ENCAP, datagram(33), esp.out.id).packet;
    const seeds = [
      e1,
      e2,
      runOne(tx, Op.WRAP, e1, hop.out.id).packet,
      runOne(tx, Op.WRAP, runOne(tx, Op.WRAP, e2, hopFull.out.id).packet, hop.out.id).packet,
      runOne(tx, Op.WRAP, datagram(70, { dst: '10.9.1.1' }), hopFull.out.id).packet,
      runOne(tx, Op.WRAP, datagram(70, { dst: '10.8.1.1' }), hop.out.id).packet,
      runOne(tx, Op.IPIP_ENCAP, e2, ipToU32(ADDR.sgw1), ipToU32(ADDR.sgw0)).packet,
    ];
    tx.close();
    return seeds;
  }

  it('INBOUND: 6000 mutants of 7 packet kinds', () => {
    const ts = engineWith('ts', receiverSas, setup);
    const native = engineWith('native', receiverSas, setup);
    track(ts);
    track(native);
    const r = rng(2026);
    for (let round = 0; round < 30; round++) {
      const base = seeds(round);
      const batch = Array.from({ length: 200 }, () => mutate(base[r(base.length)], r));
      // Now and then an unmutated original: it opens once, then it is a replay (state must evolve alike).
      batch[r(200)] = base[r(base.length)];
      const a = outcomes(ts, Op.INBOUND, batch);
      const b = outcomes(native, Op.INBOUND, batch);
      const diffs = a.flatMap((x, i) =>
        x === b[i] ? [] : [`round ${round} #${i} input ${hex(batch[i])}\n  ts     ${x}\n  native ${b[i]}`],
      );
      expect(diffs.slice(0, 5)).toEqual([]);
    }
    expect(Array.from(native.counters())).toEqual(Array.from(ts.counters()));
  });

  it('ENCAP, WRAP, IPIP_ENCAP and IPIP_DECAP: 2000 mutants of their inputs each', () => {
    const sas = [end.out, hop.out];
    const ts = engineWith('ts', sas);
    const native = engineWith('native', sas);
    track(ts);
    track(native);
    const r = rng(1996);
    const tunnel = runOne(ts, Op.IPIP_ENCAP, datagram(60), 1, 2).packet;
    const cases: [OpCode, Uint8Array, number, number][] = [
      [Op.ENCAP, datagram(80), end.out.id, 0],
      [Op.WRAP, datagram(80), hop.out.id, 0],
      [Op.IPIP_ENCAP, datagram(80), ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa)],
      [Op.IPIP_DECAP, tunnel, 0, 0],
    ];
    runOne(native, Op.IPIP_ENCAP, datagram(60), 1, 2); // keep both engines' counters in step
    for (const [op, seed, arg0, arg1] of cases) {
      for (let round = 0; round < 10; round++) {
        const batch = Array.from({ length: 200 }, () => mutate(seed, r));
        const a = outcomes(ts, op, batch, arg0, arg1);
        const b = outcomes(native, op, batch, arg0, arg1);
        const diffs = a.flatMap((x, i) =>
          x === b[i] ? [] : [`op ${op} #${i} input ${hex(batch[i])}\n  ts     ${x}\n  native ${b[i]}`],
        );
        expect(diffs.slice(0, 5)).toEqual([]);
      }
    }
    expect(Array.from(native.counters())).toEqual(Array.from(ts.counters()));
  });

  it('OUTBOUND through policy tables with every action (tables 0, 1 and 2 by arg0): 3000 mutants', () => {
    // Table 0: protect/bypass as before; table 1: every action by destination and source, /32s to /0, with
    // fallthrough (and an RFC 2003 tunnel); table 2: inbound for our own address (bare IP-in-IP, SKIP), pass elsewhere.
    const policies: Policy[] = [
      { prefix: '10.0.0.0/8', sa: end.out.id, wrap: hop.out.id },
      { prefix: '0.0.0.0/0', sa: 0 },
      { prefix: '10.0.0.20/32', table: 1, src: ['10.0.0.0/24'], action: 'pass', sa: 0 },
      { prefix: '10.0.0.6/32', table: 1, action: 'tunnel', sa: 0, tunnel: { src: ADDR.ha, dst: ADDR.smnCoa } },
      { prefix: `${ADDR.ha}/32`, table: 1, proto: IpProto.IPIP, action: 'detunnel', sa: 0 },
      { prefix: '10.0.0.20/32', table: 1, src: ['10.1.0.0/16', '128.0.0.0/1'], action: 'drop', sa: 0 },
      { prefix: '10.0.0.0/24', table: 1, src: ['10.0.0.100/32'], action: 'punt', sa: 0 },
      { prefix: '10.0.0.0/16', table: 1, action: 'protect', sa: esp.out.id },
      { prefix: '0.0.0.0/0', table: 1, src: ['0.0.0.0/1'], action: 'pass', sa: 0 },
      { prefix: `${ADDR.sgw0}/32`, table: 2, action: 'inbound', sa: 0 },
      { prefix: '0.0.0.0/0', table: 2, action: 'pass', sa: 0 },
    ];
    const sas = [end.out, esp.out, hop.out, ...receiverSas];
    const ts = engineWith('ts', sas, setup);
    const native = engineWith('native', sas, setup);
    track(ts);
    track(native);
    ts.setPolicies(policies);
    native.setPolicies(policies);
    const r = rng(33);
    const inner = [
      datagram(80, { ttl: 2 }),
      datagram(61, { src: ADDR.smnCoa, ttl: 1 }),
      datagram(100, { src: '10.0.0.7', dst: '10.0.0.20' }),
      datagram(40, { dst: '10.0.9.9' }),
      datagram(70, { dst: '10.0.0.5' }),
      datagram(70, { src: '10.0.0.20', dst: '10.0.0.6', ttl: 2 }),
      datagram(60, { src: ADDR.smnCoa, dst: '10.0.0.6' }),
      // Reverse tunnels to the HA: 10.0.0.6 from its care-of address (to a CH, to itself), and from elsewhere.
      reverseTunnel(ADDR.smnCoa, datagram(64, { src: '10.0.0.6', dst: '10.0.0.20' })),
      reverseTunnel(ADDR.smnCoa, datagram(64, { src: '10.0.0.6', dst: '10.0.0.6', ttl: 2 })),
      reverseTunnel(ADDR.sgw0, datagram(64, { src: '10.0.0.6', dst: '10.0.0.20' })),
    ];
    for (let round = 0; round < 5; round++) {
      const base = [...inner, ...seeds(round)];
      for (const table of [0, 1, 2]) {
        const batch = Array.from({ length: 200 }, () => mutate(base[r(base.length)], r));
        batch[r(200)] = base[r(base.length)];
        const a = outcomes(ts, Op.OUTBOUND, batch, table);
        const b = outcomes(native, Op.OUTBOUND, batch, table);
        const diffs = a.flatMap((x, i) =>
          x === b[i]
            ? []
            : [`table ${table} round ${round} #${i} input ${hex(batch[i])}\n  ts     ${x}\n  native ${b[i]}`],
        );
        expect(diffs.slice(0, 5)).toEqual([]);
      }
    }
    expect(Array.from(native.counters())).toEqual(Array.from(ts.counters()));
    const reached = [
      'policy_punt',
      'policy_drop',
      'ttl_exceeded',
      'not_ipsec',
      'no_policy',
      'loop',
      'untrusted_tunnel',
    ];
    for (const reason of reached as (keyof typeof Reason)[]) {
      expect(native.counters()[Reason[reason]], `${reason} was reached`).toBeGreaterThan(0n);
    }
  });
});

/** IP-in-IP from `from` to the HA around `inner` (RFC 2003, as a mobile node reverse-tunnels). */
function reverseTunnel(from: string, inner: Uint8Array): Uint8Array {
  const header = { src: ipToU32(from), dst: ipToU32(ADDR.ha), protocol: IpProto.IPIP, ttl: 64 };
  return buildIpv4(header, inner);
}
