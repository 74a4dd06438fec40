// Security associations: validation of SaDesc (docs/engine.md §4), per-SA state, and the table with its two inbound
// lookups.
import { ipToU32, isIpv4, type Prefix } from '../../wire/addr.js';
import { AH_BYTES } from '../../wire/ah.js';
import { IpProto } from '../../wire/ipv4.js';
import { NSID_NONE, SKIP_SPI, decodeSkipHeader, type SkipHeader } from '../../wire/skip.js';
import { checkInboundRules, type SelectorTable } from '../inbound-rules.js';
import { KEY_BYTES, SkipAlg, type Coverage, type EspSuite, type MacAlg, type SaDesc } from '../types.js';
import { keyMaterial, type KeyMaterial } from './crypto.js';
import { ReplayWindow } from './replay.js';

export const DEFAULT_REPLAY_WINDOW = 1024;
export const DEFAULT_OUTER_TTL = 64;
export const MAX_SEQ = 0xffffffff;
/** SPI-mode SPIs start above IANA's reserved 1..255 (SKIP's SPI 1 lives there). */
export const MIN_SPI_MODE_SPI = 256;

export interface AhState {
  alg: MacAlg;
  key: KeyMaterial;
  spi: number;
  /** Out: last sequence number sent. */
  seq: number;
  coverage: Coverage;
  /** Whole AH in bytes. */
  length: number;
  window?: ReplayWindow;
}

export interface EspState {
  suite: EspSuite;
  key: KeyMaterial;
  spi: number;
  seq: number;
  window?: ReplayWindow;
}

export interface SaState {
  id: number;
  direction: 'out' | 'in';
  role: 'end' | 'nexthop';
  mode: 'skip' | 'spi';
  src: number;
  dst: number;
  skipBytes?: Uint8Array;
  skip?: SkipHeader;
  ah?: AhState;
  esp?: EspState;
  ttl: number;
  /** Out: packets this SA may seal (ENCAP, WRAP, OUTBOUND protect); undefined = no limit. */
  maxPackets?: bigint;
  /** Out: the FORWARD that seals this many packets says `rekey_due`; undefined = never. */
  softPackets?: bigint;
  /** In nexthop: a verified datagram not for this node may be relayed. */
  relay: boolean;
  /** In end: where the opened datagram may come from and go to. */
  selectors?: SelectorTable;
  /** In end: a datagram outside the selectors is punted (`selector`) instead of dropped. */
  selectorMissPunt: boolean;
  /** In end, selectorMiss `{ outbound }`: the policy table a miss from a source inside the selectors goes through. */
  selectorMissTable?: number;
  /** In nexthop, `plain`: the sources whose plain datagrams the policy table `table` classifies. */
  plain?: { src: Prefix[]; table: number };
  packets: bigint;
  bytes: bigint;
}

function fail(field: string, problem: string, fix: string): never {
  throw new RangeError(`SA ${field}: ${problem}; ${fix}`);
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `got ${String(value)}`, `use an integer in ${min}..${max}`);
  }
  return value;
}

function checkKey(field: string, key: unknown, alg: EspSuite | MacAlg): Uint8Array {
  if (!(key instanceof Uint8Array)) fail(field, 'is not a Uint8Array', 'pass the key bytes');
  const want = KEY_BYTES[alg];
  // The message names lengths only: key bytes never reach an error.
  if (key.length !== want)
    fail(field, `is ${key.length} bytes`, `${alg} needs ${want} bytes (key and 4-byte salt where it has one)`);
  return key;
}

/**
 * Validates a descriptor and builds the SA's state (windows for inbound SAs). Keys are copied last, once
 * everything else passed, so a refused descriptor leaves no copy behind.
 */
