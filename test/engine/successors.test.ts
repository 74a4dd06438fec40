// Successor keys (docs/engine.md §4.3): the engine keys a known peer's next SKIP packet key itself, inheriting from an
// SA the control plane keyed, and punts unknown_key as before for everything else — a forged or replayed key, a tuple
// it held before, one whose replay floor was restored, a counter outside the window, another layer, path or
// algorithm, no id left. Both paths, same outcomes and bytes.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { createEngine, Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import type { EngineImpl, KeyedSuccessor, SuccessorConfig } from '../../src/engine/types.js';
import { digest52 } from '../../src/keys/digest52.js';
import { packetKeys, wrapKp } from '../../src/keys/derive.js';
import { KEY_BYTES, SkipAlg, type EspSuite } from '../../src/wire/algorithms.js';
import { IpProto } from '../../src/wire/ipv4.js';
import { encodeSkipHeader, NSID_IPV4, NSID_NONE } from '../../src/wire/skip.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { ADDR, IMPLS, bytes, closedAfterEach, datagram, hex, outcomeOf, runOne, type RunResult } from './fixtures.js';

const track = closedAfterEach();
const PEER = ADDR.sgw1; // the outer source of the peer's packets
const SELF = ADDR.sgw0;
const N = 0x4320;
const KIJN = bytes(32, 77);
const FAR = 4_000_000_000; // validUntil: unix seconds in 2096
const IDS = [500, 501, 502];
const TEMPLATE = 1001;

interface Key {
  header: Uint8Array;
  /** The sender's SA (ENCAP for end, WRAP for nexthop). */
  out: SaDesc;
  /** The same key as the control plane would install it. */
  in: SaDesc;
}

/** A packet key from PEER to SELF under `kijn` for counter `n`: its header, its sending and receiving SAs. */
function packetKey(
  seed: number,
  o: { kijn?: Uint8Array; n?: number; suite?: EspSuite; nexthop?: boolean; srcMkid?: string } = {},
): Key {
  const kijn = o.kijn ?? KIJN;
  const kp = bytes(32, seed);
  const suite = o.suite ?? 'aes256gcm';
  const nexthop = o.nexthop ?? false;
  const cryptAlg = nexthop ? 0 : SkipAlg.crypt[suite];
  const macAlg = nexthop ? SkipAlg.mac['gmac-aes128'] : 0;
  const header = encodeSkipHeader({
    srcNsid: o.srcMkid ? NSID_IPV4 : NSID_NONE,
    srcMkid: o.srcMkid ? ipToU32(o.srcMkid) : undefined,
    dstNsid: NSID_NONE,
    nextHeader: nexthop ? IpProto.AH : IpProto.ESP,
    n: o.n ?? N,
    kijAlg: SkipAlg.kij['aes256-kw'],
    cryptAlg,
    macAlg,
    compAlg: 0,
    wrappedKp: wrapKp(kijn, kp),
  });
  const keys = packetKeys(
    kijn,
    header.subarray(12, 52),
    nexthop ? undefined : { alg: cryptAlg, length: KEY_BYTES[suite] },
    nexthop ? { alg: macAlg, length: KEY_BYTES['gmac-aes128'] } : undefined,
  )!;
  const base = (direction: 'in' | 'out', id: number): SaDesc => ({
    id,
    direction,
    role: nexthop ? 'nexthop' : 'end',
    mode: 'skip',
    src: PEER,
    dst: SELF,
    skipHeader: header,
    ...(nexthop
      ? { ah: { alg: 'gmac-aes128', key: Uint8Array.from(keys.mac!), spi: 1, coverage: 'full' } }
      : { esp: { suite, key: Uint8Array.from(keys.crypt!), spi: 1 } }),
  });
  return { header, out: base('out', 1), in: base('in', TEMPLATE) };
}

const config = (over: Partial<SuccessorConfig> = {}): SuccessorConfig => ({
  validUntil: FAR,
  windowStart: N - 1,
  ids: IDS,
  peers: [{ address: PEER, templates: [TEMPLATE], kijns: [{ n: N, kijn: KIJN }] }],
  ...over,
});

/** A receiving engine of `impl` with the first key's SA (the template) installed and `successors` set. */
function receiver(impl: EngineImpl, template: SaDesc, successors: SuccessorConfig = config()): Engine {
  const engine = track(createEngine(impl));
  engine.setLocalAddresses([SELF]);
  engine.installSa(template);
  engine.setSuccessors(successors);
  return engine;
}

