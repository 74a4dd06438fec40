// tshark with wireshark/mipsec-skip.lua on packets the engines built and src/net/pcap.ts wrote: the SKIP fields
// decode to what was put in, Wireshark's AH and ESP dissectors take over behind SKIP, and the key log of
// src/keys/keylog.ts lets Wireshark decrypt the SPI-mode and the SKIP-mode ESP down to the inner IPv4 header.
process.env.MIPSEC_NATIVE = '1';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeKeyLog } from '../../src/keys/keylog.js';
import { writePcap } from '../../src/net/pcap.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { buildUdpDatagram } from '../../src/wire/udp.js';
import { ADDR, hex, IMPLS } from '../engine/fixtures.js';
import { buildCaptures, endPair, FIXTURE_N, INNER_UDP_PORT, nexthopPair, skipPair, type Captures } from './packets.js';
import { configHome, ensureTshark, tshark, tsharkFields } from './tshark.js';

/** Capture times (ms): microsecond parts that a millisecond or float-rounding bug would change. */
const TIMES = [1_795_000_000_000.001, 1_795_000_000_001.5, 1_795_000_000_250.999];

/** The protocol stack up to the inner UDP header (Wireshark's heuristics may name random UDP payload anything). */
const upToUdp = (protocols: string) => protocols.replace(/:udp:.*$/, ':udp');

beforeAll(() => ensureTshark(), 900_000);

