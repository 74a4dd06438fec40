// Issue 10 hole 7: "manual SPI-mode SAs skip their selectors". An inbound End-End SA carries traffic selectors
// (RFC 4301 §5.2) that the engine checks after the layer opens: a datagram whose source or destination lies
// outside them is dropped with reason `selector` (counted). Manual SAs get their entry's remote → local prefixes.
process.env.MIPSEC_NATIVE = '1';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { manualSaTables, type ManualSaEntry } from '../../src/config/manual-sa.js';
import { Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import { aeadSeal, ivFromSeq, keyMaterial } from '../../src/engine/ref/crypto.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import { ADDR, MODES, datagram, endSaPair, engineWith, hex, runOne } from '../engine/fixtures.js';

const opened: Engine[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function track(e: Engine): Engine {
  opened.push(e);
  return e;
}

describe.each(['native', 'ts'] as const)('[%s] engine: End-End traffic selectors', (impl) => {
  for (const mode of MODES) {
    it(`hole 7 (${mode}): an opened datagram from or to outside the SA's selectors is dropped as selector, counted`, () => {
      const pair = endSaPair({ suite: 'aes128gcm', mode, id: 311, src: ADDR.sgw1, dst: ADDR.sgw0 });
      const selectors = { src: ['10.1.0.0/16', '10.11.0.0/24'], dst: ['10.0.0.0/24'] };
      const tx = track(engineWith(impl, [pair.out]));
      const rx = track(engineWith(impl, [{ ...pair.in, selectors }]));
      const cases: [string, Uint8Array, 'deliver' | 'selector'][] = [
        ['site 1 → CH0', datagram(90, { src: ADDR.smnCoa, dst: ADDR.ch0 }), 'deliver'],
        ['the second source prefix', datagram(90, { src: '10.11.0.9', dst: ADDR.ch0 }), 'deliver'],
        ['to the Internet', datagram(90, { src: ADDR.smnCoa, dst: '8.8.8.8' }), 'selector'],
        ['to another site', datagram(90, { src: ADDR.smnCoa, dst: '10.2.0.1' }), 'selector'],
        ['from a source the peer does not speak for', datagram(90, { src: '10.99.0.1', dst: ADDR.ch0 }), 'selector'],
        ['from the destination site itself', datagram(90, { src: '10.0.0.9', dst: ADDR.ch0 }), 'selector'],
      ];
      for (const [what, inner, want] of cases) {
        const r = runOne(rx, Op.INBOUND, runOne(tx, Op.ENCAP, inner, pair.out.id).packet);
        if (want === 'deliver')
          expect([what, r.verdict, r.sa, hex(r.packet)]).toEqual([what, Verdict.DELIVER, pair.in.id, hex(inner)]);
        else expect([what, r.verdict, r.reason, r.sa]).toEqual([what, Verdict.DROP, Reason.selector, pair.in.id]);
      }
      expect(rx.counters()[Reason.selector]).toBe(4n);
      expect(rx.saStats(pair.in.id)?.packets, 'only delivered datagrams count').toBe(2n);
    });
  }

  it('hole 7: a decrypted datagram too short to name its addresses is dropped as selector', () => {
    const key = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 312, src: ADDR.sgw1, dst: ADDR.sgw0 }).in;
    const rx = track(engineWith(impl, [{ ...key, selectors: { src: ['0.0.0.0/0'], dst: ['0.0.0.0/0'] } }]));
    const spi = key.esp!.spi;
    const head = new Uint8Array(16);
    new DataView(head.buffer).setUint32(0, spi);
    new DataView(head.buffer).setUint32(4, 1);
    head.set(ivFromSeq(1), 8);
    const plaintext = Uint8Array.from([0x45, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 2, 4]); // 12 bytes, padding 1 2, pad length 2, next 4
    const sealed = aeadSeal(
      'aes128gcm',
      keyMaterial(key.esp!.key, true),
      head.subarray(8),
      head.subarray(0, 8),
      plaintext,
    );
    const outer = { src: ipToU32(ADDR.sgw1), dst: ipToU32(ADDR.sgw0), protocol: IpProto.ESP };
    const packet = buildIpv4(outer, Buffer.concat([head, sealed.ciphertext, sealed.tag]));
    const r = runOne(rx, Op.INBOUND, packet);
    expect([r.verdict, r.reason]).toEqual([Verdict.DROP, Reason.selector]);
  });

  it('an SA without selectors delivers any datagram (SKIP End-End SAs until the roles set theirs)', () => {
    const pair = endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 313, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const tx = track(engineWith(impl, [pair.out]));
    const rx = track(engineWith(impl, [pair.in]));
    const inner = datagram(60, { src: '10.99.0.1', dst: '8.8.8.8' });
    expect(runOne(rx, Op.INBOUND, runOne(tx, Op.ENCAP, inner, pair.out.id).packet).verdict).toBe(Verdict.DELIVER);
  });

  it('selectors are refused when a side is empty, too long, not a prefix, or has host bits set', () => {
    const base = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 314, src: ADDR.sgw1, dst: ADDR.sgw0 }).in;
    const engine = track(engineWith(impl, []));
    const bad: [SaDesc['selectors'], RegExp][] = [
      [{ src: [], dst: ['10.0.0.0/24'] }, /selectors\.src must list 1\.\.32 prefixes/],
      [
        { src: ['10.0.0.0/24'], dst: Array.from({ length: 33 }, (_, i) => `10.${i}.0.0/16`) },
        /selectors\.dst must list 1\.\.32/,
      ],
      [{ src: ['10.0.0.1'], dst: ['10.0.0.0/24'] }, /selectors\.src: not an IPv4 prefix/],
      [{ src: ['10.0.0.1/24'], dst: ['10.0.0.0/24'] }, /selectors\.src: prefix '10\.0\.0\.1\/24' has host bits set/],
      [{ src: ['10.0.0.0/24'] } as never, /selectors\.dst must list/],
    ];
    for (const [selectors, message] of bad) expect(() => engine.installSa({ ...base, selectors })).toThrow(message);
  });
});

