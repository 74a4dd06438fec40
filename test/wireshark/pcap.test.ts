// src/net/pcap.ts: the bytes of the classic pcap format, timestamps, streaming, and a real link's captures.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryNetwork } from '../../src/net/index.js';
import {
  firstFramesOfFlows,
  LINKTYPE_RAW,
  PCAP_SNAPLEN,
  PcapWriter,
  pcapRecord,
  writePcap,
} from '../../src/net/pcap.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { readPcap } from './pcap-reader.js';

const dir = () => mkdtempSync(join(tmpdir(), 'mipsec-pcap-'));
const packet = (size: number, fill: number) =>
  buildIpv4(
    { src: ipToU32('10.0.0.1'), dst: ipToU32('10.0.0.2'), protocol: IpProto.UDP, ttl: 64 },
    new Uint8Array(size - 20).fill(fill),
  );

describe('pcap writer', () => {
  it('writes the global header (magic, 2.4, snaplen, LINKTYPE_RAW) and one record per frame with microsecond times', () => {
    const path = join(dir(), 'a.pcap');
    const frames = [
      { time: 1_795_000_000_123.4567, packet: packet(20, 0) },
      { time: 1_795_000_001_000, packet: packet(64, 0xab) },
      { time: 0.0004, packet: packet(21, 7) },
    ];
    expect(writePcap(path, frames)).toBe(3);
    const bytes = readFileSync(path);
    expect(bytes.subarray(0, 24).toString('hex')).toBe(
      'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + 'ffff0000' + '65000000',
    );
    const file = readPcap(bytes);
    expect([file.version, file.snaplen, file.linkType]).toEqual([[2, 4], PCAP_SNAPLEN, LINKTYPE_RAW]);
    expect(file.records.map((r) => [r.seconds, r.micros, r.origLen, r.data.length])).toEqual([
      [1_795_000_000, 123_457, 20, 20],
      [1_795_000_001, 0, 64, 64],
      [0, 0, 21, 21],
    ]);
    expect(file.records.map((r) => Buffer.from(r.data).toString('hex'))).toEqual(
      frames.map((f) => Buffer.from(f.packet).toString('hex')),
    );
    expect(bytes.length).toBe(24 + 3 * 16 + 20 + 64 + 21);
  });

  it('streams: frames beyond the buffer reach the file before close, the rest at close; close twice is harmless; write after close names the fix', () => {
    const path = join(dir(), 'stream.pcap');
    const writer = new PcapWriter(path);
    const big = packet(1400, 0x5a);
    for (let i = 0; i < 100; i++) writer.write({ time: 1000 + i, packet: big });
    expect(statSync(path).size).toBeGreaterThanOrEqual(64 * 1024);
    writer.write({ time: 2000, packet: packet(40, 1) });
    writer.close();
    writer.close();
    expect(writer.count).toBe(101);
    const file = readPcap(readFileSync(path));
    expect(file.records.length).toBe(101);
    expect(file.records[100]).toMatchObject({ seconds: 2, micros: 0, origLen: 40 });
    expect(() => writer.write({ time: 1, packet: big })).toThrow(/closed; open a new PcapWriter/);
  });

  it('refuses a time a classic pcap cannot hold, naming the field', () => {
    expect(() => pcapRecord({ time: -1, packet: packet(20, 0) })).toThrow(/frame time must be a non-negative/);
    expect(() => pcapRecord({ time: Number.NaN, packet: packet(20, 0) })).toThrow(/frame time/);
    expect(() => pcapRecord({ time: 2 ** 32 * 1000, packet: packet(20, 0) })).toThrow(/year 2106/);
  });

  it('cuts a frame at the snaplen and keeps its original length', () => {
    const record = pcapRecord({ time: 1, packet: packet(100, 3) }, 60);
    expect([record.readUInt32LE(8), record.readUInt32LE(12), record.length]).toEqual([60, 100, 16 + 60]);
  });

  it("writes a MemoryNetwork link's captures as they crossed it", () => {
    const net = new MemoryNetwork({ startMs: 1_795_000_000_000 });
    net.addLink('lan');
    const a = net.addHost('a');
    a.addInterface('eth0', 'lan', '10.0.0.1/24');
    const b = net.addHost('b');
    b.addInterface('eth0', 'lan', '10.0.0.2/24');
    const path = join(dir(), 'lan.pcap');
    const writer = new PcapWriter(path);
    const untap = net.link('lan').tap((frame) => writer.write(frame));
    expect(a.send(packet(30, 1))).toEqual({ ok: true });
    expect(
      b.send(
        buildIpv4(
          { src: ipToU32('10.0.0.2'), dst: ipToU32('10.0.0.1'), protocol: IpProto.UDP, ttl: 64 },
          new Uint8Array(12),
        ),
      ),
    ).toEqual({ ok: true });
    untap();
    writer.close();
    const captured = net.link('lan').captures();
    expect(captured.length).toBe(2);
    const file = readPcap(readFileSync(path));
    expect(file.records.map((r) => Buffer.from(r.data).toString('hex'))).toEqual(
      captured.map((c) => Buffer.from(c.packet).toString('hex')),
    );
    expect(file.records.map((r) => r.seconds * 1000 + r.micros / 1000)).toEqual(captured.map((c) => c.time));
  });
});

describe('firstFramesOfFlows', () => {
  const frame = (time: number) => ({ time, packet: packet(20, time) });
  const times = (frames: { time: number }[]) => frames.map((f) => f.time);

  it('keeps every frame before the first flow, then the first N of each flow', () => {
    const frames = [1, 2, 3, 10, 11, 12, 13, 20, 21, 22].map(frame);
    expect(times(firstFramesOfFlows(frames, [10, 20], 2))).toEqual([1, 2, 3, 10, 11, 20, 21]);
  });

  it("without flows keeps everything; a flow with no frames of its own takes none of the next one's allowance", () => {
    const frames = [1, 5, 30, 31, 32].map(frame);
    expect(times(firstFramesOfFlows(frames, [], 1))).toEqual([1, 5, 30, 31, 32]);
    expect(times(firstFramesOfFlows(frames, [10, 30], 2))).toEqual([1, 5, 30, 31]);
  });
});
