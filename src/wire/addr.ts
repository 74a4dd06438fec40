// IPv4 addresses as dotted strings and as unsigned 32-bit numbers.

const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/**
 * The value of a dotted quad — exactly four parts 0..255 in decimal, without leading zeros — or undefined. One pass
 * over the characters, no regular expression or split: a new key's first packet parses several addresses, cold.
 */
function parseDotted(text: string): number | undefined {
  if (text.length < 7 || text.length > 15) return undefined;
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || part > 255) return undefined;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else {
      if (c < DIGIT_0 || c > DIGIT_9 || digits === 3 || (digits === 1 && part === 0)) return undefined;
      part = part * 10 + (c - DIGIT_0);
      digits++;
    }
  }
  return parts === 4 ? value : undefined;
}

export function isIpv4(text: string): boolean {
  return parseDotted(text) !== undefined;
}

/** '10.0.0.1' → 0x0a000001. Throws RangeError naming the bad text. */
export function ipToU32(text: string): number {
  const value = parseDotted(text);
  if (value === undefined)
    throw new RangeError(`not an IPv4 address: '${text}' (expected dotted quad such as 10.0.0.1)`);
  return value;
}

export function u32ToIp(value: number): string {
  const v = value >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** A big-endian (network order) unsigned 32-bit field: SPIs, sequence numbers, addresses. */
export function readU32(buf: Uint8Array, offset: number): number {
  return ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0;
}

export function writeU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value >>> 24;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

/** An IPv4 address on the wire is a big-endian u32. */
export const readIp = readU32;
export const writeIp = writeU32;

export interface Prefix {
  network: number;
  length: number;
}

/** 'a.b.c.d/len' → network (host bits must be zero) and length. Throws RangeError naming the bad text. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  if (slash < 0) throw new RangeError(`not an IPv4 prefix: '${text}' (expected a.b.c.d/len such as 10.1.0.0/16)`);
  const network = ipToU32(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const length = Number(lenText);
  if (!/^\d{1,2}$/.test(lenText) || length > 32)
    throw new RangeError(`bad prefix length in '${text}' (expected 0..32)`);
  const mask = prefixMask(length);
  if ((network & mask) >>> 0 !== network) {
    throw new RangeError(
      `prefix '${text}' has host bits set (did you mean ${u32ToIp((network & mask) >>> 0)}/${length}?)`,
    );
  }
  return { network, length };
}

export function prefixMask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

export function prefixContains(prefix: Prefix, address: number): boolean {
  return (address & prefixMask(prefix.length)) >>> 0 === prefix.network;
}
