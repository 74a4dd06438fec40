/*
 * Debugging key log: the keys of installed SAs, written so a capture can be decrypted offline.
 *
 * THIS WRITES TRAFFIC KEYS TO DISK ON PURPOSE. It exists only for `mipsec lab --pcap DIR` and must
 * never run unless the operator asked for it: anyone who can read these files can read the traffic
 * of the logged SAs. Files are created 0600. Nothing here logs or prints a key anywhere else.
 *
 * Two files:
 *   esp_sa          Wireshark's ESP SA table (UAT "esp_sa", same format as the file Wireshark saves
 *                   in a profile directory): one line per ESP SA,
 *                     "IPv4","src","dst","0xSPI","<encryption algorithm>","0x<key>","<auth algorithm>","<auth key>"
 *                   The algorithm columns hold Wireshark's own names. RFC 4106 AES-GCM keys are the AES
 *                   key followed by the 4-byte salt (KEYMAT), exactly our engine key; the ICV is inside
 *                   the AEAD, so the authentication column is NULL. SPI-mode SAs are found by their SPI;
 *                   SKIP-mode ESP always has SPI 1 (wire-formats §4.5), so Wireshark tells SKIP SAs
 *                   apart only by src/dst: with several SKIP SAs between one address pair (a new Kp),
 *                   the first listed wins and later packets stay opaque — the JSON log is exact.
 *                   ChaCha20-Poly1305 lines are commented out by default (Wireshark 4.0 lacks it).
 *   skip-sa.jsonl   one JSON object per line for every SKIP-derived SA: its SKIP header fields
 *                   (identities, counter n, algorithms, wrapped Kp), its traffic keys E_kp / A_kp and the
 *                   coverage of its AH (end layers: always full). With KeyLogOptions.keyChain (TEST RUNS ONLY,
 *                   `mipsec lab --pcap DIR --key-chain`) also Kij and Kp, so a tool that shares no code with
 *                   mipsec can check that Kijn = H(Kij | n | 0x00) unwraps the wrapped Kp to Kp and that Kp
 *                   derives E_kp / A_kp (docs/skip-keying.md §2, wireshark/check-key-chain.py).
 */
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Coverage, EspSuite, MacAlg } from '../wire/algorithms.js';
import type { SaDesc } from './sa.js';
import { u32ToIp } from '../wire/addr.js';
import { decodeSkipHeader, SKIP_SPI } from '../wire/skip.js';

export const ESP_SA_FILE = 'esp_sa';
export const SKIP_SA_FILE = 'skip-sa.jsonl';
/** Owner read/write only: the files hold live keys. */
export const KEYLOG_FILE_MODE = 0o600;

/** Unix time of 1995-01-01T00:00:00Z, the origin of the SKIP counter n (wire-formats §4.4). */
const SKIP_EPOCH_SECONDS = 788918400;

/**
 * Wireshark's names for our ESP suites (its esp_encryption_type_vals). AES-GCM with a 16-byte ICV is in
 * Wireshark 4.0 and later; ChaCha20-Poly1305 with an explicit IV (RFC 7634) only in releases newer than
 * 4.0 — 4.0 rejects the line ("invalid value"), so it is written commented out unless asked for.
 */
const WIRESHARK_ESP_ENCRYPTION: Record<EspSuite, string> = {
  aes128gcm: 'AES-GCM with 16 octet ICV [RFC4106]',
  aes256gcm: 'AES-GCM with 16 octet ICV [RFC4106]',
  chacha20poly1305: 'ChaCha20 with Poly1305 [RFC7634]',
};
const WIRESHARK_AUTH_NONE = 'NULL';

/** Comment lines at the top of esp_sa (Wireshark skips lines starting with '#'). */
const ESP_SA_HEADER = [
  '# mipsec debugging key log: live ESP keys. Keep private; delete when done.',
  '# Wireshark ESP SA table (esp_sa): copy into a profile directory or pass each line as -o "uat:esp_sa:LINE".',
  '# Lines starting with #"IPv4" are ChaCha20-Poly1305 SAs: remove the # on a Wireshark newer than 4.0.',
].join('\n');

