// Mobile IPv4 registration messages (RFC 5944 §3.3–§3.5; spec/wire-formats.md §8.2–§8.5):
// Registration Request (type 1) and Reply (type 3), their extensions, the Mobile-Home
// Authentication Extension (type 32, HMAC-MD5) and NTP-timestamp identifications.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readIp, writeIp } from './addr.js';

export const MIP_PORT = 434;
export const MipType = { REQUEST: 1, REPLY: 3 } as const;
export const REQUEST_FIXED_BYTES = 24;
export const REPLY_FIXED_BYTES = 20;

/** Registration Request flag bits (RFC 5944 §3.3). */
export const RequestFlag = { S: 0x80, B: 0x40, D: 0x20, M: 0x10, G: 0x08, r: 0x04, T: 0x02, x: 0x01 } as const;
/** Lifetime 0xFFFF means infinite; 0 deregisters. */
export const LIFETIME_INFINITE = 0xffff;

export const ExtType = { PAD: 0, MN_HA_AUTH: 32, MN_FA_AUTH: 33, FA_HA_AUTH: 34 } as const;
/** Non-skippable types (0–127) this codec understands; any other one rejects the message. */
const KNOWN_NON_SKIPPABLE = new Set<number>([ExtType.PAD, ExtType.MN_HA_AUTH, ExtType.MN_FA_AUTH, ExtType.FA_HA_AUTH]);
const FIRST_SKIPPABLE_TYPE = 128;
/** Type + Length + SPI: the part of the auth extension covered by its own authenticator. */
const AUTH_EXT_COVERED_BYTES = 6;
export const HMAC_MD5_BYTES = 16;

/** Registration Reply codes (RFC 5944 §3.4). */
export const ReplyCode = {
  ACCEPTED: 0,
  ACCEPTED_NO_SIMULTANEOUS: 1,
  REASON_UNSPECIFIED: 128,
  ADMIN_PROHIBITED: 129,
  INSUFFICIENT_RESOURCES: 130,
  MN_AUTH_FAILED: 131,
  FA_AUTH_FAILED: 132,
  ID_MISMATCH: 133,
  POORLY_FORMED_REQUEST: 134,
  TOO_MANY_BINDINGS: 135,
  UNKNOWN_HA_ADDRESS: 136,
} as const;

export function isAccepted(code: number): boolean {
  return code <= 8;
}

export interface Extension {
  type: number;
  /** Data after Type and Length (empty for a one-byte pad). */
  data: Uint8Array;
}

export interface RegistrationRequest {
  flags: number;
  lifetime: number;
  homeAddress: number;
  homeAgent: number;
  careOf: number;
  /** 64 bits: NTP timestamp in timestamp mode. */
  identification: bigint;
  /** Extensions placed before the MN-HA authentication extension. */
  extensions?: Extension[];
}

export interface RegistrationReply {
  code: number;
  lifetime: number;
  homeAddress: number;
  homeAgent: number;
  identification: bigint;
  extensions?: Extension[];
}

export interface MnHaAuth {
  spi: number;
  authenticator: Uint8Array;
  /** Where the extension starts in the message: the authenticated data is bytes [0, offset + 6). */
  offset: number;
}

export interface MnHaKey {
  spi: number;
  /** HMAC-MD5 key, any length (RFC 5944 §3.5.1 asks for arbitrary binary keys). */
  key: Uint8Array;
}

export type MipParseReason =
  | 'truncated'
  | 'unknown_type'
  | 'bad_extension_length'
  | 'unknown_extension'
  | 'duplicate_mn_ha_auth';

export interface MipParseFailure {
  ok: false;
  reason: MipParseReason;
  /** Names the field and what was found. */
  detail: string;
}

interface ParsedExtensions {
  extensions: Extension[];
  mnHaAuth?: MnHaAuth;
}

export type RequestParse = { ok: true; message: RegistrationRequest; mnHaAuth?: MnHaAuth } | MipParseFailure;
export type ReplyParse = { ok: true; message: RegistrationReply; mnHaAuth?: MnHaAuth } | MipParseFailure;

export function hmacMd5(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('md5', key).update(data).digest());
}

// ---- identification (RFC 5944 §5.7) ----

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch. */
const NTP_UNIX_OFFSET_S = 2208988800n;

/** A 64-bit NTP timestamp for `unixMs` milliseconds since 1970. */
export function ntpFromUnixMs(unixMs: number): bigint {
  const ms = BigInt(Math.floor(unixMs));
  const seconds = ms / 1000n + NTP_UNIX_OFFSET_S;
  const fraction = (ms % 1000n << 32n) / 1000n;
  return ((seconds & 0xffffffffn) << 32n) | fraction;
}

