// What the benchmark's gateway process (gateway.ts) runs: per namespace one engine + I/O loop with
// manually keyed SAs, outbound policies and next-hop routes. The parent builds it with fresh random
// keys and hands it over on stdin, so no key is ever written to a file.
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, SkipAlg, type Policy, type Route, type SaDesc } from '../../engine/types.js';
import { IpProto } from '../../wire/ipv4.js';
import { NSID_NONE, SKIP_SPI, encodeSkipHeader } from '../../wire/skip.js';

export type DataPath = 'native' | 'ts';
export type SaMode = 'skip' | 'spi';
/** How gateways carry sealed packets: raw IPv4 (the draft's wire) or whole inside UDP (docs/engine.md §9.1). */
export type Transport = 'udp' | 'raw';
/** The UDP transport's port between the benchmark's gateways. */
export const BENCH_UDP_PORT = 4741;
/** What the UDP transport adds to every sealed packet: IPv4 (20) + UDP (8). */
export const UDP_TRANSPORT_OVERHEAD = 28;

export interface NodeSpec {
  netns: string;
  tun: string;
  tunMtu: number;
  /** The addresses SAs end at on this node. */
  local: string[];
  sas: SaDesc[];
  policies: Policy[];
  routes: Route[];
}

export interface GatewaySpec {
  /**
   * native: the workers transform every packet. ts: the native engine holds no SAs, so every packet
   * is punted to JS, transformed by the TS reference engine and re-injected into the same loop.
   */
  dataPath: DataPath;
  workers: number;
  /** The UDP transport's port; absent: raw IPv4. */
  udpPort?: number;
  /** The I/O loops' pollMicros (0: workers sleep at once). */
  pollMicros?: number;
  nodes: NodeSpec[];
}

/** JSON with byte arrays as {"hex": …}. */
export function encodeSpec(spec: GatewaySpec): string {
  return JSON.stringify(spec, (_key, value: unknown) =>
    value instanceof Uint8Array ? { hex: Buffer.from(value).toString('hex') } : value,
  );
}

/** The bytes of a {"hex": …} object (its only key), else undefined. */
function hexBytes(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { hex } = value as { hex?: unknown };
  if (typeof hex !== 'string' || Object.keys(value).length !== 1) return undefined;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function decodeSpec(text: string): GatewaySpec {
  const spec = JSON.parse(text, (_key, value: unknown) => hexBytes(value) ?? value) as GatewaySpec;
  if (spec?.dataPath !== 'native' && spec?.dataPath !== 'ts')
    throw new Error('gateway spec: dataPath must be native or ts');
  if (!Array.isArray(spec.nodes) || spec.nodes.length === 0)
    throw new Error('gateway spec: nodes must be a non-empty array');
  return spec;
}

/** Zeroes every key and SKIP header of a spec once the engines hold their own copies. */
export function wipeSpec(spec: GatewaySpec): void {
  for (const node of spec.nodes) {
    for (const sa of node.sas) {
      sa.esp?.key.fill(0);
      sa.ah?.key.fill(0);
    }
  }
}

let nextN = 1;

/** A SKIP header from `src` (NSID 0: the outer source names the key) with a fresh counter and wrapped-key bytes. */
function skipHeader(nextHeader: number, cryptAlg: number, macAlg: number): Uint8Array {
  return encodeSkipHeader({
    srcNsid: NSID_NONE,
    dstNsid: NSID_NONE,
    nextHeader,
    n: nextN++,
    kijAlg: SkipAlg.kij['aes256-kw'],
    cryptAlg,
    macAlg,
    compAlg: 0,
    wrappedKp: randomBytes(40),
  });
}

/**
 * An End-End ESP AES-128-GCM tunnel from src to dst with a fresh key: `out` for src's engine, `in`
 * for dst's. SPI mode: plain RFC 4303 with `spi`; SKIP mode: a SKIP header and SPI 1.
 */
export function endSa(
  mode: SaMode,
  src: string,
  dst: string,
  ids: { out: number; in: number },
  spi: number,
): { out: SaDesc; in: SaDesc } {
  const esp = {
    suite: 'aes128gcm' as const,
    key: new Uint8Array(randomBytes(KEY_BYTES.aes128gcm)),
    spi: mode === 'skip' ? SKIP_SPI : spi,
  };
  const base = {
    role: 'end' as const,
    mode,
    src,
    dst,
    ...(mode === 'skip' ? { skipHeader: skipHeader(IpProto.ESP, SkipAlg.crypt.aes128gcm, 0) } : {}),
  };
  return {
    out: { ...base, id: ids.out, direction: 'out', esp },
    in: { ...base, id: ids.in, direction: 'in', esp: { ...esp, key: esp.key.slice() } },
  };
}

/** What a next-hop AH authenticates (docs/engine.md §7): the whole datagram, or its headers only (the draft's §3.6). */
export type Coverage = 'full' | 'headers';

/** A next-hop layer (SKIP + AH AES-128-GMAC) from src to dst, as the draft's relays use. */
export function nexthopSa(
  src: string,
  dst: string,
  ids: { out: number; in: number },
  coverage: Coverage,
): { out: SaDesc; in: SaDesc } {
  const ah = {
    alg: 'gmac-aes128' as const,
    key: new Uint8Array(randomBytes(KEY_BYTES['gmac-aes128'])),
    spi: SKIP_SPI,
    coverage,
  };
  const base = {
    role: 'nexthop' as const,
    mode: 'skip' as const,
    src,
    dst,
    skipHeader: skipHeader(IpProto.AH, 0, SkipAlg.mac['gmac-aes128']),
  };
  return {
    out: { ...base, id: ids.out, direction: 'out', ah },
    in: { ...base, id: ids.in, direction: 'in', ah: { ...ah, key: ah.key.slice() } },
  };
}
