// Fragment reassembly before policy (RFC 4301 §7, RFC 791/815): a role never classifies a piece of a
// datagram; it holds the pieces, keyed by (src, dst, protocol, id), and classifies the whole datagram.
// Hostile input is the normal case: memory is bounded overall and per source, incomplete datagrams
// time out, and overlapping or inconsistent pieces drop the whole datagram (RFC 5722's rule for IPv6,
// which closes the tiny- and overlapping-fragment tricks of RFC 1858). Every outcome is counted.
import type { Clock, Host, Timer } from '../../net/types.js';
import { fragmentOffset } from '../../wire/fragment.js';
import { IPV4_FLAG_MF, MAX_IP_TOTAL, parseIpv4, setIpv4Checksum, type Ipv4Header } from '../../wire/ipv4.js';
import type { Tally } from './counters.js';

export interface ReassemblyLimits {
  /** Bytes of fragments held at once, all datagrams together. */
  maxBytes: number;
  /** Datagrams in reassembly at once. */
  maxDatagrams: number;
  /** Share of maxBytes and of maxDatagrams one source address may hold (0..1]. */
  perSourceShare: number;
  /** Pieces one datagram may have (bounds the overlap check). */
  maxFragments: number;
  /** An incomplete datagram is dropped this long after its first fragment. */
  timeoutMs: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  maxBytes: 1 << 20,
  maxDatagrams: 256,
  perSourceShare: 0.25,
  maxFragments: 128,
  timeoutMs: 15_000,
};

/** A datagram made whole again, and the fragments it was made of (as received). */
export interface Reassembled {
  datagram: Uint8Array;
  header: Ipv4Header;
  fragments: Uint8Array[];
}

interface Piece {
  start: number;
  end: number;
  packet: Uint8Array;
  headerLength: number;
}

interface Pending {
  key: string;
  src: number;
  pieces: Piece[];
  bytes: number;
  /** Payload length, once the last fragment (MF clear) came. */
  total?: number;
  deadline: number;
}

type Verdict = 'ok' | 'drop_frag_overlap' | 'drop_frag_inconsistent' | 'drop_frag_too_big' | 'drop_frag_too_many';

/**
 * A role hook's first look at a packet: its IPv4 header, fragments allowed. A packet without a readable
 * header is the role's to drop (counted by reason), never the host's to pass on.
 */
export function readableHeader(packet: Uint8Array, tally: Tally): Ipv4Header | undefined {
  const ip = parseIpv4(packet, 0, packet.length, { allowFragments: true });
  if (ip.ok) return ip.header;
  tally.add(`drop_ipv4_${ip.reason}`);
  return undefined;
}

export class Reassembler {
  private readonly limits: ReassemblyLimits;
  /** In order of creation, so of deadline: the oldest first. */
  private readonly pending = new Map<string, Pending>();
  private readonly bySource = new Map<number, { bytes: number; datagrams: number }>();
  private heldBytes = 0;
  private timer?: Timer;

  constructor(
    private readonly clock: Clock,
    private readonly tally: Tally,
    limits: Partial<ReassemblyLimits> = {},
  ) {
    this.limits = { ...DEFAULT_REASSEMBLY_LIMITS, ...limits };
  }

  /** Bytes and datagrams held now. */
  held(): { bytes: number; datagrams: number } {
    return { bytes: this.heldBytes, datagrams: this.pending.size };
  }

  /**
   * Takes a fragment; once whole, the datagram enters `host`'s input path again (on `iface`), where every hook sees it
   * unfragmented.
   */
  reinject(host: Host, packet: Uint8Array, header: Ipv4Header, iface: string | undefined): void {
    const whole = this.push(packet, header);
    if (whole) host.inject(whole.datagram, { iface });
  }