/** The high 32 bits (NTP seconds) of an identification. */
export function idHigh(id: bigint): number {
  return Number((id >> 32n) & 0xffffffffn);
}

export function idLow(id: bigint): number {
  return Number(id & 0xffffffffn);
}

export function makeId(high: number, low: number): bigint {
  return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
}

// ---- encoding ----

function checkU16(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff)
    throw new RangeError(`Mobile IP ${field} must be an integer 0..65535, got ${value}`);
}

function checkU8(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff)
    throw new RangeError(`Mobile IP ${field} must be an integer 0..255, got ${value}`);
}

function extensionBytes(extensions: readonly Extension[]): number {
  return extensions.reduce((sum, e) => sum + (e.type === ExtType.PAD ? 1 : 2 + e.data.length), 0);
}

function writeExtensions(out: Uint8Array, at: number, extensions: readonly Extension[]): number {
  for (const e of extensions) {
    checkU8('extension type', e.type);
    if (e.type === ExtType.MN_HA_AUTH)
      throw new RangeError('Mobile IP: pass the MN-HA key instead of a type-32 extension; the encoder computes it');
    out[at++] = e.type;
    if (e.type === ExtType.PAD) continue;
    if (e.data.length > 0xff)
      throw new RangeError(
        `Mobile IP extension type ${e.type}: data of ${e.data.length} bytes exceeds the 255-byte Length`,
      );
    out[at++] = e.data.length;
    out.set(e.data, at);
    at += e.data.length;
  }
  return at;
}

/** Appends the MN-HA authentication extension at `at`, computing HMAC-MD5 over out[0, at + 6). */
function writeMnHaAuth(out: Uint8Array, at: number, auth: MnHaKey): void {
  if (!Number.isInteger(auth.spi) || auth.spi < 0 || auth.spi > 0xffffffff)
    throw new RangeError(`Mobile IP MN-HA SPI must be a 32-bit unsigned integer, got ${auth.spi}`);
  out[at] = ExtType.MN_HA_AUTH;
  out[at + 1] = 4 + HMAC_MD5_BYTES;
  new DataView(out.buffer, out.byteOffset).setUint32(at + 2, auth.spi);
  out.set(hmacMd5(auth.key, out.subarray(0, at + AUTH_EXT_COVERED_BYTES)), at + AUTH_EXT_COVERED_BYTES);
}

const AUTH_EXT_BYTES = AUTH_EXT_COVERED_BYTES + HMAC_MD5_BYTES;

/** Request bytes (the UDP payload), authenticated with `auth` (RFC 5944 §3.3, §3.5). */
export function encodeRequest(r: RegistrationRequest, auth: MnHaKey): Uint8Array {
  checkU8('flags', r.flags);
  checkU16('lifetime', r.lifetime);
  const extensions = r.extensions ?? [];
  const out = new Uint8Array(REQUEST_FIXED_BYTES + extensionBytes(extensions) + AUTH_EXT_BYTES);
  out[0] = MipType.REQUEST;
  out[1] = r.flags;
  out[2] = r.lifetime >>> 8;
  out[3] = r.lifetime & 0xff;
  writeIp(out, 4, r.homeAddress);
  writeIp(out, 8, r.homeAgent);
  writeIp(out, 12, r.careOf);
  new DataView(out.buffer).setBigUint64(16, BigInt.asUintN(64, r.identification));
  writeMnHaAuth(out, writeExtensions(out, REQUEST_FIXED_BYTES, extensions), auth);
  return out;
}

/** Reply bytes (the UDP payload), authenticated with `auth` (RFC 5944 §3.4: HA replies always carry it). */
export function encodeReply(r: RegistrationReply, auth: MnHaKey): Uint8Array {
  checkU8('code', r.code);
  checkU16('lifetime', r.lifetime);
  const extensions = r.extensions ?? [];
  const out = new Uint8Array(REPLY_FIXED_BYTES + extensionBytes(extensions) + AUTH_EXT_BYTES);
  out[0] = MipType.REPLY;
  out[1] = r.code;
  out[2] = r.lifetime >>> 8;
  out[3] = r.lifetime & 0xff;
  writeIp(out, 4, r.homeAddress);
  writeIp(out, 8, r.homeAgent);
  new DataView(out.buffer).setBigUint64(12, BigInt.asUintN(64, r.identification));
  writeMnHaAuth(out, writeExtensions(out, REPLY_FIXED_BYTES, extensions), auth);
  return out;
}

// ---- decoding ----

function fail(reason: MipParseReason, detail: string): MipParseFailure {
  return { ok: false, reason, detail };
}

/**
 * Walks the extensions in buf[start, end): one-byte pads; unknown skippable types (128–255)
 * skipped; unknown non-skippable types (0–127) reject the message (RFC 5944 §1.9).
 */
