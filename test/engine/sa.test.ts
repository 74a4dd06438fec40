// SA descriptors (docs/engine.md §4): both paths refuse bad ones with an error naming the field, accept good ones,
// and the TS path zeroes its key copies when an SA is removed or the engine closed.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Verdict, createEngine, type Engine, type SaDesc } from '../../src/engine/index.js';
import { RefEngine } from '../../src/engine/ref/engine.js';
import { ADDR, IMPLS, datagram, endSaPair, engineWith, nexthopSaPair, runOne, skipHeader } from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

const end = endSaPair({ suite: 'aes128gcm', ah: 'gmac-aes128', mode: 'skip', id: 101, src: ADDR.sgw0, dst: ADDR.sgw1 });
const spi = endSaPair({ suite: 'aes256gcm', mode: 'spi', id: 102, src: ADDR.sgw0, dst: ADDR.sgw1 });
const hop = nexthopSaPair({
  alg: 'hmac-sha256-128',
  coverage: 'headers',
  mode: 'skip',
  id: 103,
  src: ADDR.sgw0,
  dst: ADDR.sgw1,
});

/** [what is wrong, descriptor, the field the error must name]. */
const BAD: [string, SaDesc, RegExp][] = [
  ['id 0', { ...spi.out, id: 0 }, /id/],
  ['id not an integer', { ...spi.out, id: 1.5 }, /id/],
  ['direction', { ...spi.out, direction: 'both' as never }, /direction/],
  ['role', { ...spi.out, role: 'middle' as never }, /role/],
  ['mode', { ...spi.out, mode: 'ike' as never }, /mode/],
  ['src', { ...spi.out, src: '10.0.0' }, /src/],
  ['dst', { ...spi.out, dst: '300.1.1.1' }, /dst/],
  ['end without esp', { ...spi.out, esp: undefined }, /esp/],
  ['nexthop without ah', { ...hop.out, ah: undefined }, /ah/],
  ['nexthop with esp', { ...hop.out, esp: spi.out.esp }, /esp/],
  ['coverage on an end SA', { ...end.out, ah: { ...end.out.ah!, coverage: 'full' } }, /coverage/],
  ['unknown coverage', { ...hop.out, ah: { ...hop.out.ah!, coverage: 'payload' as never } }, /coverage/],
  ['unknown ESP suite', { ...spi.out, esp: { ...spi.out.esp!, suite: 'des' as never } }, /esp\.suite/],
  ['unknown MAC', { ...hop.out, ah: { ...hop.out.ah!, alg: 'md5' as never } }, /ah\.alg/],
  ['ESP key without salt', { ...spi.out, esp: { ...spi.out.esp!, key: new Uint8Array(32) } }, /esp\.key/],
  ['AH key too long', { ...hop.out, ah: { ...hop.out.ah!, key: new Uint8Array(36) } }, /ah\.key/],
  ['ESP key not bytes', { ...spi.out, esp: { ...spi.out.esp!, key: 'secret' as never } }, /esp\.key/],
  ['SPI mode SPI in the reserved range', { ...spi.out, esp: { ...spi.out.esp!, spi: 255 } }, /esp\.spi/],
  ['SKIP mode SPI other than 1', { ...end.out, esp: { ...end.out.esp!, spi: 300 } }, /esp\.spi/],
  ['SKIP mode AH SPI other than 1', { ...end.out, ah: { ...end.out.ah!, spi: 2 } }, /ah\.spi/],
  ['SKIP mode without header', { ...end.out, skipHeader: undefined }, /skipHeader/],
  ['SPI mode with a SKIP header', { ...spi.out, skipHeader: end.out.skipHeader }, /skipHeader/],
  ['SKIP header that does not parse', { ...end.out, skipHeader: new Uint8Array(12) }, /skipHeader/],
  [
    'SKIP header with trailing bytes',
    { ...end.out, skipHeader: Uint8Array.from([...end.out.skipHeader!, 0]) },
    /skipHeader/,
  ],
  [
    'SKIP next header not the first header',
    { ...end.out, skipHeader: skipHeader({}, 50, 250, 250, 101) },
    /skipHeader/,
  ],
  ['SKIP Crypt Alg not the suite', { ...end.out, skipHeader: skipHeader({}, 51, 251, 250, 101) }, /skipHeader/],
  ['SKIP MAC Alg not the AH', { ...end.out, skipHeader: skipHeader({}, 51, 250, 251, 101) }, /skipHeader/],
  ['seq beyond 32 bits', { ...spi.out, esp: { ...spi.out.esp!, seq: 2 ** 32 } }, /esp\.seq/],
  ['replay window not a multiple of 64', { ...spi.in, replayWindow: 100 }, /replayWindow/],
  ['replay window too large', { ...spi.in, replayWindow: 8192 }, /replayWindow/],
  ['ttl 0', { ...spi.out, ttl: 0 }, /ttl/],
  ['ttl 256', { ...spi.out, ttl: 256 }, /ttl/],
];

