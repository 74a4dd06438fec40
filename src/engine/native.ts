// The native data path (native/): validates SA descriptions with clear errors, then hands them to the addon.
import { ipToU32, parsePrefix, u32ToIp } from '../wire/addr.js';
import { SKIP_SPI, decodeSkipHeader } from '../wire/skip.js';
import { SELECTOR_MISS_CODE, checkInboundRules, flattenPrefixes } from './inbound-rules.js';
import { checkPolicies, flattenPolicies } from './policy.js';
import { flattenSuccessors } from './successors.js';
import {
  COUNTER_SLOTS,
  KEY_BYTES,
  SkipAlg,
  type BatchLike,
  type Coverage,
  type Engine,
  type EspSuite,
  type KeyedSuccessor,
  type MacAlg,
  type Policy,
  type Route,
  type SaDesc,
  type SaStats,
  type SuccessorConfig,
} from './types.js';

// What installSa hands the addon (binding.abi's ahAlgs, espSuites, saFields, minSpi, maxReplayWindow;
// test/engine/abi.test.ts compares).
export const AH_ALG_CODE: Readonly<Record<MacAlg, number>> = { 'gmac-aes128': 1, 'hmac-sha256-128': 2 };
export const ESP_SUITE_CODE: Readonly<Record<EspSuite, number>> = { aes128gcm: 1, aes256gcm: 2, chacha20poly1305: 3 };
export const SA_FIELD_CODE = {
  direction: { out: 0, in: 1 },
  role: { end: 0, nexthop: 1 },
  mode: { skip: 0, spi: 1 },
  coverage: { full: 0, headers: 1 },
} as const satisfies {
  direction: Record<SaDesc['direction'], number>;
  role: Record<SaDesc['role'], number>;
  mode: Record<SaDesc['mode'], number>;
  coverage: Record<Coverage, number>;
};
export const MIN_SPI = 256;
export const MAX_REPLAY_WINDOW = 4096;

/** installSa's numeric fields (native/node/engine.h MIPSEC_SA_WORDS): the binding says where each goes. */
export const SA_WORD_NAMES = [
  'id',
  'direction',
  'role',
  'mode',
  'src',
  'dst',
  'ahAlg',
  'ahSpi',
  'ahSeq',
  'coverage',
  'espSuite',
  'espSpi',
  'espSeq',
  'replayWindow',
  'replayFloor',
  'ttl',
  'maxPackets',
  'softPackets',
  'relay',
  'selectorMiss',
  'selectorMissTable',
  'selectorTunnelSrc',
  'selectorTunnelDst',
  'plainTable',
] as const;
export type SaWordName = (typeof SA_WORD_NAMES)[number];

/** Where each installSa word goes (binding.abi.saWords) and how many there are (binding.abi.saWordCount). */
export interface SaWordLayout {
  index: Readonly<Record<SaWordName, number>>;
  count: number;
}

/** The binding's SA word layout, checked to place every field; an addon built from other sources fails here. */
export function saWordLayout(abi: { saWords?: unknown; saWordCount?: unknown }): SaWordLayout {
  const index = abi.saWords as Record<string, unknown> | undefined;
  const count = abi.saWordCount;
  const bad = SA_WORD_NAMES.filter((name) => {
    const at = index?.[name];
    return typeof at !== 'number' || typeof count !== 'number' || !Number.isInteger(at) || at < 0 || at >= count;
  });
  if (typeof count !== 'number' || bad.length > 0 || Object.keys(index ?? {}).length !== count) {
    const fields = bad.length > 0 ? ` (${bad.join(', ')})` : '';
    throw new Error(`the addon's SA layout (binding.abi.saWords) does not match this package${fields}: rebuild it`);
  }
  return { index: index as Record<SaWordName, number>, count };
}

function fail(sa: Partial<SaDesc>, message: string): never {
  throw new RangeError(`installSa(id ${sa.id}): ${message}`);
}

function u32(sa: SaDesc, field: string, value: unknown, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    fail(sa, `${field} must be an integer in 0..4294967295, got ${String(value)}`);
  }
  return value;
}

function key(sa: SaDesc, field: string, value: unknown, alg: EspSuite | MacAlg): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(sa, `${field} must be a Uint8Array`);
  if (value.length !== KEY_BYTES[alg]) {
    fail(
      sa,
      `${field} must be ${KEY_BYTES[alg]} bytes for ${alg} (key and 4-byte salt where the algorithm has one), got ` +
        `${value.length}`,
    );
  }
  return value;
}