function parseExtensions(buf: Uint8Array, start: number, end: number): ParsedExtensions | MipParseFailure {
  const result: ParsedExtensions = { extensions: [] };
  let at = start;
  while (at < end) {
    const type = buf[at];
    if (type === ExtType.PAD) {
      at += 1;
      continue;
    }
    if (end - at < 2) return fail('truncated', `extension type ${type} at byte ${at}: no Length byte`);
    const length = buf[at + 1];
    if (end - at - 2 < length)
      return fail(
        'truncated',
        `extension type ${type} at byte ${at}: Length ${length} runs past the message end (${end - at - 2} bytes left)`,
      );
    const data = buf.subarray(at + 2, at + 2 + length);
    if (type === ExtType.MN_HA_AUTH) {
      if (result.mnHaAuth) return fail('duplicate_mn_ha_auth', `second MN-HA authentication extension at byte ${at}`);
      if (length < 4 + 1)
        return fail(
          'bad_extension_length',
          `MN-HA authentication extension Length ${length}: needs a 4-byte SPI and an authenticator`,
        );
      result.mnHaAuth = {
        spi: new DataView(data.buffer, data.byteOffset).getUint32(0),
        authenticator: data.subarray(4),
        offset: at,
      };
    } else if (type < FIRST_SKIPPABLE_TYPE && !KNOWN_NON_SKIPPABLE.has(type)) {
      return fail(
        'unknown_extension',
        `unknown non-skippable extension type ${type} at byte ${at} (types 0-127 must be understood)`,
      );
    }
    if (type !== ExtType.MN_HA_AUTH) result.extensions.push({ type, data });
    at += 2 + length;
  }
  return result;
}

/** What decoding a Request and a Reply share: the Type, the fixed part's length, the extensions behind it. */
function decodeTypeAndExtensions(
  buf: Uint8Array,
  type: (typeof MipType)[keyof typeof MipType],
  name: string,
  fixedBytes: number,
): ParsedExtensions | MipParseFailure {
  if (buf.length < 1) return fail('truncated', 'empty message');
  if (buf[0] !== type) return fail('unknown_type', `Type ${buf[0]}: expected ${type} (${name})`);
  if (buf.length < fixedBytes)
    return fail('truncated', `${name} of ${buf.length} bytes: the fixed part is ${fixedBytes}`);
  return parseExtensions(buf, fixedBytes, buf.length);
}

export function decodeRequest(buf: Uint8Array): RequestParse {
  const ext = decodeTypeAndExtensions(buf, MipType.REQUEST, 'Registration Request', REQUEST_FIXED_BYTES);
  if ('ok' in ext) return ext;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  return {
    ok: true,
    message: {
      flags: buf[1],
      lifetime: view.getUint16(2),
      homeAddress: readIp(buf, 4),
      homeAgent: readIp(buf, 8),
      careOf: readIp(buf, 12),
      identification: view.getBigUint64(16),
      extensions: ext.extensions,
    },
    mnHaAuth: ext.mnHaAuth,
  };
}

export function decodeReply(buf: Uint8Array): ReplyParse {
  const ext = decodeTypeAndExtensions(buf, MipType.REPLY, 'Registration Reply', REPLY_FIXED_BYTES);
  if ('ok' in ext) return ext;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  return {
    ok: true,
    message: {
      code: buf[1],
      lifetime: view.getUint16(2),
      homeAddress: readIp(buf, 4),
      homeAgent: readIp(buf, 8),
      identification: view.getBigUint64(12),
      extensions: ext.extensions,
    },
    mnHaAuth: ext.mnHaAuth,
  };
}

export type MnHaCheck =
  | { ok: true }
  | { ok: false; reason: 'missing_mn_ha_auth' | 'spi_mismatch' | 'bad_authenticator' };

/**
 * Checks the MN-HA authenticator of a parsed message (`buf` = the bytes it was parsed from):
 * HMAC-MD5 over the fixed part, the extensions before it, and its own Type, Length and SPI.
 */
export function verifyMnHaAuth(buf: Uint8Array, auth: MnHaAuth | undefined, key: MnHaKey): MnHaCheck {
  if (!auth) return { ok: false, reason: 'missing_mn_ha_auth' };
  if (auth.spi !== key.spi) return { ok: false, reason: 'spi_mismatch' };
  const expected = hmacMd5(key.key, buf.subarray(0, auth.offset + AUTH_EXT_COVERED_BYTES));
  if (auth.authenticator.length !== expected.length || !timingSafeEqual(auth.authenticator, expected))
    return { ok: false, reason: 'bad_authenticator' };
  return { ok: true };
}