export function createSa(desc: SaDesc): SaState {
  const id = checkInteger('id', desc.id, 1, 0xffffffff);
  const where = `id ${id}`;
  if (desc.direction !== 'out' && desc.direction !== 'in')
    fail(`${where} direction`, `got ${String(desc.direction)}`, "use 'out' or 'in'");
  if (desc.role !== 'end' && desc.role !== 'nexthop')
    fail(`${where} role`, `got ${String(desc.role)}`, "use 'end' or 'nexthop'");
  if (desc.mode !== 'skip' && desc.mode !== 'spi')
    fail(`${where} mode`, `got ${String(desc.mode)}`, "use 'skip' or 'spi'");
  for (const field of ['src', 'dst'] as const) {
    if (typeof desc[field] !== 'string' || !isIpv4(desc[field]))
      fail(`${where} ${field}`, `got ${String(desc[field])}`, 'use a dotted IPv4 address such as 10.0.0.1');
  }
  const inbound = desc.direction === 'in';
  if (desc.role === 'nexthop') {
    if (!desc.ah) fail(`${where} ah`, 'is missing', "a 'nexthop' SA needs an ah block");
    if (desc.esp) fail(`${where} esp`, 'is set', "a 'nexthop' SA carries AH only: remove esp");
  } else {
    if (!desc.esp) fail(`${where} esp`, 'is missing', "an 'end' SA needs an esp block");
    if (desc.ah?.coverage !== undefined)
      fail(`${where} ah.coverage`, 'is set on an end SA', 'coverage applies to nexthop SAs only: remove it');
  }
  const spiRange = desc.mode === 'skip' ? [SKIP_SPI, SKIP_SPI] : [MIN_SPI_MODE_SPI, 0xffffffff];
  // Direction-specific fields (seq and ttl: out; replayWindow: in) are ignored on the other direction, so one
  // description serves both ends of a pair (the native path does the same).
  const seqOf = (field: string, seq: number | undefined) =>
    inbound || seq === undefined ? 0 : checkInteger(field, seq, 0, MAX_SEQ);
  const window = inbound ? (desc.replayWindow ?? DEFAULT_REPLAY_WINDOW) : DEFAULT_REPLAY_WINDOW;
  if (!Number.isInteger(window) || window < 64 || window > 4096 || window % 64 !== 0) {
    fail(`${where} replayWindow`, `got ${String(window)}`, 'use a multiple of 64 in 64..4096');
  }
  const floor =
    inbound && desc.replayFloor !== undefined ? checkInteger(`${where} replayFloor`, desc.replayFloor, 0, MAX_SEQ) : 0;
  const ttl = inbound || desc.ttl === undefined ? DEFAULT_OUTER_TTL : checkInteger(`${where} ttl`, desc.ttl, 1, 255);
  const maxPackets =
    inbound || desc.maxPackets === undefined
      ? undefined
      : checkInteger(`${where} maxPackets`, desc.maxPackets, 1, MAX_SEQ);
  const softPackets =
    inbound || desc.softPackets === undefined
      ? undefined
      : checkInteger(`${where} softPackets`, desc.softPackets, 1, MAX_SEQ);
  if (softPackets !== undefined && maxPackets !== undefined && softPackets > maxPackets) {
    fail(`${where} softPackets`, `${softPackets} exceeds maxPackets ${maxPackets}`, 'use a value up to maxPackets');
  }

  const a = desc.ah;
  if (a) {
    if (a.alg !== 'gmac-aes128' && a.alg !== 'hmac-sha256-128')
      fail(`${where} ah.alg`, `got ${String(a.alg)}`, "use 'gmac-aes128' or 'hmac-sha256-128'");
    if (a.coverage !== undefined && a.coverage !== 'full' && a.coverage !== 'headers')
      fail(`${where} ah.coverage`, `got ${String(a.coverage)}`, "use 'full' or 'headers'");
  }
  const e = desc.esp;
  if (e && !(e.suite in SkipAlg.crypt))
    fail(`${where} esp.suite`, `got ${String(e.suite)}`, "use 'aes128gcm', 'aes256gcm' or 'chacha20poly1305'");
  const ahSpi = a && checkInteger(`${where} ah.spi`, a.spi, spiRange[0], spiRange[1]);
  const espSpi = e && checkInteger(`${where} esp.spi`, e.spi, spiRange[0], spiRange[1]);
  const ahSeq = a && seqOf(`${where} ah.seq`, a.seq);
  const espSeq = e && seqOf(`${where} esp.seq`, e.seq);
  const ahKey = a && checkKey(`${where} ah.key`, a.key, a.alg);
  const espKey = e && checkKey(`${where} esp.key`, e.key, e.suite);
  const rules = checkInboundRules(desc, `SA ${where}`);
  let skip: { bytes: Uint8Array; header: SkipHeader } | undefined;
  if (desc.mode === 'skip') skip = checkSkipHeader(desc, where);
  else if (desc.skipHeader !== undefined)
    fail(`${where} skipHeader`, "is set on a 'spi' mode SA", "remove it or use mode 'skip'");

  return {
    id,
    direction: desc.direction,
    role: desc.role,
    mode: desc.mode,
    src: ipToU32(desc.src),
    dst: ipToU32(desc.dst),
    skipBytes: skip?.bytes,
    skip: skip?.header,
    ah: a && {
      alg: a.alg,
      spi: ahSpi!,
      seq: ahSeq!,
      coverage: a.coverage ?? 'full',
      length: AH_BYTES[a.alg],
      window: inbound ? new ReplayWindow(window, floor) : undefined,
      key: keyMaterial(ahKey!, a.alg !== 'hmac-sha256-128'),
    },
    esp: e && {
      suite: e.suite,
      spi: espSpi!,
      seq: espSeq!,
      window: inbound ? new ReplayWindow(window, floor) : undefined,
      key: keyMaterial(espKey!, true),
    },
    ttl,
    maxPackets: maxPackets === undefined ? undefined : BigInt(maxPackets),
    softPackets: softPackets === undefined ? undefined : BigInt(softPackets),
    relay: rules.relay,
    selectors: rules.selectors,
    selectorMissPunt: inbound && rules.selectorMissPunt,
    selectorMissTable: inbound ? rules.selectorMissTable : undefined,
    plain: inbound ? rules.plain : undefined,
    packets: 0n,
    bytes: 0n,
  };
}

