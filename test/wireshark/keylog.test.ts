// src/keys/keylog.ts: the esp_sa lines Wireshark reads, the SKIP SA records, file permissions and de-duplication.
import { createDecipheriv, createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { espSaLine, KeyLogWriter, skipSaRecord, writeKeyLog } from '../../src/keys/keylog.js';
import { KeyLog } from '../../src/roles/common/keylog.js';
import { CertCache } from '../../src/keys/cache.js';
import type { Identity } from '../../src/keys/keyfile.js';
import { SkipKeying } from '../../src/keys/keying.js';
import { decodeSkipHeader } from '../../src/wire/skip.js';
import { makeCa, makeIdentity, T0 } from '../keys/helpers.js';
import { ADDR, endSaPair, hex, nexthopSaPair } from '../engine/fixtures.js';
import { endPair, nexthopPair, skipPair, spiPair } from './packets.js';

const dir = () => mkdtempSync(join(tmpdir(), 'mipsec-keylog-'));
const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0);

describe('esp_sa lines', () => {
  it("SPI mode: protocol, src, dst, SPI in hex, Wireshark's AES-GCM name, key ‖ salt, NULL auth", () => {
    expect(espSaLine(spiPair.out)).toBe(
      `"IPv4","198.18.1.10","198.18.0.1","0x00001016","AES-GCM with 16 octet ICV [RFC4106]","0x${hex(spiPair.out.esp!.key)}","NULL",""`,
    );
    expect(spiPair.out.esp!.key.length).toBe(16 + 4);
  });

  it('SKIP mode uses SPI 1; AES-256-GCM carries its 36-byte key; a next-hop SA (AH only) has no line', () => {
    expect(espSaLine(endPair.out)).toBe(
      `"IPv4","10.1.0.100","198.18.0.1","0x00000001","AES-GCM with 16 octet ICV [RFC4106]","0x${hex(endPair.out.esp!.key)}","NULL",""`,
    );
    expect(endPair.out.esp!.key.length).toBe(36);
    expect(espSaLine(nexthopPair.out)).toBeUndefined();
  });

  it('ChaCha20-Poly1305 is commented out unless asked for (Wireshark 4.0 rejects the name)', () => {
    const chacha = endSaPair({ suite: 'chacha20poly1305', mode: 'spi', id: 31, src: ADDR.sgw0, dst: ADDR.sgw2 });
    const line = espSaLine(chacha.out)!;
    expect(line.startsWith('#"IPv4","198.18.0.1","198.18.2.1","0x0000103e","ChaCha20 with Poly1305 [RFC7634]"')).toBe(
      true,
    );
    expect(espSaLine(chacha.out, { chacha20: true })).toBe(line.slice(1));
  });
});