/** What the peer sends under `key`: `count` datagrams sealed by ENCAP (end) or WRAP (nexthop), seq 1, 2, … */
function sealed(key: Key, count = 1, inner = datagram(200, { src: ADDR.ch0, dst: ADDR.smnHome })): Uint8Array[] {
  const sender = track(createEngine('native'));
  sender.installSa(key.out);
  return Array.from({ length: count }, () => {
    const r = runOne(sender, key.out.role === 'end' ? Op.ENCAP : Op.WRAP, inner, key.out.id);
    expect(r.verdict).toBe(Verdict.FORWARD);
    return r.packet;
  });
}

interface Run {
  results: RunResult[];
  keyed: (Omit<KeyedSuccessor, 'skipHeader'> & { skipHeader: string })[];
}

/**
 * `packets` through INBOUND on a fresh receiver of each path (`prepare` may change it first): the same outcomes, bytes
 * and keyed SAs on both. Returns the native run.
 */
function onBoth(
  template: SaDesc,
  packets: Uint8Array[],
  successors?: SuccessorConfig,
  prepare?: (engine: Engine) => void,
): Run {
  const [ts, native] = IMPLS.map((impl): Run => {
    const engine = receiver(impl, template, successors);
    prepare?.(engine);
    const results = packets.map((p) => runOne(engine, Op.INBOUND, p));
    return { results, keyed: engine.takeSuccessors().map((k) => ({ ...k, skipHeader: hex(k.skipHeader) })) };
  });
  expect(ts.results.map(outcomeOf)).toEqual(native.results.map(outcomeOf));
  expect(ts.results.map((r) => hex(r.packet))).toEqual(native.results.map((r) => hex(r.packet)));
  expect(ts.keyed).toEqual(native.keyed);
  return native;
}

const unknownKey = { verdict: Verdict.PUNT, reason: Reason.unknown_key, sa: 0, nexthop: 0 };
const delivered = (sa: number) => ({ verdict: Verdict.DELIVER, reason: Reason.none, sa, nexthop: 0 });

const first = packetKey(1);
const next = packetKey(2);

