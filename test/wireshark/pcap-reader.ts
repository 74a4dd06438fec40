// A classic pcap reader for the tests only: checks every length against the bytes present, never reads past them.
export interface PcapRecord {
  seconds: number;
  micros: number;
  origLen: number;
  data: Uint8Array;
}

export interface PcapFile {
  magic: number;
  version: [number, number];
  snaplen: number;
  linkType: number;
  records: PcapRecord[];
}

export function readPcap(bytes: Uint8Array): PcapFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24) throw new Error(`pcap: ${bytes.length} bytes, shorter than the 24-byte global header`);
  const magic = view.getUint32(0, true);
  if (magic !== 0xa1b2c3d4)
    throw new Error(`pcap: magic 0x${magic.toString(16)} is not the little-endian microsecond magic 0xa1b2c3d4`);
  const file: PcapFile = {
    magic,
    version: [view.getUint16(4, true), view.getUint16(6, true)],
    snaplen: view.getUint32(16, true),
    linkType: view.getUint32(20, true),
    records: [],
  };
  let at = 24;
  while (at < bytes.length) {
    if (bytes.length - at < 16) throw new Error(`pcap: record header at ${at} truncated`);
    const included = view.getUint32(at + 8, true);
    if (bytes.length - at - 16 < included)
      throw new Error(`pcap: record at ${at} claims ${included} bytes, ${bytes.length - at - 16} left`);
    file.records.push({
      seconds: view.getUint32(at, true),
      micros: view.getUint32(at + 4, true),
      origLen: view.getUint32(at + 12, true),
      data: bytes.slice(at + 16, at + 16 + included),
    });
    at += 16 + included;
  }
  return file;
}