describe('SKIP SA records', () => {
  it('carry the SKIP header fields, the hour n names, the wrapped Kp and E_kp / A_kp', () => {
    expect(skipSaRecord(endPair.in, 'sgw0')).toEqual({
      node: 'sgw0',
      sa: endPair.in.id,
      direction: 'in',
      role: 'end',
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      srcNsid: 1,
      srcMkid: ADDR.smnHome,
      dstNsid: 0,
      nextHeader: 51,
      n: 0x4320,
      nHour: '1996-12-17T00:00:00.000Z',
      kijAlg: 250,
      cryptAlg: 251,
      macAlg: 251,
      compAlg: 0,
      wrappedKp: hex(endPair.in.skipHeader!.subarray(12, 52)),
      esp: { suite: 'aes256gcm', spi: 1, key: hex(endPair.in.esp!.key) },
      // An end layer's AH covers the whole datagram: its coverage is written too.
      ah: { alg: 'hmac-sha256-128', spi: 1, key: hex(endPair.in.ah!.key), coverage: 'full' },
    });
    expect(skipSaRecord(nexthopPair.out)).toMatchObject({
      role: 'nexthop',
      cryptAlg: 0,
      macAlg: 250,
      ah: { alg: 'gmac-aes128', coverage: 'full' },
    });
    const headers = nexthopSaPair({
      alg: 'hmac-sha256-128',
      mode: 'skip',
      id: 42,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
      coverage: 'headers',
    });
    expect(skipSaRecord(headers.out)!.ah!.coverage).toBe('headers');
    expect(skipSaRecord(endPair.in)).not.toHaveProperty('kij');
    expect(skipSaRecord(nexthopPair.out)!.esp).toBeUndefined();
    expect(skipSaRecord(skipPair.out)).toMatchObject({ srcNsid: 0, dstNsid: 1, dstMkid: ADDR.smnHome });
    expect(skipSaRecord(spiPair.out)).toBeUndefined();
  });

  it('refuse an SA whose SKIP header does not parse, naming the SA and never the key', () => {
    const broken = { ...skipPair.out, skipHeader: skipPair.out.skipHeader!.slice(0, 20) };
    expect(() => skipSaRecord(broken)).toThrow(/SA 12 skipHeader does not parse \(truncated\)/);
    try {
      skipSaRecord(broken);
    } catch (error) {
      expect(String(error)).not.toContain(hex(skipPair.out.esp!.key));
    }
    expect(() => skipSaRecord({ ...skipPair.out, skipHeader: undefined })).toThrow(
      /SA 12 is in skip mode but has no skipHeader/,
    );
  });
});

describe('key log files', () => {
  it('are created 0600, also over an existing world-readable file, and list each SA once although both ends record it', () => {
    const d = dir();
    writeFileSync(join(d, 'esp_sa'), 'old');
    chmodSync(join(d, 'esp_sa'), 0o644);
    const writer = new KeyLogWriter(d);
    for (const pair of [spiPair, skipPair, endPair, nexthopPair]) {
      writer.record(pair.out, 'sender');
      writer.record(pair.in, 'receiver');
      writer.record(pair.out, 'sender');
    }
    writer.close();
    for (const file of ['esp_sa', 'skip-sa.jsonl']) expect(statSync(join(d, file)).mode & 0o777).toBe(0o600);
    const esp = lines(join(d, 'esp_sa'));
    expect(esp.filter((l) => l.startsWith('#')).length).toBe(3);
    expect(esp.filter((l) => !l.startsWith('#'))).toEqual([
      espSaLine(spiPair.out),
      espSaLine(skipPair.out),
      espSaLine(endPair.out),
    ]);
    const records = lines(join(d, 'skip-sa.jsonl')).map((l) => JSON.parse(l));
    expect(records.map((r) => [r.node, r.sa, r.direction, r.role])).toEqual([
      ['sender', 12, 'out', 'end'],
      ['receiver', 1012, 'in', 'end'],
      ['sender', 13, 'out', 'end'],
      ['receiver', 1013, 'in', 'end'],
      ['sender', 14, 'out', 'nexthop'],
      ['receiver', 1014, 'in', 'nexthop'],
    ]);
    expect(() => writer.record(spiPair.out)).toThrow(/closed; open a new KeyLogWriter/);
  });

  it('writeKeyLog takes SAs with or without the node that installed them', () => {
    const d = dir();
    const other = nexthopSaPair({
      alg: 'hmac-sha256-128',
      mode: 'skip',
      id: 41,
      src: ADDR.sgw1,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.sgw1 },
    });
    const paths = writeKeyLog(d, [skipPair.out, { sa: other.out, node: 'sgw1' }]);
    expect(paths).toEqual({ espSaPath: join(d, 'esp_sa'), skipSaPath: join(d, 'skip-sa.jsonl') });
    const records = lines(paths.skipSaPath).map((l) => JSON.parse(l));
    expect(records.map((r) => [r.node, r.sa, r.srcMkid])).toEqual([
      [undefined, 12, undefined],
      ['sgw1', 41, ADDR.sgw1],
    ]);
  });
});

