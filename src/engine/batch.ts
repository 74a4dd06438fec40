// A batch: one preallocated buffer of fixed-size packet slots plus a descriptor array (docs/engine.md §1).
import { DESC_WORDS, Desc, type BatchLike, type OpCode, type ReasonCode, type VerdictCode } from './types.js';

export interface BatchOptions {
  /** Packets per batch (default 256). */
  capacity?: number;
  /** Bytes per packet slot (default 2048). */
  slotSize?: number;
  /** Free bytes in front of each packet for prepended headers (default 256). */
  headroom?: number;
}

export interface PacketResult {
  verdict: VerdictCode;
  reason: ReasonCode;
  sa: number;
  nexthop: number;
  packet: Uint8Array;
}

export class Batch implements BatchLike {
  readonly buffer: Uint8Array;
  readonly desc: Uint32Array;
  readonly slotSize: number;
  readonly capacity: number;
  readonly headroom: number;
  count = 0;

  constructor(options: BatchOptions = {}) {
    this.capacity = options.capacity ?? 256;
    this.slotSize = options.slotSize ?? 2048;
    this.headroom = options.headroom ?? 256;
    if (!Number.isInteger(this.capacity) || this.capacity < 1)
      throw new RangeError(`batch capacity must be a positive integer, got ${this.capacity}`);
    if (!Number.isInteger(this.slotSize) || this.slotSize < 128 || this.slotSize % 64 !== 0)
      throw new RangeError(`batch slotSize must be a multiple of 64 and at least 128, got ${this.slotSize}`);
    if (!Number.isInteger(this.headroom) || this.headroom < 0 || this.headroom >= this.slotSize)
      throw new RangeError(`batch headroom must be between 0 and slotSize-1, got ${this.headroom}`);
    this.buffer = new Uint8Array(this.capacity * this.slotSize);
    this.desc = new Uint32Array(this.capacity * DESC_WORDS);
  }

  /** Empties the batch for reuse; buffers are kept. */
  clear(): void {
    this.count = 0;
  }

  /**
   * Copies a packet into the next free slot, after the headroom, and queues it for `op`.
   * Returns the packet's index.
   */
  push(op: OpCode, packet: Uint8Array, arg0 = 0, arg1 = 0): number {
    if (this.count >= this.capacity) throw new RangeError(`batch is full (${this.capacity} packets)`);
    if (packet.length > this.slotSize - this.headroom) {
      throw new RangeError(
        `packet of ${packet.length} bytes does not fit a slot (${this.slotSize - this.headroom} bytes after headroom)`,
      );
    }
    const i = this.count++;
    const offset = i * this.slotSize + this.headroom;
    this.buffer.set(packet, offset);
    const d = i * DESC_WORDS;
    this.desc.fill(0, d, d + DESC_WORDS);
    this.desc[d + Desc.op] = op;
    this.desc[d + Desc.arg0] = arg0 >>> 0;
    this.desc[d + Desc.arg1] = arg1 >>> 0;
    this.desc[d + Desc.offset] = offset;
    this.desc[d + Desc.length] = packet.length;
    return i;
  }

  /** Re-queues packet i, as it is now, for another op (e.g. a second WRAP for stacked layers). */
  requeue(i: number, op: OpCode, arg0 = 0, arg1 = 0): void {
    const d = i * DESC_WORDS;
    this.desc[d + Desc.op] = op;
    this.desc[d + Desc.arg0] = arg0 >>> 0;
    this.desc[d + Desc.arg1] = arg1 >>> 0;
    this.desc.fill(0, d + Desc.verdict, d + DESC_WORDS);
  }

  /** The result of packet i; `packet` is a view into the batch buffer, valid until the slot is reused. */
  result(i: number): PacketResult {
    const d = i * DESC_WORDS;
    const word = this.desc[d + Desc.verdict];
    const offset = this.desc[d + Desc.offset];
    return {
      verdict: (word & 0xff) as VerdictCode,
      reason: (word >>> 8) as ReasonCode,
      sa: this.desc[d + Desc.sa],
      nexthop: this.desc[d + Desc.nexthop],
      packet: this.buffer.subarray(offset, offset + this.desc[d + Desc.length]),
    };
  }
}