export interface KeyLogOptions {
  /** Write ChaCha20-Poly1305 esp_sa lines uncommented (needs a Wireshark newer than 4.0). Default false. */
  chacha20?: boolean;
  /** TEST RUNS ONLY: write the Kij and Kp record() is given into skip-sa.jsonl (never in production). Default false. */
  keyChain?: boolean;
}

/** The key chain of a SKIP SA, hex: Kij (with the header's n, the input of Kijn) and Kp. */
export interface KeyChainHex {
  kij: string;
  kp: string;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function uatField(text: string): string {
  // UAT strings are double-quoted; our values (addresses, hex, algorithm names) never hold a quote or backslash.
  return `"${text}"`;
}

/**
 * The esp_sa line of an SA with ESP (undefined without ESP). A ChaCha20-Poly1305 SA gets the line
 * commented out ('#', which Wireshark skips) unless options.chacha20: Wireshark 4.0 refuses the whole
 * table on an algorithm name it does not know; on a newer one, remove the '#'.
 */
export function espSaLine(sa: SaDesc, options: KeyLogOptions = {}): string | undefined {
  if (!sa.esp) return undefined;
  const spi = sa.mode === 'skip' ? SKIP_SPI : sa.esp.spi;
  const prefix = sa.esp.suite === 'chacha20poly1305' && !options.chacha20 ? '#' : '';
  return (
    prefix +
    [
      'IPv4',
      sa.src,
      sa.dst,
      `0x${(spi >>> 0).toString(16).padStart(8, '0')}`,
      WIRESHARK_ESP_ENCRYPTION[sa.esp.suite],
      `0x${hex(sa.esp.key)}`,
      WIRESHARK_AUTH_NONE,
      '',
    ]
      .map(uatField)
      .join(',')
  );
}

/** One SKIP-derived SA as written to skip-sa.jsonl. Keys are hex, salt included (engine key format). */
export interface SkipSaRecord {
  node?: string;
  sa: number;
  direction: 'out' | 'in';
  role: 'end' | 'nexthop';
  /** Outer tunnel addresses of the SA. */
  src: string;
  dst: string;
  srcNsid: number;
  srcMkid?: string;
  dstNsid: number;
  dstMkid?: string;
  nextHeader: number;
  n: number;
  /** The hour n names, ISO 8601 UTC. */
  nHour: string;
  kijAlg: number;
  cryptAlg: number;
  macAlg: number;
  compAlg: number;
  wrappedKp: string;
  /** E_kp: the ESP key. */
  esp?: { suite: EspSuite; spi: number; key: string };
  /** A_kp: the AH key, and what its ICV covers (an end layer's AH always the whole datagram). */
  ah?: { alg: MacAlg; spi: number; key: string; coverage: Coverage };
  /** Test runs with keyChain only: the Kijn input Kij and the packet key Kp. */
  kij?: string;
  kp?: string;
}

/** The JSON-lines record of a SKIP-mode SA (with its key chain, if given), or undefined for an SPI-mode SA. */
export function skipSaRecord(sa: SaDesc, node?: string, chain?: KeyChainHex): SkipSaRecord | undefined {
  if (sa.mode !== 'skip') return undefined;
  if (!sa.skipHeader) throw new RangeError(`key log: SA ${sa.id} is in skip mode but has no skipHeader`);
  const parsed = decodeSkipHeader(sa.skipHeader, 0);
  if (!parsed.ok)
    throw new RangeError(
      `key log: SA ${sa.id} skipHeader does not parse (${parsed.reason}); it must be the header the engine emits ` +
        `(docs/engine.md §6)`,
    );
  const h = parsed.header;
  return {
    ...(node === undefined ? {} : { node }),
    sa: sa.id,
    direction: sa.direction,
    role: sa.role,
    src: sa.src,
    dst: sa.dst,
    srcNsid: h.srcNsid,
    ...(h.srcMkid === undefined ? {} : { srcMkid: u32ToIp(h.srcMkid) }),
    dstNsid: h.dstNsid,
    ...(h.dstMkid === undefined ? {} : { dstMkid: u32ToIp(h.dstMkid) }),
    nextHeader: h.nextHeader,
    n: h.n,
    nHour: new Date((SKIP_EPOCH_SECONDS + h.n * 3600) * 1000).toISOString(),
    kijAlg: h.kijAlg,
    cryptAlg: h.cryptAlg,
    macAlg: h.macAlg,
    compAlg: h.compAlg,
    wrappedKp: hex(h.wrappedKp),
    ...(sa.esp ? { esp: { suite: sa.esp.suite, spi: sa.esp.spi, key: hex(sa.esp.key) } } : {}),
    ...(sa.ah
      ? { ah: { alg: sa.ah.alg, spi: sa.ah.spi, key: hex(sa.ah.key), coverage: sa.ah.coverage ?? 'full' } }
      : {}),
    ...(chain ? { kij: chain.kij, kp: chain.kp } : {}),
  };
}

/** Creates (or truncates) a file that only its owner can read, also when it existed with wider permissions. */
function openPrivate(path: string): number {
  const fd = openSync(path, 'w', KEYLOG_FILE_MODE);
  fchmodSync(fd, KEYLOG_FILE_MODE);
  return fd;
}

function writeLine(fd: number, line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
}

/**
 * Writes DIR/esp_sa and DIR/skip-sa.jsonl as SAs are installed: record() each SA (both ends may
 * record the same SA; a line already written is not repeated), close() at the end.
 */
export class KeyLogWriter {
  readonly espSaPath: string;
  readonly skipSaPath: string;
  private espFd: number | undefined;
  private skipFd: number | undefined;
  private readonly written = new Set<string>();