  /** Takes one fragment (`header` parsed with fragments allowed); returns the datagram once it is whole. */
  push(packet: Uint8Array, header: Ipv4Header): Reassembled | undefined {
    this.tally.add('frag_received');
    const piece = pieceOf(packet, header);
    if (!piece) return this.refuse('drop_frag_malformed');
    const key = `${header.src}>${header.dst}/${header.protocol}#${header.identification}`;
    let entry = this.pending.get(key);
    if (!entry) {
      entry = this.open(key, header.src);
      if (!entry) return undefined;
    }
    if (!this.fitsSource(entry.src, piece.packet.length, 0)) return this.discard(entry, 'drop_frag_source_share');
    const verdict = this.check(entry, piece, (header.flagsFragment & IPV4_FLAG_MF) === 0);
    if (verdict !== 'ok') return this.discard(entry, verdict);
    if (!this.makeRoom(piece.packet.length, entry)) return this.discard(entry, 'drop_frag_memory');
    entry.pieces.push(piece);
    this.account(entry, piece.packet.length);
    return this.completed(entry);
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const entry of [...this.pending.values()]) this.remove(entry);
  }

  private open(key: string, src: number): Pending | undefined {
    if (!this.fitsSource(src, 0, 1)) {
      this.refuse('drop_frag_source_share');
      return undefined;
    }
    for (const oldest of this.pending.values()) {
      if (this.pending.size < this.limits.maxDatagrams) break;
      this.discard(oldest, 'drop_frag_memory');
    }
    const entry: Pending = { key, src, pieces: [], bytes: 0, deadline: this.clock.now() + this.limits.timeoutMs };
    this.pending.set(key, entry);
    const share = this.sourceUse(src);
    share.datagrams++;
    this.schedule();
    return entry;
  }

  /** RFC 5722 spirit: any overlap, a second end, or a piece past the end drops the whole datagram. */
  private check(entry: Pending, piece: Piece, last: boolean): Verdict {
    if (entry.pieces.length >= this.limits.maxFragments) return 'drop_frag_too_many';
    if (piece.end + firstHeaderLength(entry, piece) > MAX_IP_TOTAL) return 'drop_frag_too_big';
    if (last && entry.total !== undefined && entry.total !== piece.end) return 'drop_frag_inconsistent';
    const total = last ? piece.end : entry.total;
    if (total !== undefined && entry.pieces.some((p) => p.end > total)) return 'drop_frag_inconsistent';
    if (total !== undefined && piece.end > total) return 'drop_frag_inconsistent';
    if (entry.pieces.some((p) => p.start < piece.end && piece.start < p.end)) return 'drop_frag_overlap';
    if (last) entry.total = piece.end;
    return 'ok';
  }

  private completed(entry: Pending): Reassembled | undefined {
    if (entry.total === undefined) return undefined;
    let covered = 0;
    for (const p of entry.pieces) covered += p.end - p.start;
    if (covered !== entry.total) return undefined;
    const pieces = [...entry.pieces].sort((a, b) => a.start - b.start);
    const first = pieces[0];
    if (first.end + first.headerLength > MAX_IP_TOTAL) return this.discard(entry, 'drop_frag_too_big');
    const datagram = new Uint8Array(first.headerLength + entry.total);
    datagram.set(first.packet.subarray(0, first.headerLength), 0);
    for (const p of pieces) datagram.set(p.packet.subarray(p.headerLength), first.headerLength + p.start);
    datagram[2] = datagram.length >>> 8;
    datagram[3] = datagram.length & 0xff;
    datagram[6] &= 0x40; // DF stays as the first fragment had it; MF and offset go
    datagram[7] = 0;
    setIpv4Checksum(datagram, 0, first.headerLength);
    const fragments = entry.pieces.map((p) => p.packet);
    this.remove(entry);
    const ip = parseIpv4(datagram, 0);
    if (!ip.ok) return this.refuse('drop_frag_malformed');
    this.tally.add('frag_reassembled');
    return { datagram, header: ip.header, fragments };
  }

  private fitsSource(src: number, bytes: number, datagrams: number): boolean {
    const use = this.bySource.get(src) ?? { bytes: 0, datagrams: 0 };
    const { maxBytes, maxDatagrams, perSourceShare } = this.limits;
    const datagramShare = Math.max(1, Math.floor(maxDatagrams * perSourceShare));
    return use.bytes + bytes <= maxBytes * perSourceShare && use.datagrams + datagrams <= datagramShare;
  }

  /**
   * The oldest incomplete datagrams give way to a new fragment when the total is reached; false if even that is not
   * enough.
   */
  private makeRoom(bytes: number, keep: Pending): boolean {
    for (const entry of this.pending.values()) {
      if (this.heldBytes + bytes <= this.limits.maxBytes) return true;
      if (entry !== keep) this.discard(entry, 'drop_frag_memory');
    }
    return this.heldBytes + bytes <= this.limits.maxBytes;
  }

  private expire(): void {
    this.timer = undefined;
    const now = this.clock.now();
    for (const entry of this.pending.values()) {
      if (entry.deadline > now) break;
      this.discard(entry, 'drop_frag_timeout');
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    const oldest = this.pending.values().next().value;
    if (oldest) this.timer = this.clock.setTimer(Math.max(0, oldest.deadline - this.clock.now()), () => this.expire());
  }

  private account(entry: Pending, bytes: number): void {
    entry.bytes += bytes;
    this.heldBytes += bytes;
    this.sourceUse(entry.src).bytes += bytes;
  }

  private sourceUse(src: number): { bytes: number; datagrams: number } {
    let use = this.bySource.get(src);
    if (!use) {
      use = { bytes: 0, datagrams: 0 };
      this.bySource.set(src, use);
    }
    return use;
  }

  /** Drops a datagram in reassembly (and the fragment in hand), counted by `reason`. */
  private discard(entry: Pending, reason: string): undefined {
    this.remove(entry);
    return this.refuse(reason);
  }

  private refuse(reason: string): undefined {
    this.tally.add(reason);
    return undefined;
  }

  private remove(entry: Pending): void {
    if (!this.pending.delete(entry.key)) return;
    this.heldBytes -= entry.bytes;
    const use = this.sourceUse(entry.src);
    use.bytes -= entry.bytes;
    use.datagrams--;
    if (use.datagrams === 0) this.bySource.delete(entry.src);
  }
}

/** A fragment's place in its datagram; undefined when the piece is empty or not a multiple of 8 before the end. */
function pieceOf(packet: Uint8Array, header: Ipv4Header): Piece | undefined {
  const start = fragmentOffset(header);
  const size = header.totalLength - header.headerLength;
  const more = (header.flagsFragment & IPV4_FLAG_MF) !== 0;
  if (size === 0 || (more && size % 8 !== 0)) return undefined;
  return { start, end: start + size, packet: packet.slice(0, header.totalLength), headerLength: header.headerLength };
}

/** The header the datagram will have: the first fragment's when it came, else this piece's (a lower bound). */
function firstHeaderLength(entry: Pending, piece: Piece): number {
  return (entry.pieces.find((p) => p.start === 0) ?? piece).headerLength;
}
