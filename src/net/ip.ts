// IPv4 operations a forwarding node needs beyond the codec in src/wire/ipv4.ts.
import { IPV4_CHECKSUM_OFFSET, updateChecksum } from '../wire/ipv4.js';

const TTL_OFFSET = 8;

/** TTL − 1 in place, checksum patched incrementally (RFC 1624). The caller checks TTL > 1 first. */
export function decrementTtl(packet: Uint8Array, offset = 0): void {
  const oldWord = (packet[offset + TTL_OFFSET] << 8) | packet[offset + TTL_OFFSET + 1];
  packet[offset + TTL_OFFSET] -= 1;
  const newWord = (packet[offset + TTL_OFFSET] << 8) | packet[offset + TTL_OFFSET + 1];
  const at = offset + IPV4_CHECKSUM_OFFSET;
  const checksum = updateChecksum((packet[at] << 8) | packet[at + 1], oldWord, newWord);
  packet[at] = checksum >>> 8;
  packet[at + 1] = checksum & 0xff;
}