  constructor(
    dir: string,
    private readonly options: KeyLogOptions = {},
  ) {
    this.espSaPath = join(dir, ESP_SA_FILE);
    this.skipSaPath = join(dir, SKIP_SA_FILE);
    this.espFd = openPrivate(this.espSaPath);
    try {
      this.skipFd = openPrivate(this.skipSaPath);
      writeLine(this.espFd, ESP_SA_HEADER);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /**
   * Logs one installed SA; `node` names the host that installed it (kept in the JSON record). `chain` is written only
   * when the writer was opened with keyChain (test runs).
   */
  record(sa: SaDesc, node?: string, chain?: KeyChainHex): void {
    if (this.espFd === undefined || this.skipFd === undefined)
      throw new Error(`key log in ${this.espSaPath} is closed; open a new KeyLogWriter`);
    const line = espSaLine(sa, this.options);
    if (line !== undefined && !this.written.has(line)) {
      this.written.add(line);
      writeLine(this.espFd, line);
    }
    const record = skipSaRecord(sa, node, this.options.keyChain ? chain : undefined);
    if (record !== undefined) {
      const json = JSON.stringify(record);
      if (!this.written.has(json)) {
        this.written.add(json);
        writeLine(this.skipFd, json);
      }
    }
  }

  close(): void {
    for (const fd of [this.espFd, this.skipFd]) if (fd !== undefined) closeSync(fd);
    this.espFd = this.skipFd = undefined;
    this.written.clear();
  }
}

/** Writes the key log of `sas` into `dir` at once; returns the two paths. */
export function writeKeyLog(
  dir: string,
  sas: Iterable<SaDesc | { sa: SaDesc; node?: string }>,
  options: KeyLogOptions = {},
): { espSaPath: string; skipSaPath: string } {
  const writer = new KeyLogWriter(dir, options);
  try {
    for (const entry of sas) {
      if ('sa' in entry && typeof entry.sa === 'object') writer.record(entry.sa, entry.node);
      else writer.record(entry as SaDesc);
    }
  } finally {
    writer.close();
  }
  return { espSaPath: writer.espSaPath, skipSaPath: writer.skipSaPath };
}