describe.each(['native', 'ts'] as const)('[%s] manual SPI-mode SAs', (impl) => {
  it("hole 7: the peer's key opens only datagrams from the entry's remote prefix to its local one", () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-sel-'));
    dirs.push(dir);
    const key = (name: string, hex: string) => {
      const path = join(dir, name);
      writeFileSync(path, `${hex}\n`, { mode: 0o600 });
      chmodSync(path, 0o600);
      return path;
    };
    const aToB = key('a-to-b.key', '11'.repeat(20));
    const bToA = key('b-to-a.key', '22'.repeat(20));
    const entry = (peer: string, local: string, remote: string, spiOut: number, spiIn: number): ManualSaEntry =>
      ({
        name: 'site',
        peer,
        local,
        remote,
        suite: 'aes128gcm',
        spiOut,
        spiIn,
        keyOut: '',
        keyIn: '',
      }) as ManualSaEntry;
    // gwa (198.18.10.1, site 10.10.0.0/24) ↔ gwb (198.18.20.1, site 10.20.0.0/24).
    const gwaEntry = entry('198.18.20.1', '10.10.0.0/24', '10.20.0.0/24', 4097, 8194);
    const gwbEntry = entry('198.18.10.1', '10.20.0.0/24', '10.10.0.0/24', 8194, 4097);
    const gwa = manualSaTables([gwaEntry], [{ out: aToB, in: bToA }], '198.18.10.1');
    const gwb = manualSaTables([gwbEntry], [{ out: bToA, in: aToB }], '198.18.20.1');
    const a = track(engineWith(impl, gwa.sas));
    const b = track(engineWith(impl, gwb.sas, { local: ['198.18.20.1'], routes: gwb.routes }));
    // gwa seals with its out SA whatever it is given (a compromised or misconfigured peer): gwb judges the inside.
    const seal = (inner: Uint8Array) => runOne(a, Op.ENCAP, inner, gwa.sas[0].id).packet;
    const ok = datagram(80, { src: '10.10.0.5', dst: '10.20.0.7' });
    const delivered = runOne(b, Op.INBOUND, seal(ok));
    expect([delivered.verdict, hex(delivered.packet)]).toEqual([Verdict.DELIVER, hex(ok)]);
    for (const inner of [
      datagram(80, { src: '10.10.0.5', dst: '8.8.8.8' }),
      datagram(80, { src: '10.30.0.1', dst: '10.20.0.7' }),
    ]) {
      const r = runOne(b, Op.INBOUND, seal(inner));
      expect([r.verdict, r.reason]).toEqual([Verdict.DROP, Reason.selector]);
    }
    expect(b.counters()[Reason.selector]).toBe(2n);
  });
});