function address(sa: SaDesc, field: string, value: unknown): number {
  if (typeof value !== 'string') fail(sa, `${field} must be a dotted IPv4 address`);
  try {
    return ipToU32(value);
  } catch (err) {
    fail(sa, `${field}: ${(err as Error).message}`);
  }
}

/**
 * Checks an SaDesc against docs/engine.md §4 and flattens it into the addon's installSa arguments: the numeric fields
 * in one Uint32Array (`layout`), then skipHeader, ahKey, espKey, selectorSrc, selectorDst, plainSrc.
 */
export function nativeSaArgs(sa: SaDesc, layout: SaWordLayout): unknown[] {
  if (typeof sa !== 'object' || sa === null) throw new TypeError('installSa expects an SaDesc object');
  const id = u32(sa, 'id', sa.id);
  if (id === 0) fail(sa, 'id must be > 0');
  if (sa.direction !== 'out' && sa.direction !== 'in')
    fail(sa, `direction must be 'out' or 'in', got ${String(sa.direction)}`);
  if (sa.role !== 'end' && sa.role !== 'nexthop') fail(sa, `role must be 'end' or 'nexthop', got ${String(sa.role)}`);
  if (sa.mode !== 'skip' && sa.mode !== 'spi') fail(sa, `mode must be 'skip' or 'spi', got ${String(sa.mode)}`);
  const { ah, esp } = sa;
  if (sa.role === 'nexthop' && (!ah || esp)) fail(sa, "role 'nexthop' needs ah and no esp (it only authenticates)");
  if (sa.role === 'end' && !esp) fail(sa, "role 'end' needs esp (ah is optional)");
  if (ah && !(ah.alg in AH_ALG_CODE))
    fail(sa, `ah.alg must be 'gmac-aes128' or 'hmac-sha256-128', got ${String(ah.alg)}`);
  if (esp && !(esp.suite in ESP_SUITE_CODE))
    fail(sa, `esp.suite must be 'aes128gcm', 'aes256gcm' or 'chacha20poly1305', got ${String(esp.suite)}`);
  if (ah?.coverage !== undefined && ah.coverage !== 'full' && ah.coverage !== 'headers')
    fail(sa, `ah.coverage must be 'full' or 'headers'`);
  if (ah?.coverage !== undefined && sa.role !== 'nexthop')
    fail(sa, "ah.coverage applies to role 'nexthop' only; remove it");
  const ahSpi = ah ? u32(sa, 'ah.spi', ah.spi) : 0;
  const espSpi = esp ? u32(sa, 'esp.spi', esp.spi) : 0;

  if (sa.mode === 'spi') {
    if (sa.skipHeader !== undefined) fail(sa, "skipHeader is for mode 'skip'; remove it or use mode 'skip'");
    if (ah && ahSpi < MIN_SPI) fail(sa, `ah.spi must be >= ${MIN_SPI} in mode 'spi', got ${ahSpi}`);
    if (esp && espSpi < MIN_SPI) fail(sa, `esp.spi must be >= ${MIN_SPI} in mode 'spi', got ${espSpi}`);
  } else {
    if (!(sa.skipHeader instanceof Uint8Array))
      fail(sa, "mode 'skip' needs skipHeader (build it with encodeSkipHeader)");
    if (ah && ahSpi !== SKIP_SPI) fail(sa, `ah.spi must be ${SKIP_SPI} (SKIP_SPI) in mode 'skip', got ${ahSpi}`);
    if (esp && espSpi !== SKIP_SPI) fail(sa, `esp.spi must be ${SKIP_SPI} (SKIP_SPI) in mode 'skip', got ${espSpi}`);
    const parsed = decodeSkipHeader(sa.skipHeader, 0);
    if (!parsed.ok) fail(sa, `skipHeader does not parse (${parsed.reason}); build it with encodeSkipHeader`);
    if (parsed.length !== sa.skipHeader.length)
      fail(
        sa,
        `skipHeader has ${sa.skipHeader.length - parsed.length} bytes after the SKIP header; pass the header alone`,
      );
    const h = parsed.header;
    const wantNext = ah ? 51 : 50;
    if (h.nextHeader !== wantNext)
      fail(sa, `skipHeader next header must be ${wantNext} (${ah ? 'AH' : 'ESP'} follows), got ${h.nextHeader}`);
    const wantCrypt = esp ? SkipAlg.crypt[esp.suite] : 0;
    if (h.cryptAlg !== wantCrypt)
      fail(sa, `skipHeader cryptAlg must be ${wantCrypt} for ${esp ? esp.suite : "role 'nexthop'"}, got ${h.cryptAlg}`);
    const wantMac = ah ? SkipAlg.mac[ah.alg] : 0;
    if (h.macAlg !== wantMac)
      fail(sa, `skipHeader macAlg must be ${wantMac} for ${ah ? ah.alg : 'an SA without AH'}, got ${h.macAlg}`);
  }
  // Direction-specific fields (seq, ttl out; replayWindow in) are ignored on the other direction,
  // so one description can be installed as both ends of a pair.
  const inbound = sa.direction === 'in';
  const replayWindow = inbound ? u32(sa, 'replayWindow', sa.replayWindow, 1024) : 1024;
  if (replayWindow < 64 || replayWindow > MAX_REPLAY_WINDOW || replayWindow % 64 !== 0) {
    fail(sa, `replayWindow must be a multiple of 64 in 64..${MAX_REPLAY_WINDOW}, got ${replayWindow}`);
  }
  const replayFloor = inbound ? u32(sa, 'replayFloor', sa.replayFloor, 0) : 0;
  const ttl = inbound ? 64 : u32(sa, 'ttl', sa.ttl, 64);
  if (ttl < 1 || ttl > 255) fail(sa, `ttl must be 1..255, got ${ttl}`);
  // Out only (ignored on in SAs, like seq and ttl); 0 tells the addon "no limit".
  const maxPackets = inbound || sa.maxPackets === undefined ? 0 : sa.maxPackets;
  if (
    !Number.isInteger(maxPackets) ||
    maxPackets < 0 ||
    maxPackets > 0xffffffff ||
    (!inbound && sa.maxPackets !== undefined && maxPackets === 0)
  ) {
    fail(sa, `maxPackets must be an integer in 1..4294967295 (omit it for no limit), got ${String(sa.maxPackets)}`);
  }
  const softPackets = inbound || sa.softPackets === undefined ? 0 : sa.softPackets;
  if (
    !Number.isInteger(softPackets) ||
    softPackets < 0 ||
    softPackets > 0xffffffff ||
    (!inbound && sa.softPackets !== undefined && softPackets === 0)
  ) {
    fail(sa, `softPackets must be an integer in 1..4294967295 (omit it for no event), got ${String(sa.softPackets)}`);
  }
  if (maxPackets !== 0 && softPackets > maxPackets)
    fail(sa, `softPackets ${softPackets} exceeds maxPackets ${maxPackets}`);
  const rules = checkInboundRules(sa, `installSa(id ${sa.id})`);

  const words = new Uint32Array(layout.count);
  const put = (name: SaWordName, value: number) => {
    words[layout.index[name]] = value;
  };
  put('id', id);
  put('direction', SA_FIELD_CODE.direction[sa.direction]);
  put('role', SA_FIELD_CODE.role[sa.role]);
  put('mode', SA_FIELD_CODE.mode[sa.mode]);
  put('src', address(sa, 'src', sa.src));
  put('dst', address(sa, 'dst', sa.dst));
  put('ahAlg', ah ? AH_ALG_CODE[ah.alg] : 0);
  put('ahSpi', ahSpi);
  put('ahSeq', ah && !inbound ? u32(sa, 'ah.seq', ah.seq, 0) : 0);
  put('coverage', SA_FIELD_CODE.coverage[ah?.coverage ?? 'full']);
  put('espSuite', esp ? ESP_SUITE_CODE[esp.suite] : 0);
  put('espSpi', espSpi);
  put('espSeq', esp && !inbound ? u32(sa, 'esp.seq', esp.seq, 0) : 0);
  put('replayWindow', replayWindow);
  put('replayFloor', replayFloor);
  put('ttl', ttl);
  put('maxPackets', maxPackets);
  put('softPackets', softPackets);
  put('relay', rules.relay ? 1 : 0);
  put(
    'selectorMiss',
    !inbound
      ? SELECTOR_MISS_CODE.drop
      : rules.selectorMissTable !== undefined
        ? SELECTOR_MISS_CODE.outbound
        : rules.selectorMissPunt
          ? SELECTOR_MISS_CODE.punt
          : SELECTOR_MISS_CODE.drop,
  );
  put('selectorMissTable', inbound ? (rules.selectorMissTable ?? 0) : 0);
  put('selectorTunnelSrc', rules.selectors?.tunnel?.src ?? 0);
  put('selectorTunnelDst', rules.selectors?.tunnel?.dst ?? 0);
  const plain = inbound ? rules.plain : undefined;
  put('plainTable', plain ? plain.table : 0);
  return [
    words,
    sa.skipHeader,
    ah ? key(sa, 'ah.key', ah.key, ah.alg) : undefined,
    esp ? key(sa, 'esp.key', esp.key, esp.suite) : undefined,
    rules.selectors && flattenPrefixes(rules.selectors.src),
    rules.selectors && flattenPrefixes(rules.selectors.dst),
    plain && flattenPrefixes(plain.src),
  ];
}