describe('successor keys (docs/engine.md §4.3), both paths', () => {
  it("keys a known peer's next packet key: its packets are delivered under one new SA, the first id given", () => {
    const inner = datagram(200, { src: ADDR.ch0, dst: ADDR.smnHome });
    const run = onBoth(first.in, sealed(next, 2, inner));
    expect(run.results.map(outcomeOf)).toEqual([delivered(500), delivered(500)]);
    expect(hex(run.results[0].packet)).toBe(hex(inner));
    expect(run.keyed).toEqual([
      { id: 500, template: TEMPLATE, role: 'end', src: PEER, dst: SELF, skipHeader: hex(next.header) },
    ]);
  });

  it("the new SA is the template's: a datagram outside its selectors is punted as the template would", () => {
    const template: SaDesc = {
      ...first.in,
      selectors: { src: [`${ADDR.ch0}/32`], dst: [`${ADDR.smnHome}/32`] },
      selectorMiss: 'punt',
    };
    const outside = datagram(200, { src: ADDR.ha, dst: ADDR.smnHome });
    const run = onBoth(template, [...sealed(next, 1), ...sealed(packetKey(3), 1, outside)]);
    expect(run.results.map(outcomeOf)).toEqual([
      delivered(500),
      { verdict: Verdict.PUNT, reason: Reason.selector, sa: 501, nexthop: 0 },
    ]);
  });

  it('keys a Next-hop layer from the template of one: the datagram it protected is judged as under the first key', () => {
    const firstHop = packetKey(1, { nexthop: true });
    const run = onBoth(firstHop.in, sealed(packetKey(4, { nexthop: true })));
    expect(run.results.map(outcomeOf)).toEqual([
      { verdict: Verdict.PUNT, reason: Reason.nexthop_plain, sa: 500, nexthop: 0 },
    ]);
  });

  it('a forged wrapped Kp (another Kijn) is punted, and takes no id', () => {
    const forged = packetKey(5, { kijn: bytes(32, 99) });
    const run = onBoth(first.in, [...sealed(forged), ...sealed(next)]);
    expect(run.results.map(outcomeOf)).toEqual([unknownKey, delivered(500)]);
    expect(run.keyed.map((k) => k.id)).toEqual([500]);
  });

  it('a key tuple the engine held before (the control plane retired it) goes back to the control plane', () => {
    const retired = { ...next.in, id: 2002 };
    const run = onBoth(first.in, sealed(next), undefined, (engine) => {
      engine.installSa(retired);
      engine.removeSa(retired.id);
    });
    expect(run.results.map(outcomeOf)).toEqual([unknownKey]);
    expect(run.keyed).toEqual([]);
  });

  it('a tuple held with a counter below the window start is forgotten', () => {
    const old = packetKey(6, { n: N - 2 });
    const successors = config({
      peers: [{ address: PEER, templates: [TEMPLATE], kijns: [{ n: N - 2, kijn: KIJN }] }],
    });
    const run = onBoth(first.in, sealed(old), successors, (engine) => {
      engine.installSa({ ...old.in, id: 2002 });
      engine.removeSa(2002);
      engine.setSuccessors(successors); // windowStart N - 1 > N - 2
    });
    expect(run.results.map(outcomeOf)).toEqual([delivered(500)]);
  });

  it('a tuple whose digest is blocked (a replay floor restored after a restart) is punted', () => {
    const digest = digest52(Buffer.concat([Buffer.from(PEER), next.header]));
    const run = onBoth(first.in, sealed(next), config({ blocked: [digest] }));
    expect(run.results.map(outcomeOf)).toEqual([unknownKey]);
    const other = onBoth(first.in, sealed(next), config({ blocked: [digest + 1] }));
    expect(other.results.map(outcomeOf)).toEqual([delivered(500)]);
  });

  it('a counter without its Kijn, or a window past its validUntil, is punted', () => {
    expect(onBoth(first.in, sealed(packetKey(7, { n: N + 1 }))).results.map(outcomeOf)).toEqual([unknownKey]);
    const stale = config({ validUntil: Math.floor(Date.now() / 1000) - 1 });
    expect(onBoth(first.in, sealed(next), stale).results.map(outcomeOf)).toEqual([unknownKey]);
  });

  it('another peer, path, algorithm or source NSID, or no template, is punted', () => {
    const cases: [SaDesc, Key, SuccessorConfig?][] = [
      [
        first.in,
        next,
        config({ peers: [{ address: ADDR.sgw2, templates: [TEMPLATE], kijns: [{ n: N, kijn: KIJN }] }] }),
      ],
      [{ ...first.in, dst: ADDR.sgw2 }, next],
      [first.in, packetKey(8, { suite: 'chacha20poly1305' })],
      [first.in, packetKey(9, { srcMkid: PEER })],
      [first.in, next, config({ peers: [{ address: PEER, templates: [], kijns: [{ n: N, kijn: KIJN }] }] })],
      [first.in, packetKey(10, { nexthop: true })],
    ];
    for (const [template, key, successors] of cases)
      expect(onBoth(template, sealed(key), successors).results.map(outcomeOf)).toEqual([unknownKey]);
  });

  it('keys as many as it has ids, then punts until the control plane gives more', () => {
    const keys = [2, 11, 12, 13].map((seed) => packetKey(seed));
    const run = onBoth(
      first.in,
      keys.flatMap((k) => sealed(k)),
    );
    expect(run.results.map(outcomeOf)).toEqual([delivered(500), delivered(501), delivered(502), unknownKey]);
    const again = onBoth(first.in, sealed(keys[3]), config({ ids: [900] }));
    expect(again.results.map(outcomeOf)).toEqual([delivered(900)]);
  });

  it('a closed engine refuses setSuccessors', () => {
    for (const impl of IMPLS) {
      const engine = createEngine(impl);
      engine.close();
      expect(() => engine.setSuccessors(config())).toThrow(/closed/);
    }
  });

  it('a malformed configuration is refused with the field named', () => {
    for (const impl of IMPLS) {
      const engine = track(createEngine(impl));
      expect(() => engine.setSuccessors(config({ ids: [-1] }))).toThrow(/ids\[0\]/);
      const short = { address: PEER, templates: [], kijns: [{ n: N, kijn: new Uint8Array(16) }] };
      expect(() => engine.setSuccessors(config({ peers: [short] }))).toThrow(/kijns\[0\]\.kijn must be 32 bytes/);
      expect(() => engine.setSuccessors(config({ blocked: [2 ** 53] }))).toThrow(/blocked\[0\]/);
    }
  });
});
