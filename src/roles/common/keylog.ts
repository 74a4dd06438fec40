// A test/lab-only key log: the ESP keys of the SAs a role installs, held in memory so describe()
// can open ESP and show the inner headers of captured packets (DESIGN §3, "optional key log").
// Never printed, never written anywhere by itself; clear() zeroes the copies. With keyChain (test runs
// only: `mipsec lab --pcap DIR --key-chain`) it also keeps each SKIP SA's Kij and Kp for the file key log.
import type { SaDesc, EspSuite } from '../../engine/types.js';
import type { KeyChainSink } from '../../keys/keying.js';
import type { KeyChainHex } from '../../keys/keylog.js';
import { aeadOpen, keyMaterial } from '../../engine/ref/crypto.js';
import { checkEspTrailer, ESP_HEADER_BYTES, ESP_ICV_BYTES, ESP_IV_BYTES } from '../../wire/esp.js';
import type { DescribeResolver, EspContext } from '../../wire/describe.js';
import { SKIP_FIXED_BYTES } from '../../wire/skip.js';
import { u32ToIp } from '../../wire/addr.js';

const WRAPPED_KP_OFFSET = SKIP_FIXED_BYTES;
const WRAPPED_KP_BYTES = 40;

export interface KeyLogOptions {
  /** TEST RUNS ONLY: also keep each SKIP SA's Kij and Kp (keyChainOf) — never in production (docs/security.md). */
  keyChain?: boolean;
}

export class KeyLog {
  /** ESP key by the wrapped Kp of the SA's SKIP header: both ends of an SA log the same entry. */
  private readonly keys = new Map<string, { suite: EspSuite; key: Uint8Array }>();
  private readonly chains = new WeakMap<SaDesc, KeyChainHex>();
  /** What a role's SkipKeying hands each new SA's key chain to; undefined unless asked for (keyChain). */
  readonly keyChainSink: KeyChainSink | undefined;

  constructor(options: KeyLogOptions = {}) {
    this.keyChainSink = options.keyChain
      ? (sa, chain) => this.chains.set(sa, { kij: hexOf(chain.kij), kp: hexOf(chain.kp) })
      : undefined;
  }

  /** The key chain SkipKeying reported for `sa` (only with keyChain). */
  keyChainOf(sa: SaDesc): KeyChainHex | undefined {
    return this.chains.get(sa);
  }

  record(sa: SaDesc): void {
    if (!sa.esp) return;
    let id: string;
    if (sa.mode === 'spi') id = spiId(sa.dst, sa.esp.spi);
    else if (sa.skipHeader)
      id = wrappedKpId(sa.skipHeader.subarray(WRAPPED_KP_OFFSET, WRAPPED_KP_OFFSET + WRAPPED_KP_BYTES));
    else return;
    // A copy (a Buffer's slice() would be a view of a key the caller zeroes).
    if (!this.keys.has(id)) this.keys.set(id, { suite: sa.esp.suite, key: new Uint8Array(sa.esp.key) });
  }

  get size(): number {
    return this.keys.size;
  }

  /**
   * Opens ESP whose SA was logged (SKIP mode by wrapped Kp, SPI mode by destination and SPI); anything else stays
   * opaque.
   */
  resolver(): DescribeResolver {
    return { openEsp: (ctx) => this.open(ctx) };
  }

  clear(): void {
    for (const entry of this.keys.values()) entry.key.fill(0);
    this.keys.clear();
  }

  private open(ctx: EspContext): Uint8Array | undefined {
    const entry = this.keys.get(ctx.skip ? wrappedKpId(ctx.skip.wrappedKp) : spiId(u32ToIp(ctx.ip.dst), ctx.spi));
    const esp = ctx.esp;
    if (!entry || esp.length < ESP_HEADER_BYTES + ESP_IV_BYTES + ESP_ICV_BYTES + 2) return undefined;
    const iv = esp.subarray(ESP_HEADER_BYTES, ESP_HEADER_BYTES + ESP_IV_BYTES);
    const plain = aeadOpen(
      entry.suite,
      keyMaterial(entry.key, true),
      iv,
      esp.subarray(0, ESP_HEADER_BYTES),
      esp.subarray(ESP_HEADER_BYTES + ESP_IV_BYTES, esp.length - ESP_ICV_BYTES),
      esp.subarray(esp.length - ESP_ICV_BYTES),
    );
    if (!plain) return undefined;
    const trailer = checkEspTrailer(plain, 0, plain.length);
    return trailer.ok ? plain.subarray(0, trailer.payloadEnd) : undefined;
  }
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function spiId(dst: string, spi: number): string {
  return `spi ${dst} ${spi}`;
}

function wrappedKpId(bytes: Uint8Array): string {
  return hexOf(bytes);
}