/** The SKIP header must parse alone and announce this SA's first header and algorithms (docs/engine.md §6). */
function checkSkipHeader(desc: SaDesc, where: string): { bytes: Uint8Array; header: SkipHeader } {
  const bytes = desc.skipHeader;
  if (!(bytes instanceof Uint8Array))
    fail(`${where} skipHeader`, 'is missing', "a 'skip' mode SA needs the SKIP header bytes (src/keys builds them)");
  const parsed = decodeSkipHeader(bytes, 0);
  if (!parsed.ok) fail(`${where} skipHeader`, `does not parse (${parsed.reason})`, 'pass a header built by src/keys');
  if (parsed.length !== bytes.length)
    fail(
      `${where} skipHeader`,
      `has ${bytes.length - parsed.length} bytes after the header`,
      'pass exactly the header',
    );
  const h = parsed.header;
  const wantNext = desc.ah ? IpProto.AH : IpProto.ESP;
  if (h.nextHeader !== wantNext)
    fail(
      `${where} skipHeader`,
      `next header is ${h.nextHeader}`,
      `this SA's first header is ${desc.ah ? 'AH (51)' : 'ESP (50)'}`,
    );
  const wantCrypt = desc.esp ? SkipAlg.crypt[desc.esp.suite] : 0;
  const wantMac = desc.ah ? SkipAlg.mac[desc.ah.alg] : 0;
  if (h.cryptAlg !== wantCrypt)
    fail(`${where} skipHeader`, `Crypt Alg is ${h.cryptAlg}`, `set it to ${wantCrypt} for this SA`);
  if (h.macAlg !== wantMac) fail(`${where} skipHeader`, `MAC Alg is ${h.macAlg}`, `set it to ${wantMac} for this SA`);
  return { bytes: Uint8Array.from(bytes), header: h };
}

/** Out: whether the SA already sealed its `maxPackets` packets (the next one is PUNT `rekey`). */
export function packetLimitReached(sa: SaState): boolean {
  return sa.maxPackets !== undefined && sa.packets >= sa.maxPackets;
}

/** Out: counts one sealed packet of `bytes`; true for the one that brings the count to `softPackets`. */
export function countSealed(sa: SaState, bytes: number): boolean {
  sa.packets++;
  sa.bytes += BigInt(bytes);
  return sa.packets === sa.softPackets;
}

export function zeroKeys(sa: SaState): void {
  sa.ah?.key.material.fill(0);
  sa.esp?.key.material.fill(0);
}

/** SKIP key tuple (docs/engine.md §4.1): source NSID, MKID or outer source, n, Kij alg, wrapped Kp. */
export function skipTupleKey(h: SkipHeader, outerSrc: number): string {
  const identity = h.srcNsid === NSID_NONE ? outerSrc : h.srcMkid!;
  return `${h.srcNsid}/${identity}/${h.n}/${h.kijAlg}/${Buffer.from(h.wrappedKp).toString('hex')}`;
}

function spiKey(protocol: number, spi: number): string {
  return `${protocol}/${spi}`;
}

/** Inbound SKIP key tuples the table records (native/sa/table.h kMaxTuples): past it, none is recorded. */
const MAX_TUPLES = 1 << 17;