export class NativeEngine implements Engine {
  readonly impl = 'native' as const;
  private readonly engine: any;
  private readonly counterView: BigUint64Array;
  private readonly closeHooks = new Set<() => void>();
  /** The addon's exports this engine came from (the I/O loop is built from the same ones). */
  readonly binding: any;

  private readonly saWords: SaWordLayout;

  constructor(binding: any) {
    this.binding = binding;
    this.saWords = saWordLayout(binding.abi);
    this.engine = new binding.Engine();
    this.counterView = new BigUint64Array(this.engine.counters() as ArrayBuffer, 0, COUNTER_SLOTS);
  }

  installSa(sa: SaDesc): void {
    this.engine.installSa(...nativeSaArgs(sa, this.saWords));
  }

  removeSa(id: number): void {
    this.engine.removeSa(id);
  }

  setSuccessors(config: SuccessorConfig): void {
    const { words, kijns, blocked } = flattenSuccessors(config);
    this.engine.setSuccessors(words, kijns, blocked);
    kijns.fill(0);
  }

  takeSuccessors(): KeyedSuccessor[] {
    const keyed = this.engine.takeSuccessors() as (Omit<KeyedSuccessor, 'src' | 'dst'> & {
      src: number;
      dst: number;
    })[];
    return keyed.map((k) => ({ ...k, src: u32ToIp(k.src), dst: u32ToIp(k.dst) }));
  }