describe.each(IMPLS)('[%s] SA descriptors', (impl) => {
  it.each(BAD)('refuses %s, naming the field', (_what, desc, field) => {
    const engine = createEngine(impl);
    opened.push(engine);
    expect(() => engine.installSa(desc)).toThrow(field);
    // A refused SA is not half-installed: the good one with the same id goes in and works.
    if (desc.id === spi.out.id) {
      engine.installSa(spi.out);
      expect(runOne(engine, Op.ENCAP, datagram(40), spi.out.id).verdict).toBe(Verdict.FORWARD);
    }
  });

  it('refuses a second SA with the same id, SPI or SKIP key tuple', () => {
    const engine = engineWith(impl, [spi.in, end.in]);
    opened.push(engine);
    expect(() => engine.installSa({ ...spi.out, id: spi.in.id })).toThrow(/id|already|exists|installed/i);
    expect(() => engine.installSa({ ...spi.in, id: 500 })).toThrow(/SPI|spi/);
    expect(() => engine.installSa({ ...end.in, id: 501 })).toThrow(/SKIP|tuple|key/i);
  });

  it('ignores direction-specific fields on the other direction (one description serves both ends)', () => {
    const engine = engineWith(impl, [
      { ...spi.in, ttl: 5, esp: { ...spi.in.esp!, seq: 77 } },
      { ...spi.out, replayWindow: 64 },
    ]);
    opened.push(engine);
    const sealed = runOne(engine, Op.ENCAP, datagram(40), spi.out.id);
    expect(sealed.packet[8]).toBe(64);
    expect(runOne(engine, Op.INBOUND, sealed.packet).verdict).toBe(Verdict.DELIVER);
  });

  it('remove then re-install (rekey) at once; removing an unknown id is harmless', () => {
    const engine = engineWith(impl, [spi.out]);
    opened.push(engine);
    engine.removeSa(spi.out.id);
    expect(runOne(engine, Op.ENCAP, datagram(40), spi.out.id).reason).toBe(20);
    engine.installSa(spi.out);
    expect(runOne(engine, Op.ENCAP, datagram(40), spi.out.id).verdict).toBe(Verdict.FORWARD);
    engine.removeSa(9999);
    expect(engine.saStats(9999)).toBeUndefined();
  });
});

describe('[ts] key hygiene', () => {
  it('zeroes its key copies on removeSa and close, and never puts key bytes in an error', () => {
    const engine = new RefEngine();
    engine.installSa(end.out);
    engine.installSa(hop.out);
    const table = (
      engine as unknown as {
        table: { get(id: number): { ah?: { key: { material: Buffer } }; esp?: { key: { material: Buffer } } } };
      }
    ).table;
    const endKeys = [table.get(end.out.id)!.ah!.key.material, table.get(end.out.id)!.esp!.key.material];
    const hopKey = table.get(hop.out.id)!.ah!.key.material;
    expect(endKeys.every((k) => k.some((b) => b !== 0))).toBe(true);
    expect(end.out.esp!.key.some((b) => b !== 0)).toBe(true);
    engine.removeSa(end.out.id);
    expect(endKeys.every((k) => k.every((b) => b === 0))).toBe(true);
    expect(end.out.esp!.key.some((b) => b !== 0)).toBe(true); // the caller's bytes are its own
    engine.close();
    expect(hopKey.every((b) => b === 0)).toBe(true);
    expect(() => engine.installSa(end.out)).toThrow(/closed/);
    const secret = Uint8Array.from({ length: 19 }, () => 0xab);
    const probe = new RefEngine();
    let message = '';
    try {
      probe.installSa({ ...spi.out, esp: { ...spi.out.esp!, key: secret } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/esp\.key/);
    expect(message).not.toMatch(/ab,|abab|171/);
    probe.close();
  });
});
