// A bounded record of what the SMN recently put on the wire, so that a failure message (ICMP 40) is believed only
// when it quotes a packet this SMN really sent (issue 10, hole 5): the quote of a sent packet carries its SKIP header
// (the wrapped Kp), its SPI and its sequence number, which an off-path forger cannot guess.
import { readIp } from '../../wire/addr.js';
import { quotedLength } from '../../wire/icmp40.js';

/** Packets remembered per outer destination, destinations remembered, and how long a send stays quotable. */
export const SENT_PER_DESTINATION = 32;
export const SENT_DESTINATIONS = 64;
export const SENT_QUOTABLE_MS = 10_000;

/**
 * IPv4 header bytes that change between what the SMN hands its host and what an SGW quotes, left out of the
 * comparison: the identification (a raw IP_HDRINCL send has the kernel fill in a zero one), the TTL and the header
 * checksum (every router). What identifies a protected packet — SKIP header, SPI, sequence — lies beyond them.
 */
const MUTABLE_BYTES = [4, 5, 8, 10, 11];

export class SentLog {
  /** By outer destination, oldest first: the packet's quote with the mutable bytes cleared, and when it left. */
  private readonly sent = new Map<number, { quote: string; at: number }[]>();

  constructor(private readonly now: () => number) {}

  /** Records one datagram as it leaves (or as an SGW on the way will see it once the outer layers are gone). */
  record(datagram: Uint8Array): void {
    const quote = normalizedQuote(datagram);
    if (quote === undefined) return;
    const dst = readIp(datagram, 16);
    const now = this.now();
    const list = (this.sent.get(dst) ?? [])
      .filter((s) => now - s.at <= SENT_QUOTABLE_MS)
      .slice(-(SENT_PER_DESTINATION - 1));
    list.push({ quote, at: now });
    // Re-inserting keeps the map ordered by last use, so the first key is the one to forget.
    this.sent.delete(dst);
    this.sent.set(dst, list);
    if (this.sent.size > SENT_DESTINATIONS) this.sent.delete(this.sent.keys().next().value!);
  }

  /**
   * Whether `quote` (the datagram a failure message quotes) covers all a failure quotes of something recently recorded.
   */
  quotes(quote: Uint8Array): boolean {
    if (quote.length < 20) return false;
    const now = this.now();
    const recent = (this.sent.get(readIp(quote, 16)) ?? []).filter(
      (s) => now - s.at <= SENT_QUOTABLE_MS && s.quote.length <= quote.length,
    );
    // A sender may quote more than our builder would; the bytes that identify the packet must all be there.
    return recent.some((s) => normalize(quote, s.quote.length) === s.quote);
  }

  /** A new point of attachment: nothing sent from the old one can be quoted any more. */
  clear(): void {
    this.sent.clear();
  }
}

function normalizedQuote(datagram: Uint8Array): string | undefined {
  try {
    return normalize(datagram, quotedLength(datagram));
  } catch {
    return undefined;
  }
}

function normalize(bytes: Uint8Array, length: number): string {
  // A copy, also when `bytes` is a Buffer (whose slice() is a view): the packet itself goes on unchanged.
  const copy = Uint8Array.from(bytes.subarray(0, length));
  for (const at of MUTABLE_BYTES) copy[at] = 0;
  return Buffer.from(copy).toString('latin1');
}