export class SaTable {
  private readonly byId = new Map<number, SaState>();
  private readonly bySpi = new Map<string, SaState>();
  private readonly byTuple = new Map<string, SaState>();
  /** Inbound SKIP SAs' descriptions without their keys: what a successor key inherits (./successors.ts). */
  private readonly templates = new Map<number, SaDesc>();
  /** Every inbound SKIP key tuple installed, with its n: a successor key is never one of them. */
  private readonly tuples = new Map<string, number>();
  /** The highest n of a tuple not recorded (the record was full); no fresh tuple installs until it left the window. */
  private unrecordedN: number | undefined;

  /** Throws why not; with `freshTuple`, also when `desc` is not an inbound SKIP tuple this table never held. */
  install(desc: SaDesc, freshTuple = false): void {
    const sa = createSa(desc);
    const clash = (problem: string, fix: string): never => {
      zeroKeys(sa);
      fail(`id ${sa.id}`, problem, fix);
    };
    if (this.byId.has(sa.id)) clash('is already installed', 'remove it first or pick another id');
    const lookup = inboundKey(sa);
    const skipIn = lookup !== undefined && sa.mode === 'skip';
    if (freshTuple && (!skipIn || this.unrecordedN !== undefined))
      clash('is no fresh key tuple', 'key it in the control plane');
    if (lookup) {
      const table = sa.mode === 'skip' ? this.byTuple : this.bySpi;
      const other = table.get(lookup);
      if (other)
        clash(
          `has the same inbound ${sa.mode === 'skip' ? 'SKIP key tuple' : 'protocol and SPI'} as SA ${other.id}`,
          'use a fresh Kp/SPI or remove the other SA first',
        );
      if (skipIn && freshTuple && this.tuples.has(lookup))
        clash('has a key tuple held before', 'key it in the control plane');
      table.set(lookup, sa);
    }
    if (skipIn) {
      if (this.tuples.size < MAX_TUPLES || this.tuples.has(lookup)) this.tuples.set(lookup, sa.skip!.n);
      else this.unrecordedN = Math.max(this.unrecordedN ?? 0, sa.skip!.n);
      this.templates.set(sa.id, keyless(desc));
    }
    this.byId.set(sa.id, sa);
  }

  /** Forgets the key tuples held before with a counter below `n` (outside the window). */
  forgetTuplesBefore(n: number): void {
    for (const [key, held] of this.tuples) if (held < n) this.tuples.delete(key);
    if (this.unrecordedN !== undefined && this.unrecordedN < n) this.unrecordedN = undefined;
  }

  /** What an inbound SKIP SA was installed with, keys left out. */
  template(id: number): SaDesc | undefined {
    return this.templates.get(id);
  }

  remove(id: number): boolean {
    const sa = this.byId.get(id);
    if (!sa) return false;
    this.byId.delete(id);
    this.templates.delete(id);
    const lookup = inboundKey(sa);
    if (lookup) (sa.mode === 'skip' ? this.byTuple : this.bySpi).delete(lookup);
    zeroKeys(sa);
    return true;
  }

  get(id: number): SaState | undefined {
    return this.byId.get(id);
  }

  findBySpi(protocol: number, spi: number): SaState | undefined {
    return this.bySpi.get(spiKey(protocol, spi));
  }

  findBySkip(h: SkipHeader, outerSrc: number): SaState | undefined {
    return this.byTuple.get(skipTupleKey(h, outerSrc));
  }

  clear(): void {
    for (const sa of this.byId.values()) zeroKeys(sa);
    this.byId.clear();
    this.templates.clear();
    this.bySpi.clear();
    this.byTuple.clear();
  }
}

/** `desc` without key bytes (an inheriting SA gets its own). */
function keyless(desc: SaDesc): SaDesc {
  const none = new Uint8Array(0);
  return {
    ...desc,
    ...(desc.ah && { ah: { ...desc.ah, key: none } }),
    ...(desc.esp && { esp: { ...desc.esp, key: none } }),
  };
}

/** The key an inbound SA is found by, or undefined for out SAs. */
function inboundKey(sa: SaState): string | undefined {
  if (sa.direction !== 'in') return undefined;
  if (sa.mode === 'skip') return skipTupleKey(sa.skip!, sa.src);
  return sa.ah ? spiKey(IpProto.AH, sa.ah.spi) : spiKey(IpProto.ESP, sa.esp!.spi);
}
