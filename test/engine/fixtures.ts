// Shared fixtures for the engine suites: deterministic keys, SKIP headers, SA pairs, datagrams, one-packet runs,
// and crypto oracles computed straight from the RFCs with node:crypto.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { afterEach, expect } from 'vitest';
import {
  Batch,
  COUNTER_SLOTS,
  createEngine,
  Op,
  type Engine,
  type EngineImpl,
  type OpCode,
  type PacketResult,
  type Policy,
  type SaDesc,
} from '../../src/engine/index.js';
import { seededBytes } from '../../src/bench/fixtures.js';
import { KEY_BYTES, SkipAlg, type Coverage, type EspSuite, type MacAlg } from '../../src/engine/types.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, IPV4_FLAG_DF } from '../../src/wire/ipv4.js';
import { NSID_IPV4, NSID_NONE, encodeSkipHeader } from '../../src/wire/skip.js';

export const IMPLS = ['ts', 'native'] as const;
export const ESP_SUITES: readonly EspSuite[] = ['aes128gcm', 'aes256gcm', 'chacha20poly1305'];
export const MAC_ALGS: readonly MacAlg[] = ['gmac-aes128', 'hmac-sha256-128'];
export const COVERAGES: readonly Coverage[] = ['full', 'headers'];
export const MODES = ['skip', 'spi'] as const;

/** The draft's cast (§4.5.3): SMN at home 10.0.0.100, care-of 10.1.0.100 in site 1; SGW1, SGW0, CH0, HA. */
export const ADDR = {
  smnHome: '10.0.0.100',
  smnCoa: '10.1.0.100',
  sgw1: '198.18.1.10',
  sgw0: '198.18.0.1',
  sgw2: '198.18.2.1',
  ch0: '10.0.0.20',
  ha: '10.0.0.2',
} as const;

/** Deterministic bytes (never all-equal) so both impls get identical keys. */
export const bytes = seededBytes;

export interface SkipIdentity {
  src?: string;
  dst?: string;
}

/** A SKIP header: NSID 1 with the given MKIDs, NSID 0 when omitted. */
export function skipHeader(
  id: SkipIdentity,
  next: number,
  crypt: number,
  mac: number,
  kpSeed: number,
  n = 0x00004320,
): Uint8Array {
  return encodeSkipHeader({
    srcNsid: id.src ? NSID_IPV4 : NSID_NONE,
    dstNsid: id.dst ? NSID_IPV4 : NSID_NONE,
    srcMkid: id.src ? ipToU32(id.src) : undefined,
    dstMkid: id.dst ? ipToU32(id.dst) : undefined,
    nextHeader: next,
    n,
    kijAlg: SkipAlg.kij['aes256-kw'],
    cryptAlg: crypt,
    macAlg: mac,
    compAlg: 0,
    wrappedKp: bytes(40, kpSeed),
  });
}

export interface SaPair {
  out: SaDesc;
  in: SaDesc;
}

/** What an End-End and a Next-hop SA pair have in common: ids, addresses, key seed, counters. */
interface SaPairOptions {
  mode: 'skip' | 'spi';
  id: number;
  src: string;
  dst: string;
  mkid?: SkipIdentity;
  seed?: number;
  seq?: number;
  replayWindow?: number;
}

export interface EndSaOptions extends SaPairOptions {
  suite: EspSuite;
  ah?: MacAlg;
}

/** An End-End SA as sender (id) and receiver (id + 1000), same keys. */
export function endSaPair(o: EndSaOptions): SaPair {
  const seed = o.seed ?? o.id;
  const spiBase = 0x1000 + o.id * 2;
  const skip =
    o.mode === 'skip'
      ? skipHeader(
          o.mkid ?? {},
          o.ah ? IpProto.AH : IpProto.ESP,
          SkipAlg.crypt[o.suite],
          o.ah ? SkipAlg.mac[o.ah] : 0,
          seed,
        )
      : undefined;
  const base = (direction: 'out' | 'in', id: number): SaDesc => ({
    id,
    direction,
    role: 'end',
    mode: o.mode,
    src: o.src,
    dst: o.dst,
    skipHeader: skip,
    esp: {
      suite: o.suite,
      key: bytes(KEY_BYTES[o.suite], seed + 1),
      spi: o.mode === 'skip' ? 1 : spiBase,
      ...(direction === 'out' && o.seq ? { seq: o.seq } : {}),
    },
    ah: o.ah
      ? {
          alg: o.ah,
          key: bytes(KEY_BYTES[o.ah], seed + 2),
          spi: o.mode === 'skip' ? 1 : spiBase + 1,
          ...(direction === 'out' && o.seq ? { seq: o.seq } : {}),
        }
      : undefined,
    ...(direction === 'in' && o.replayWindow ? { replayWindow: o.replayWindow } : {}),
  });
  return { out: base('out', o.id), in: base('in', o.id + 1000) };
}

