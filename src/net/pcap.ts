/*
 * Classic pcap files (the libpcap format every capture tool reads) from the frames a link's capture
 * tap records (CapturedPacket). One file holds one link. Frames are raw IPv4 datagrams, so the
 * link type is LINKTYPE_RAW (101: each record starts with the IP header; tcpdump, Wireshark and
 * libpcap all accept it). Timestamps are the frame's clock time in microseconds.
 *
 * Layout (little-endian, magic 0xa1b2c3d4 written in host order so readers detect it):
 *   global header  magic u32, version 2.4 (u16 u16), thiszone i32 = 0, sigfigs u32 = 0,
 *                  snaplen u32, network (link type) u32                              24 bytes
 *   per record     ts_sec u32, ts_usec u32, incl_len u32, orig_len u32, then incl_len bytes
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { CapturedPacket } from './types.js';

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const LINKTYPE_RAW = 101;
/** Larger than any IPv4 datagram, so no frame is ever cut. */
export const PCAP_SNAPLEN = 65535;
export const PCAP_GLOBAL_HEADER_BYTES = 24;
export const PCAP_RECORD_HEADER_BYTES = 16;

/** Bytes buffered before a write to the file: few system calls, bounded memory. */
const FLUSH_BYTES = 64 * 1024;

/** What a record needs from a captured frame. */
export type PcapFrame = Pick<CapturedPacket, 'time' | 'packet'>;

export function pcapGlobalHeader(linkType = LINKTYPE_RAW, snaplen = PCAP_SNAPLEN): Buffer {
  const header = Buffer.alloc(PCAP_GLOBAL_HEADER_BYTES);
  header.writeUInt32LE(PCAP_MAGIC_USEC, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeInt32LE(0, 8);
  header.writeUInt32LE(0, 12);
  header.writeUInt32LE(snaplen, 16);
  header.writeUInt32LE(linkType, 20);
  return header;
}

/** One record (header + data) for a frame; `time` is milliseconds since the Unix epoch. */
export function pcapRecord(frame: PcapFrame, snaplen = PCAP_SNAPLEN): Buffer {
  if (!Number.isFinite(frame.time) || frame.time < 0) {
    throw new RangeError(
      `pcap frame time must be a non-negative number of milliseconds since the Unix epoch, got ${frame.time}`,
    );
  }
  const micros = Math.round(frame.time * 1000);
  const seconds = Math.floor(micros / 1e6);
  if (seconds > 0xffffffff)
    throw new RangeError(`pcap frame time ${frame.time} ms is beyond what a classic pcap timestamp holds (year 2106)`);
  const included = Math.min(frame.packet.length, snaplen);
  const record = Buffer.alloc(PCAP_RECORD_HEADER_BYTES + included);
  record.writeUInt32LE(seconds, 0);
  record.writeUInt32LE(micros - seconds * 1e6, 4);
  record.writeUInt32LE(included, 8);
  record.writeUInt32LE(frame.packet.length, 12);
  record.set(frame.packet.subarray(0, included), PCAP_RECORD_HEADER_BYTES);
  return record;
}

/**
 * Streams frames of one link into a pcap file: write() as frames arrive (e.g. from link.tap()),
 * close() at the end. Output is buffered; nothing is lost as long as close() is called.
 */
export class PcapWriter {
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private frames = 0;

  constructor(
    readonly path: string,
    private readonly linkType = LINKTYPE_RAW,
  ) {
    this.fd = openSync(path, 'w');
    this.queue(pcapGlobalHeader(linkType));
  }

  get count(): number {
    return this.frames;
  }

  write(frame: PcapFrame): void {
    if (this.fd === undefined)
      throw new Error(`pcap writer for ${this.path} is closed; open a new PcapWriter to write more frames`);
    this.queue(pcapRecord(frame));
    this.frames++;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  /** Writes what is buffered and closes the file; a second call does nothing. */
  close(): void {
    if (this.fd === undefined) return;
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private queue(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  private flush(): void {
    if (this.fd === undefined || this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    for (let at = 0; at < chunk.length; ) at += writeSync(this.fd, chunk, at, chunk.length - at);
  }
}

/**
 * The frames worth keeping of a run in phases: every frame before the first start (the probes), then the first
 * `perFlow` frames of each flow that started at `flowStarts[i]` (ms, ascending) — a TCP stream's handshake and first
 * segments, not the whole stream. `frames` are in time order.
 */
export function firstFramesOfFlows<F extends PcapFrame>(
  frames: readonly F[],
  flowStarts: readonly number[],
  perFlow: number,
): F[] {
  const kept: F[] = [];
  let flow = -1;
  let inFlow = 0;
  for (const frame of frames) {
    while (flow + 1 < flowStarts.length && frame.time >= flowStarts[flow + 1]) {
      flow++;
      inFlow = 0;
    }
    if (flow >= 0 && inFlow++ >= perFlow) continue;
    kept.push(frame);
  }
  return kept;
}

/** Writes all frames (one link's captures) to `path`; returns how many were written. */
export function writePcap(path: string, frames: Iterable<PcapFrame>): number {
  const writer = new PcapWriter(path);
  try {
    for (const frame of frames) writer.write(frame);
  } finally {
    writer.close();
  }
  return writer.count;
}
