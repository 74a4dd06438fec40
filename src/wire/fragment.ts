// IPv4 fragmentation (RFC 791 §3.2): what a host does with a datagram too big for its link, and what
// the reassembler (src/roles/common/reassembly.ts) undoes.
import {
  IPV4_FLAG_DF,
  IPV4_FLAG_MF,
  IPV4_FRAGMENT_OFFSET_MASK,
  parseIpv4,
  setIpv4Checksum,
  type Ipv4Header,
} from './ipv4.js';

/** MF set or a non-zero offset: one piece of a larger datagram. */
export function isFragment(header: Pick<Ipv4Header, 'flagsFragment'>): boolean {
  return (header.flagsFragment & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK)) !== 0;
}

/** Byte offset of a fragment's payload in its datagram. */
export function fragmentOffset(header: Pick<Ipv4Header, 'flagsFragment'>): number {
  return (header.flagsFragment & IPV4_FRAGMENT_OFFSET_MASK) * 8;
}

/**
 * Splits `datagram` (a whole datagram or itself a fragment) into fragments of at most `mtu` bytes.
 * The first keeps every option; later ones only the options with the copied flag (RFC 791 §3.1).
 * Returns undefined when it cannot: DF set, not IPv4, or an MTU too small for a header and 8 bytes.
 */
export function fragmentIpv4(datagram: Uint8Array, mtu: number): Uint8Array[] | undefined {
  const ip = parseIpv4(datagram, 0, datagram.length, { allowFragments: true });
  if (!ip.ok) return undefined;
  const h = ip.header;
  if (h.totalLength <= mtu) return [datagram.slice(0, h.totalLength)];
  if (h.flagsFragment & IPV4_FLAG_DF) return undefined;
  const firstHeader = datagram.subarray(0, h.headerLength);
  const laterHeader = copiedHeader(firstHeader);
  if (mtu - Math.max(firstHeader.length, laterHeader.length) < 8) return undefined;
  const payload = datagram.subarray(h.headerLength, h.totalLength);
  const base = fragmentOffset(h);
  const lastHasMf = (h.flagsFragment & IPV4_FLAG_MF) !== 0;
  const out: Uint8Array[] = [];
  for (let at = 0; at < payload.length; ) {
    const header = at === 0 ? firstHeader : laterHeader;
    const room = (mtu - header.length) & ~7;
    const size = Math.min(room, payload.length - at);
    const more = at + size < payload.length || lastHasMf;
    out.push(piece(header, payload.subarray(at, at + size), (base + at) / 8, more));
    at += size;
  }
  return out;
}

function piece(header: Uint8Array, payload: Uint8Array, offsetUnits: number, more: boolean): Uint8Array {
  const out = new Uint8Array(header.length + payload.length);
  out.set(header, 0);
  out.set(payload, header.length);
  out[0] = (out[0] & 0xf0) | (header.length / 4);
  out[2] = out.length >>> 8;
  out[3] = out.length & 0xff;
  const word = (more ? IPV4_FLAG_MF : 0) | offsetUnits;
  out[6] = word >>> 8;
  out[7] = word & 0xff;
  setIpv4Checksum(out, 0, header.length);
  return out;
}

/** The header later fragments carry: the fixed 20 bytes and the copied options, padded to 32 bits. */
function copiedHeader(header: Uint8Array): Uint8Array {
  const kept: number[] = Array.from(header.subarray(0, 20));
  for (let i = 20; i < header.length; ) {
    const type = header[i];
    if (type === 0) break;
    if (type === 1) {
      i++;
      continue;
    }
    const length = header[i + 1];
    if (length < 2 || i + length > header.length) break;
    if (type & 0x80) kept.push(...header.subarray(i, i + length));
    i += length;
  }
  while (kept.length % 4) kept.push(0);
  return Uint8Array.from(kept);
}