export interface NexthopSaOptions extends SaPairOptions {
  alg: MacAlg;
  coverage?: Coverage;
}

export function nexthopSaPair(o: NexthopSaOptions): SaPair {
  const seed = o.seed ?? o.id;
  const skip = o.mode === 'skip' ? skipHeader(o.mkid ?? {}, IpProto.AH, 0, SkipAlg.mac[o.alg], seed) : undefined;
  const base = (direction: 'out' | 'in', id: number): SaDesc => ({
    id,
    direction,
    role: 'nexthop',
    mode: o.mode,
    src: o.src,
    dst: o.dst,
    skipHeader: skip,
    ah: {
      alg: o.alg,
      key: bytes(KEY_BYTES[o.alg], seed + 3),
      spi: o.mode === 'skip' ? 1 : 0x2000 + o.id,
      coverage: o.coverage ?? 'full',
      ...(direction === 'out' && o.seq ? { seq: o.seq } : {}),
    },
    ...(direction === 'in' && o.replayWindow ? { replayWindow: o.replayWindow } : {}),
  });
  return { out: base('out', o.id), in: base('in', o.id + 1000) };
}

/** An IPv4/UDP datagram of exactly `size` bytes (20 = an empty IP packet). */
export function datagram(
  size: number,
  o: { src?: string; dst?: string; tos?: number; df?: boolean; id?: number; ttl?: number; seed?: number } = {},
): Uint8Array {
  const payload = bytes(size - 20, o.seed ?? size);
  if (payload.length >= 8) {
    payload.set([0x04, 0x00, 0x01, 0xb2, (payload.length >> 8) & 0xff, payload.length & 0xff, 0, 0], 0);
  }
  return buildIpv4(
    {
      src: ipToU32(o.src ?? ADDR.smnHome),
      dst: ipToU32(o.dst ?? ADDR.ch0),
      tos: o.tos ?? 0x28,
      identification: o.id ?? 0x1234,
      flagsFragment: o.df === false ? 0 : IPV4_FLAG_DF,
      ttl: o.ttl ?? 63,
      protocol: IpProto.UDP,
    },
    payload,
  );
}

/**
 * An IPv4 datagram of exactly `size` bytes (>= 36) carrying protocol 50 with made-up ESP bytes: what a next-hop
 * layer may protect and a gateway relays without opening (docs/engine.md §5).
 */
export function espDatagram(size: number, o: { src?: string; dst?: string; seed?: number } = {}): Uint8Array {
  const header = { src: ipToU32(o.src ?? ADDR.smnCoa), dst: ipToU32(o.dst ?? ADDR.sgw0), protocol: IpProto.ESP };
  return buildIpv4(header, bytes(size - 20, o.seed ?? size));
}

export interface RunResult extends Omit<PacketResult, 'packet'> {
  packet: Uint8Array;
}

/** Runs one packet through one op; the result's packet is a copy. */
export function runOne(engine: Engine, op: OpCode, packet: Uint8Array, arg0 = 0, arg1 = 0): RunResult {
  const batch = new Batch({ capacity: 1 });
  batch.push(op, packet, arg0, arg1);
  engine.process(batch);
  const r = batch.result(0);
  return { ...r, packet: Uint8Array.from(r.packet) };
}

/** Runs many packets through one op in a single batch. */
export function runMany(engine: Engine, op: OpCode, packets: readonly Uint8Array[], arg0 = 0, arg1 = 0): RunResult[] {
  const batch = new Batch({ capacity: Math.max(1, packets.length) });
  for (const p of packets) batch.push(op, p, arg0, arg1);
  engine.process(batch);
  return packets.map((_, i) => {
    const r = batch.result(i);
    return { ...r, packet: Uint8Array.from(r.packet) };
  });
}

/** What an op decided about a packet, without its bytes: what the two engines must agree on besides the bytes. */
export function outcomeOf(r: RunResult) {
  return { verdict: r.verdict, reason: r.reason, sa: r.sa, nexthop: r.nexthop };
}

/**
 * The same packets through OUTBOUND with table `table` on a fresh engine of each path (`make` sets one up): identical
 * outcomes, bytes and counters. Returns the native results.
 */