  setRoutes(routes: readonly Route[]): void {
    const flat = new Uint32Array(routes.length * 3);
    routes.forEach((route, i) => {
      const prefix = parsePrefix(route.prefix);
      if (!Number.isInteger(route.sa) || route.sa < 0 || route.sa > 0xffffffff) {
        throw new RangeError(
          `route ${route.prefix}: sa must be an SA id or 0 (forward as is), got ${String(route.sa)}`,
        );
      }
      flat.set([prefix.network, prefix.length, route.sa], i * 3);
    });
    this.engine.setRoutes(flat);
  }

  setPolicies(policies: readonly Policy[]): void {
    this.engine.setPolicies(flattenPolicies(checkPolicies(policies)));
  }

  setLocalAddresses(addresses: readonly string[]): void {
    this.engine.setLocalAddresses(Uint32Array.from(addresses, (a) => ipToU32(a)));
  }

  process(batch: BatchLike): void {
    this.engine.process(batch.buffer, batch.desc, batch.count, batch.slotSize);
  }

  processAsync(batch: BatchLike): Promise<void> {
    return this.engine.processAsync(batch.buffer, batch.desc, batch.count, batch.slotSize);
  }

  /** A live view over the addon's own counter memory: reading it costs no call. */
  counters(): BigUint64Array {
    return this.counterView;
  }

  saStats(id: number): SaStats | undefined {
    return this.engine.saStats(id);
  }

  /** The addon's Engine object, for native components that drive it from their own threads (src/engine/io.ts). */
  get addonEngine(): unknown {
    return this.engine;
  }

  /** Runs `hook` first when the engine closes (an I/O loop stops there); returns a function that unregisters it. */
  onClose(hook: () => void): () => void {
    this.closeHooks.add(hook);
    return () => this.closeHooks.delete(hook);
  }

  close(): void {
    for (const hook of [...this.closeHooks]) hook();
    this.closeHooks.clear();
    this.engine.close();
  }
}