describe('key chain (test runs only)', () => {
  const chain = { kij: 'ab'.repeat(32), kp: 'cd'.repeat(32) };

  it('is written only by a writer opened with keyChain, next to the SA it keyed; an SPI SA has none', () => {
    const plain = dir();
    const off = new KeyLogWriter(plain);
    off.record(endPair.out, 'sgw0', chain);
    off.close();
    expect(readFileSync(join(plain, 'skip-sa.jsonl'), 'utf8')).not.toContain(chain.kij);
    const asked = dir();
    const on = new KeyLogWriter(asked, { keyChain: true });
    on.record(endPair.out, 'sgw0', chain);
    on.record(spiPair.out, 'sgw0', chain);
    on.close();
    const records = lines(join(asked, 'skip-sa.jsonl')).map((l) => JSON.parse(l));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ sa: endPair.out.id, kij: chain.kij, kp: chain.kp });
    expect(readFileSync(join(asked, 'esp_sa'), 'utf8')).not.toContain(chain.kp);
  });

  it("the roles' KeyLog offers a sink only when asked, and keeps what SkipKeying hands it per SA", () => {
    expect(new KeyLog().keyChainSink).toBeUndefined();
    const log = new KeyLog({ keyChain: true });
    log.keyChainSink!(endPair.out, { kij: Buffer.from(chain.kij, 'hex'), n: 1, kp: Buffer.from(chain.kp, 'hex') });
    expect(log.keyChainOf(endPair.out)).toEqual(chain);
    expect(log.keyChainOf(endPair.in)).toBeUndefined();
  });

  it('SkipKeying hands the sink the Kij and Kp of each new SA, the same at both ends, kept past the zeroing', () => {
    const ca = makeCa();
    const smnId = makeIdentity(ca, 'smn:10.0.0.100');
    const sgwId = makeIdentity(ca, 'sgw:198.18.0.1');
    const logs = [new KeyLog({ keyChain: true }), new KeyLog({ keyChain: true })];
    const [smn, sgw] = [
      [smnId, sgwId, logs[0]],
      [sgwId, smnId, logs[1]],
    ].map(([id, peer, log]) => {
      const certs = new CertCache(ca.cert);
      certs.add((peer as Identity).cert, T0);
      return new SkipKeying({ identity: id as Identity, certs, now: () => T0, keyChain: (log as KeyLog).keyChainSink });
    }) as [SkipKeying, SkipKeying];
    const out = smn.outboundSa({
      peer: sgwId.name,
      src: '10.1.0.100',
      dst: '198.18.0.1',
      role: 'end',
      esp: 'aes256gcm',
      ah: 'hmac-sha256-128',
    });
    if (!out.ok || !out.created) throw new Error('no outbound SA');
    const inn = sgw.inboundSa({ packet: out.sa.skipHeader!, src: '10.1.0.100', dst: '198.18.0.1' });
    if (!inn.ok || !inn.created) throw new Error('no inbound SA');
    const sent = logs[0].keyChainOf(out.sa)!;
    expect(logs[1].keyChainOf(inn.sa)).toEqual(sent);
    // node:crypto, not our derive.ts: Kijn = last 32 bytes of BLAKE2b-512(Kij | n | 0); AES-256-KW unwraps the Kp.
    const n = decodeSkipHeader(out.sa.skipHeader!, 0);
    if (!n.ok) throw new Error('header');
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(n.header.n);
    const kijnInput = Buffer.concat([Buffer.from(sent.kij, 'hex'), counter, Buffer.of(0)]);
    const kijn = createHash('blake2b512').update(kijnInput).digest().subarray(32);
    const unwrap = createDecipheriv('id-aes256-wrap', kijn, Buffer.from('a6a6a6a6a6a6a6a6', 'hex'));
    expect(Buffer.concat([unwrap.update(n.header.wrappedKp), unwrap.final()]).toString('hex')).toBe(sent.kp);
    expect(new KeyLog().keyChainOf(out.sa)).toBeUndefined();
  });
});
