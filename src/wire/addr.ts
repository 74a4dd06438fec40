// IPv4 addresses as dotted strings and as unsigned 32-bit numbers.

const DOTTED = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(text: string): boolean {
  return DOTTED.test(text);
}

/** '10.0.0.1' → 0x0a000001. Throws RangeError naming the bad text. */
export function ipToU32(text: string): number {
  if (!DOTTED.test(text))
    throw new RangeError(`not an IPv4 address: '${text}' (expected dotted quad such as 10.0.0.1)`);
  const [a, b, c, d] = text.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
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
