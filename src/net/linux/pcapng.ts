// A streaming reader for the pcapng that dumpcap writes to a pipe when it captures on several
// interfaces at once: section header, one interface description per interface, enhanced packets.
// Input arrives in arbitrary chunks; every length is checked before it is used.

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_END = 0;
const OPT_IF_NAME = 2;
const OPT_IF_TSRESOL = 9;
const MIN_BLOCK = 12;
/** Larger blocks are not from dumpcap with a 64 KiB snap length: the stream is broken. */
const MAX_BLOCK = 1 << 20;

export interface PcapngFrame {
  /** The name dumpcap gave the interface (if_name), or its index as text. */
  iface: string;
  /** Capture time in Unix ms (fractional). */
  timeMs: number;
  /** Link-layer frame as captured. */
  data: Uint8Array;
}

interface InterfaceDesc {
  name: string;
  /** Timestamp units per second. */
  unitsPerSecond: number;
}

export class PcapngReader {
  private pending: Buffer = Buffer.alloc(0);
  private little = true;
  private readonly interfaces: InterfaceDesc[] = [];
  private broken: string | undefined;

  /** Why the stream could not be read further, if it could not. */
  get error(): string | undefined {
    return this.broken;
  }

  /** Adds bytes; returns the packets completed by them. */
  push(chunk: Uint8Array): PcapngFrame[] {
    if (this.broken) return [];
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk);
    const frames: PcapngFrame[] = [];
    let at = 0;
    while (this.pending.length - at >= MIN_BLOCK) {
      const type = this.pending.readUInt32LE(at);
      if (type === SHB) {
        const magic = this.pending.readUInt32LE(at + 8);
        if (magic === BYTE_ORDER_MAGIC) this.little = true;
        else if (magic === 0x4d3c2b1a) this.little = false;
        else return this.fail(`section header with byte-order magic 0x${magic.toString(16)}`, frames);
        this.interfaces.length = 0;
      }
      const length = this.u32(at + 4);
      if (length < MIN_BLOCK || length % 4 !== 0 || length > MAX_BLOCK)
        return this.fail(`block length ${length} at byte ${at}`, frames);
      if (this.pending.length - at < length) break;
      const body = this.pending.subarray(at + 8, at + length - 4);
      const blockType = this.u32(at);
      if (blockType === IDB) this.readInterface(body);
      else if (blockType === EPB) {
        const frame = this.readPacket(body);
        if (typeof frame === 'string') return this.fail(frame, frames);
        frames.push(frame);
      }
      at += length;
    }
    this.pending = this.pending.subarray(at);
    return frames;
  }

  private fail(why: string, frames: PcapngFrame[]): PcapngFrame[] {
    this.broken = `pcapng stream: ${why}`;
    this.pending = Buffer.alloc(0);
    return frames;
  }

  private u32(at: number, buf: Buffer = this.pending): number {
    return this.little ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  private u16(at: number, buf: Buffer): number {
    return this.little ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  private readInterface(body: Buffer): void {
    const desc: InterfaceDesc = { name: String(this.interfaces.length), unitsPerSecond: 1e6 };
    let at = 8;
    while (body.length - at >= 4) {
      const code = this.u16(at, body);
      const len = this.u16(at + 2, body);
      if (code === OPT_END || body.length - at - 4 < len) break;
      const value = body.subarray(at + 4, at + 4 + len);
      if (code === OPT_IF_NAME) desc.name = value.toString('utf8').replace(/\0+$/, '');
      if (code === OPT_IF_TSRESOL && len >= 1)
        desc.unitsPerSecond = value[0] & 0x80 ? 2 ** (value[0] & 0x7f) : 10 ** value[0];
      at += 4 + ((len + 3) & ~3);
    }
    this.interfaces.push(desc);
  }

  private readPacket(body: Buffer): PcapngFrame | string {
    if (body.length < 20) return `enhanced packet block of ${body.length} bytes`;
    const ifid = this.u32(0, body);
    const desc = this.interfaces[ifid];
    if (!desc) return `packet on interface ${ifid}, which was never described`;
    const units = this.u32(4, body) * 2 ** 32 + this.u32(8, body);
    const caplen = this.u32(12, body);
    if (caplen > body.length - 20) return `captured length ${caplen} beyond its block`;
    return { iface: desc.name, timeMs: (units / desc.unitsPerSecond) * 1000, data: body.slice(20, 20 + caplen) };
  }
}
