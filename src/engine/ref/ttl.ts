// A router's TTL − 1 (OUTBOUND pass and tunnel, a Next-hop SA's `plain` pass), docs/engine.md §4.2.
import { updateChecksum } from '../../wire/ipv4.js';

/** TTL − 1 on the IPv4 header at `offset` (the caller checked TTL > 1), RFC 1624: bytes 8-9 are TTL ‖ protocol. */
export function decrementTtl(buf: Uint8Array, offset: number, ttl: number): void {
  const oldWord = (buf[offset + 8] << 8) | buf[offset + 9];
  buf[offset + 8] = ttl - 1;
  const sum = updateChecksum((buf[offset + 10] << 8) | buf[offset + 11], oldWord, oldWord - 0x100);
  buf[offset + 10] = sum >> 8;
  buf[offset + 11] = sum & 0xff;
}
