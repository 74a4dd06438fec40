// Finds and loads the native addon: a prebuild first, then build/Release (node-gyp-build's order).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import type { PacketKeyDerivation } from '../keys/derive.js';
import type { Sha256 } from '../keys/digest52.js';

const require = createRequire(import.meta.url);

/** The package root: the nearest directory above this file holding binding.gyp. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'binding.gyp'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('mipsec: binding.gyp not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/**
 * The addon's exports (native/node/addon.cc), by name only: the engine wrappers (native.ts, io.ts) call into them
 * untyped, and a caller outside them checks a value before it uses it (IoLoop is absent without native/io).
 */
export interface AddonBinding {
  readonly opensslVersion?: unknown;
  readonly abi?: unknown;
  readonly Engine?: unknown;
  readonly IoLoop?: unknown;
  readonly offload?: unknown;
  readonly crypto?: unknown;
  readonly wire?: unknown;
  readonly limitMallocArenas?: unknown;
  readonly trimMalloc?: unknown;
}

let cached: { binding?: AddonBinding; error?: Error } | undefined;

/** The addon's exports, or the error that kept it from loading. Loaded once per process. */
export function loadAddon(): { binding?: AddonBinding; error?: Error } {
  if (!cached) {
    try {
      const nodeGypBuild = require('node-gyp-build') as (dir: string) => AddonBinding;
      cached = { binding: nodeGypBuild(packageRoot()) };
    } catch (err) {
      cached = { error: err as Error };
    }
  }
  return cached;
}

/**
 * At most `n` glibc malloc arenas for the threads this process starts from now on (a daemon's I/O workers); false
 * without the addon or on another C library. For a daemon process only: it applies to the whole process.
 */
export function limitMallocArenas(n: number): boolean {
  const limit = loadAddon().binding?.limitMallocArenas;
  return typeof limit === 'function' ? Boolean((limit as (n: number) => boolean)(n)) : false;
}

/**
 * Hands the free memory of every glibc malloc arena back to the kernel; true if some went back, false if none did,
 * without the addon or on another C library. Process-wide: for a daemon's upkeep (../daemon/memory-upkeep.ts).
 */
export function trimMalloc(): boolean {
  const trim = loadAddon().binding?.trimMalloc;
  return typeof trim === 'function' ? Boolean((trim as () => boolean)()) : false;
}

type NativePacketKeys = (
  kijn: Uint8Array,
  wrapped: Uint8Array,
  cryptAlg: number,
  cryptLength: number,
  macAlg: number,
  macLength: number,
) => Uint8Array | null;

/**
 * The addon's packet keys (native/crypto/packet_keys.cc: unwrap and both hashes in one call) for SkipKeying;
 * undefined without the addon. On a new key's first packet after an idle spell, the JS version's unwrap and two
 * WebAssembly BLAKE2b calls cost ~0.1 ms more (bench e2e first_packet_ms, daemon path).
 */
export function nativePacketKeys(): PacketKeyDerivation | undefined {
  const derive = (loadAddon().binding?.crypto as { skipPacketKeys?: unknown } | undefined)?.skipPacketKeys;
  if (typeof derive !== 'function') return undefined;
  const native = derive as NativePacketKeys;
  return (kijn, wrapped, crypt, mac) => {
    const out = native(kijn, wrapped, crypt?.alg ?? 0, crypt?.length ?? 0, mac?.alg ?? 0, mac?.length ?? 0);
    if (!out) return undefined;
    // Kp ‖ E_kp ‖ A_kp
    const macAt = out.length - (mac?.length ?? 0);
    const cryptAt = macAt - (crypt?.length ?? 0);
    return {
      kp: out.subarray(0, cryptAt),
      ...(crypt && { crypt: out.subarray(cryptAt, macAt) }),
      ...(mac && { mac: out.subarray(macAt) }),
    };
  };
}

/** The addon's SHA-256 (its digest fetched once) for digest52's owners; undefined without the addon. */
export function nativeSha256(): Sha256 | undefined {
  const sha256 = (loadAddon().binding?.crypto as { sha256?: unknown } | undefined)?.sha256;
  return typeof sha256 === 'function' ? (sha256 as Sha256) : undefined;
}