describe.each(IMPLS)('[%s] tshark decodes engine-built SPI, SKIP and next-hop-wrapped packets', (impl) => {
  let captures: Captures;
  let pcap: string;
  let keyHome: string;
  let espSaPath: string;

  beforeAll(() => {
    captures = buildCaptures(impl);
    const dir = mkdtempSync(join(tmpdir(), `mipsec-tshark-${impl}-`));
    pcap = join(dir, 'link.pcap');
    writePcap(
      pcap,
      captures.packets.map((p, i) => ({ time: TIMES[i], packet: p.packet })),
    );
    espSaPath = writeKeyLog(dir, captures.sas).espSaPath;
    keyHome = configHome();
    mkdirSync(join(keyHome, 'wireshark'));
    copyFileSync(espSaPath, join(keyHome, 'wireshark', 'esp_sa'));
  });

  it('without keys: the stacks, the times, and AH / ESP dissected behind SKIP with SPI 1', () => {
    const rows = tsharkFields(pcap, [
      'frame.protocols',
      'frame.time_epoch',
      'ip.src',
      'ip.dst',
      'ah.spi',
      'ah.next_header',
      'ah.sequence',
      'esp.spi',
      'esp.sequence',
    ]);
    expect(rows).toEqual([
      [['raw:ip:esp'], ['1795000000.000001000'], [ADDR.sgw1], [ADDR.sgw0], [], [], [], ['0x00001016'], ['1']],
      [
        ['raw:ip:skip:ah:esp'],
        ['1795000000.001500000'],
        [ADDR.sgw0],
        [ADDR.smnCoa],
        ['0x00000001'],
        ['50'],
        ['1'],
        ['0x00000001'],
        ['1'],
      ],
      [
        ['raw:ip:skip:ah:ip:skip:ah:esp'],
        ['1795000000.250999000'],
        [ADDR.smnCoa, ADDR.smnCoa],
        [ADDR.sgw1, ADDR.sgw0],
        ['0x00000001', '0x00000001'],
        ['4', '50'],
        ['1', '1'],
        ['0x00000001'],
        ['1'],
      ],
    ]);
  });

  it('SKIP fields decode to the values the SAs put in', () => {
    const fields = [
      'skip.version',
      'skip.reserved',
      'skip.src_nsid',
      'skip.dst_nsid',
      'skip.next_header',
      'skip.n',
      'skip.kij_alg',
      'skip.crypt_alg',
      'skip.mac_alg',
      'skip.comp_alg',
      'skip.wrapped_kp',
      'skip.src_mkid_ipv4',
      'skip.dst_mkid_ipv4',
    ];
    const rows = tsharkFields(pcap, fields);
    const kp = (sa: { skipHeader?: Uint8Array }) => hex(sa.skipHeader!.subarray(12, 52));
    expect(rows[0]).toEqual(fields.map(() => []));
    expect(rows[1]).toEqual([
      ['1'],
      ['0x00'],
      ['0'],
      ['1'],
      ['51'],
      [String(FIXTURE_N)],
      ['250'],
      ['250'],
      ['250'],
      ['0'],
      [kp(skipPair.out)],
      [],
      [ADDR.smnHome],
    ]);
    expect(rows[2]).toEqual([
      ['1', '1'],
      ['0x00', '0x00'],
      ['0', '1'],
      ['0', '0'],
      ['51', '51'],
      [String(FIXTURE_N), String(FIXTURE_N)],
      ['250', '250'],
      ['0', '251'],
      ['250', '251'],
      ['0', '0'],
      [kp(nexthopPair.out), kp(endPair.out)],
      [ADDR.smnHome],
      [],
    ]);
  });

  it('the detail view names the algorithms and shows n as the UTC hour it means', () => {
    const text = tshark(['-r', pcap, '-V', '-Y', 'frame.number == 3']);
    expect(text).toContain('SKIP (Simple Key management for Internet Protocols), NSID0 > NSID0, n=17184');
    expect(text).toContain('SKIP (Simple Key management for Internet Protocols), NSID1 10.0.0.100 > NSID0, n=17184');
    expect(text).toContain('[Counter n as UTC hour: Dec 17, 1996 00:00:00.000000000 UTC]');
    for (const name of [
      'Kij Algorithm: AES-256 Key Wrap (mipsec) (250)',
      'Crypt Algorithm: None (0)',
      'MAC Algorithm: AES-128-GMAC (mipsec) (250)',
      'Crypt Algorithm: AES-256-GCM (mipsec) (251)',
      'MAC Algorithm: HMAC-SHA-256-128 (mipsec) (251)',
      'Source MKID (IPv4): 10.0.0.100',
      'Next header: IPIP (4)',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).not.toMatch(/Expert Info \((Error|Warning)\/(Malformed|Protocol)/);
  });

  it('with the key log as a profile esp_sa file: every ESP decrypts to exactly the datagram the engine encrypted', () => {
    const rows = tsharkFields(
      pcap,
      ['frame.protocols', 'ip.src', 'ip.dst', 'udp.dstport', 'esp.contained_data'],
      ['-o', 'esp.enable_encryption_decode:TRUE'],
      { home: keyHome },
    );
    const [spi, skip, wrapped] = captures.inner;
    expect(rows.map((r) => upToUdp(r[0][0]))).toEqual([
      'raw:ip:esp:ip:udp',
      'raw:ip:skip:ah:esp:ip:udp',
      'raw:ip:skip:ah:ip:skip:ah:esp:ip:udp',
    ]);
    expect(rows.map((r) => [r[1], r[2], r[3]])).toEqual([
      [[ADDR.sgw1, spi.src], [ADDR.sgw0, spi.dst], [String(INNER_UDP_PORT)]],
      [[ADDR.sgw0, skip.src], [ADDR.smnCoa, skip.dst], [String(INNER_UDP_PORT)]],
      [[ADDR.smnCoa, ADDR.smnCoa, wrapped.src], [ADDR.sgw1, ADDR.sgw0, wrapped.dst], [String(INNER_UDP_PORT)]],
    ]);
    expect(rows.map((r) => r[4])).toEqual(captures.inner.map((d) => [hex(d.bytes)]));
  });

  it('the same lines given as -o uat:esp_sa options decrypt too; without enabling decryption nothing opens', () => {
    const uat = readFileSync(espSaPath, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('"'))
      .flatMap((l) => ['-o', `uat:esp_sa:${l}`]);
    expect(uat.length).toBe(2 * 3);
    const opened = tsharkFields(pcap, ['frame.protocols'], ['-o', 'esp.enable_encryption_decode:TRUE', ...uat]);
    expect(opened.map((r) => upToUdp(r[0][0]).endsWith(':esp:ip:udp'))).toEqual([true, true, true]);
    const closed = tsharkFields(pcap, ['frame.protocols'], [], { home: keyHome });
    expect(closed.map((r) => r[0][0].endsWith(':esp'))).toEqual([true, true, true]);
  });
});

describe('the UDP transport (docs/engine.md §9.1): each sealed packet whole inside a UDP datagram', () => {
  const [GW_A, GW_B] = ['192.0.2.1', '192.0.2.2'];
  const carried = (port: number) => {
    const captures = buildCaptures('native');
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-tshark-udp-'));
    const pcap = join(dir, 'udp.pcap');
    const outer = (packet: Uint8Array) =>
      buildUdpDatagram({ src: ipToU32(GW_A), dst: ipToU32(GW_B), srcPort: port, dstPort: port, ttl: 64 }, packet);
    writePcap(
      pcap,
      captures.packets.map((p, i) => ({ time: TIMES[i], packet: outer(p.packet) })),
    );
    const home = configHome();
    mkdirSync(join(home, 'wireshark'));
    copyFileSync(writeKeyLog(dir, captures.sas).espSaPath, join(home, 'wireshark', 'esp_sa'));
    return { pcap, home, captures };
  };

  it('on port 4741 the payload decodes as the packet the draft defines, and its ESP opens with the key log', () => {
    const { pcap, home, captures } = carried(4741);
    const rows = tsharkFields(
      pcap,
      ['frame.protocols', 'ip.src', 'udp.port', 'esp.contained_data'],
      ['-o', 'esp.enable_encryption_decode:TRUE'],
      { home },
    );
    expect(rows.map((r) => r[0][0].replace(/^(.*?:esp:ip:udp).*$/, '$1'))).toEqual([
      'raw:ip:udp:mipsec_udp:ip:esp:ip:udp',
      'raw:ip:udp:mipsec_udp:ip:skip:ah:esp:ip:udp',
      'raw:ip:udp:mipsec_udp:ip:skip:ah:ip:skip:ah:esp:ip:udp',
    ]);
    expect(rows[1][1].slice(0, 2)).toEqual([GW_A, ADDR.sgw0]);
    expect(rows.map((r) => r[3])).toEqual(captures.inner.map((d) => [hex(d.bytes)]));
  });

  it('another port is a preference (-o mipsec_udp.port:N); without it the payload stays opaque', () => {
    const { pcap } = carried(4800);
    expect(
      tsharkFields(pcap, ['frame.protocols'])
        .map((r) => r[0][0])
        .some((p) => p.includes('skip')),
    ).toBe(false);
    const rows = tsharkFields(pcap, ['frame.protocols'], ['-o', 'mipsec_udp.port:4800']);
    expect(rows.map((r) => r[0][0])).toEqual([
      'raw:ip:udp:mipsec_udp:ip:esp',
      'raw:ip:udp:mipsec_udp:ip:skip:ah:esp',
      'raw:ip:udp:mipsec_udp:ip:skip:ah:ip:skip:ah:esp',
    ]);
  });
});

describe('hostile SKIP headers: expert info, never a Lua error', () => {
  const ip = (payload: number[]) =>
    buildIpv4(
      { src: ipToU32('10.0.0.1'), dst: ipToU32('10.0.0.2'), protocol: IpProto.SKIP, ttl: 64 },
      Uint8Array.from(payload),
    );
  const fixed = (
    o: {
      ver?: number;
      src?: number;
      dst?: number;
      next?: number;
      kij?: number;
      crypt?: number;
      mac?: number;
      comp?: number;
    } = {},
  ) => [
    o.ver ?? 0x10,
    o.src ?? 0,
    o.dst ?? 0,
    o.next ?? 51,
    0,
    0,
    0x43,
    0x20,
    o.kij ?? 250,
    o.crypt ?? 0,
    o.mac ?? 251,
    o.comp ?? 0,
  ];
  const kp = new Array(40).fill(0xaa);
  const cases: [string, number[], string, string][] = [
    // Wireshark's IPv4 dissector does not hand an empty payload on: nothing to check but that nothing breaks.
    ['no bytes', [], 'raw:ip', ''],
    ['3 bytes', [0x10, 0, 0], 'raw:ip:skip', 'SKIP header truncated: 3 of 12 fixed bytes'],
    ['version 2', fixed({ ver: 0x20 }), 'raw:ip:skip', 'SKIP version 2, expected 1'],
    ['NSID 12', fixed({ src: 12 }), 'raw:ip:skip', 'Unknown NSID: MKID length unknown'],
    ['NSID 255 at the destination', fixed({ dst: 255 }), 'raw:ip:skip', 'Unknown NSID: MKID length unknown'],
    ['Kij alg 7', fixed({ kij: 7 }), 'raw:ip:skip', 'Unknown algorithm: wrapped Kp length unknown'],
    [
      'classic Kij with an unknown MAC',
      fixed({ kij: 1, mac: 99 }),
      'raw:ip:skip',
      'Unknown algorithm: wrapped Kp length unknown',
    ],
    ['wrapped Kp cut short', [...fixed(), ...kp.slice(0, 39)], 'raw:ip:skip', 'SKIP header truncated: 51 of 52 bytes'],
    ['MKID cut short', [...fixed({ src: 1 }), ...kp, 10, 0], 'raw:ip:skip', 'SKIP header truncated: 54 of 56 bytes'],
    ['reserved nibble 3', [...fixed({ ver: 0x13 }), ...kp], 'raw:ip:skip', 'SKIP reserved nibble is not 0'],
    ['compression 1', [...fixed({ comp: 1 }), ...kp], 'raw:ip:skip', 'SKIP compression is not supported'],
    [
      'AH behind SKIP truncated',
      [...fixed(), ...kp, 50, 0, 0, 0],
      'raw:ip:skip:ah',
      'Malformed Packet (Exception occurred)',
    ],
    ['unknown next header', [...fixed({ next: 253 }), ...kp, 1, 2, 3], 'raw:ip:skip:data', ''],
  ];
  let pcap: string;
  beforeAll(() => {
    pcap = join(mkdtempSync(join(tmpdir(), 'mipsec-tshark-bad-')), 'bad.pcap');
    writePcap(
      pcap,
      cases.map(([, payload], i) => ({ time: 1000 + i, packet: ip(payload) })),
    );
  });

  it.each(cases.map((c, i) => [i, ...c] as const))('#%i %s', (i, _name, _payload, protocols, message) => {
    const rows = tsharkFields(pcap, ['frame.protocols', '_ws.expert.message'], ['-Y', `frame.number == ${i + 1}`]);
    expect(rows.length).toBe(1);
    expect(rows[0][0]).toEqual([protocols]);
    expect(rows[0][1]).toEqual(message ? [message] : []);
  });
});

describe('classic SKIP-06 numbers and the other NSIDs', () => {
  it('3DES Kij with 3DES + keyed MD5 wraps a 24-byte Kp; an IPv6 and a MAC-address MKID decode; ESP follows', () => {
    const payload = [
      0x10,
      3,
      7,
      50,
      0,
      0,
      0x43,
      0x20,
      2,
      2,
      1,
      0,
      ...new Array(24).fill(0xbb),
      0x20,
      0x01,
      0x0d,
      0xb8,
      ...new Array(11).fill(0),
      0x01,
      0x02,
      0x00,
      0x5e,
      0x00,
      0x53,
      0x01,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      9,
      ...new Array(16).fill(0xcc),
    ];
    const pcap = join(mkdtempSync(join(tmpdir(), 'mipsec-tshark-classic-')), 'classic.pcap');
    writePcap(pcap, [
      {
        time: 1,
        packet: buildIpv4(
          { src: ipToU32('10.0.0.1'), dst: ipToU32('10.0.0.2'), protocol: IpProto.SKIP, ttl: 64 },
          Uint8Array.from(payload),
        ),
      },
    ]);
    const rows = tsharkFields(pcap, [
      'frame.protocols',
      'skip.wrapped_kp',
      'skip.src_mkid_ipv6',
      'skip.dst_mkid',
      'esp.spi',
      'esp.sequence',
      '_ws.expert.message',
    ]);
    expect(rows).toEqual([
      [['raw:ip:skip:esp'], ['bb'.repeat(24)], ['2001:db8::1'], ['02005e005301'], ['0x00000001'], ['9'], []],
    ]);
    const text = tshark(['-r', pcap, '-V']);
    for (const name of [
      'Kij Algorithm: 3DES-EDE-CBC (2)',
      'Crypt Algorithm: 3DES-EDE-CBC (2)',
      'MAC Algorithm: Keyed MD5 (1)',
      'Source NSID: IPv6 address (3)',
      'Destination NSID: 802.x MAC address (7)',
      'NSID3 2001:db8::1 > NSID7 02005e005301',
    ]) {
      expect(text).toContain(name);
    }
  });
});