export function outboundOnBoth(
  make: (impl: EngineImpl) => Engine,
  packets: readonly Uint8Array[],
  table = 0,
): RunResult[] {
  const counters: BigUint64Array[] = [];
  const [ts, native] = IMPLS.map((impl) => {
    const e = make(impl);
    const r = runMany(e, Op.OUTBOUND, packets, table);
    counters.push(e.counters().slice(0, COUNTER_SLOTS));
    return r;
  });
  expect(ts.map(outcomeOf), 'ts vs native outcomes').toEqual(native.map(outcomeOf));
  ts.forEach((r, i) =>
    expect(hex(r.packet), `packet ${i}: ${diffBytes(r.packet, native[i].packet)}`).toBe(hex(native[i].packet)),
  );
  expect(counters[0]).toEqual(counters[1]);
  return native;
}

export function engineWith(
  impl: EngineImpl,
  sas: readonly SaDesc[],
  setup?: { local?: string[]; routes?: { prefix: string; sa: number }[]; policies?: readonly Policy[] },
): Engine {
  const engine = createEngine(impl);
  for (const sa of sas) engine.installSa(sa);
  if (setup?.local) engine.setLocalAddresses(setup.local);
  if (setup?.routes) engine.setRoutes(setup.routes);
  if (setup?.policies) engine.setPolicies(setup.policies);
  return engine;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Byte offsets where two packets differ (and a length note), for precise mismatch reports. */
export function diffBytes(a: Uint8Array, b: Uint8Array): string {
  const out: string[] = [];
  if (a.length !== b.length) out.push(`length ${a.length} vs ${b.length}`);
  for (let i = 0; i < Math.min(a.length, b.length) && out.length < 20; i++) {
    if (a[i] !== b[i])
      out.push(`@${i}: ${a[i].toString(16).padStart(2, '0')} vs ${b[i].toString(16).padStart(2, '0')}`);
  }
  return out.join(', ') || 'identical';
}

/**
 * The AH tag as docs/engine.md §6 defines it, computed here from the RFC rules with node:crypto — an oracle
 * independent of both engines. `ahAt` is the AH's offset; the ICV input is packet[0, coveredEnd) with TOS,
 * flags+fragment, TTL and checksum zeroed, `zero` ranges (mutable options) zeroed, the SKIP reserved nibble
 * zeroed (when `skipLength` > 0) and the 16 tag bytes (the AH's last 16) zeroed.
 */
export function oracleAhTag(
  packet: Uint8Array,
  o: { ahAt: number; skipLength: number; alg: MacAlg; key: Uint8Array; coveredEnd: number; zero?: [number, number][] },
): Buffer {
  const tagAt = o.ahAt + (o.alg === 'gmac-aes128' ? 36 : 28) - 16;
  const input = Uint8Array.from(packet.subarray(0, o.coveredEnd));
  for (const at of [1, 6, 7, 8, 10, 11]) input[at] = 0;
  for (const [from, to] of o.zero ?? []) input.fill(0, from, to);
  if (o.skipLength) input[o.ahAt - o.skipLength] &= 0xf0;
  input.fill(0, tagAt, tagAt + 16);
  if (o.alg === 'hmac-sha256-128') return createHmac('sha256', o.key).update(input).digest().subarray(0, 16);
  const gmac = createCipheriv(
    'aes-128-gcm',
    o.key.subarray(0, 16),
    Buffer.concat([o.key.subarray(16), packet.subarray(o.ahAt + 12, o.ahAt + 20)]),
  );
  gmac.setAAD(input);
  gmac.final();
  return gmac.getAuthTag();
}

/** Opens an ESP packet (SPI … ICV) with node:crypto directly: nonce = salt ‖ IV, AAD = SPI ‖ seq. */
export function oracleEspOpen(esp: Uint8Array, suite: EspSuite, key: Uint8Array): Buffer {
  const cipher = { aes128gcm: 'aes-128-gcm', aes256gcm: 'aes-256-gcm', chacha20poly1305: 'chacha20-poly1305' }[suite];
  const d = createDecipheriv(
    cipher as 'aes-128-gcm',
    key.subarray(0, key.length - 4),
    Buffer.concat([key.subarray(key.length - 4), esp.subarray(8, 16)]),
    { authTagLength: 16 },
  );
  d.setAAD(esp.subarray(0, 8));
  d.setAuthTag(esp.subarray(esp.length - 16));
  return Buffer.concat([d.update(esp.subarray(16, esp.length - 16)), d.final()]);
}

/** Registers an afterEach that closes every engine the returned function was given (returned as it is). */
export function closedAfterEach(): (engine: Engine) => Engine {
  const opened: Engine[] = [];
  afterEach(() => {
    for (const e of opened.splice(0)) e.close();
  });
  return (engine) => {
    opened.push(engine);
    return engine;
  };
}

/** A seeded xorshift32: r(n) is the next number in 0..n-1 (fuzz tests that replay from their seed). */
export function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}
