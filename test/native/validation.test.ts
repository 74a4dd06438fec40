// NativeEngine refuses inconsistent SA descriptions with errors that name the field and the fix.
import { describe, expect, it } from 'vitest';
import type { SaDesc } from '../../src/engine/index.js';
import { ADDR, endSaPair, nexthopSaPair, skipHeader } from '../engine/fixtures.js';
import { nativeEngine } from './addon.js';

const end = endSaPair({ suite: 'aes128gcm', ah: 'gmac-aes128', mode: 'skip', id: 1, src: ADDR.sgw0, dst: ADDR.sgw1 });
const spiEnd = endSaPair({ suite: 'aes256gcm', mode: 'spi', id: 2, src: ADDR.sgw0, dst: ADDR.sgw1 });
const hop = nexthopSaPair({ alg: 'hmac-sha256-128', mode: 'skip', id: 3, src: ADDR.sgw0, dst: ADDR.sgw1 });

function refuses(sa: SaDesc, message: RegExp): void {
  const engine = nativeEngine();
  expect(() => engine.installSa(sa)).toThrow(message);
  engine.close();
}

describe('installSa validation', () => {
  it('accepts the fixture SAs', () => {
    const engine = nativeEngine([end.out, end.in, spiEnd.out, spiEnd.in, hop.out, hop.in]);
    expect(engine.saStats(end.in.id)).toEqual({ packets: 0n, bytes: 0n, ahSeq: 0, espSeq: 0 });
    engine.close();
  });
  it('key lengths per algorithm', () => {
    refuses(
      { ...end.out, esp: { ...end.out.esp!, key: new Uint8Array(16) } },
      /esp\.key must be 20 bytes for aes128gcm/,
    );
    refuses(
      { ...end.out, ah: { ...end.out.ah!, key: new Uint8Array(16) } },
      /ah\.key must be 20 bytes for gmac-aes128/,
    );
    refuses(
      { ...spiEnd.out, esp: { ...spiEnd.out.esp!, key: new Uint8Array(20) } },
      /esp\.key must be 36 bytes for aes256gcm/,
    );
  });
  it('role against ah/esp', () => {
    refuses({ ...hop.out, esp: end.out.esp }, /role 'nexthop' needs ah and no esp/);
    refuses({ ...end.out, esp: undefined }, /role 'end' needs esp/);
    refuses({ ...end.out, ah: { ...end.out.ah!, coverage: 'headers' } }, /coverage applies to role 'nexthop' only/);
  });
  it('mode rules: skipHeader, SPIs', () => {
    refuses({ ...end.out, skipHeader: undefined }, /mode 'skip' needs skipHeader/);
    refuses({ ...spiEnd.out, esp: { ...spiEnd.out.esp!, spi: 255 } }, /esp\.spi must be >= 256 in mode 'spi'/);
    refuses({ ...spiEnd.out, skipHeader: end.out.skipHeader }, /skipHeader is for mode 'skip'/);
    refuses({ ...end.out, esp: { ...end.out.esp!, spi: 300 } }, /esp\.spi must be 1 \(SKIP_SPI\)/);
    refuses({ ...end.out, skipHeader: new Uint8Array(20) }, /skipHeader does not parse/);
    refuses({ ...end.out, skipHeader: skipHeader({}, 50, 250, 250, 1) }, /next header must be 51/);
    refuses({ ...end.out, skipHeader: skipHeader({}, 51, 251, 250, 1) }, /cryptAlg must be 250 for aes128gcm/);
    refuses({ ...end.out, skipHeader: skipHeader({}, 51, 250, 251, 1) }, /macAlg must be 250 for gmac-aes128/);
  });
  it('addresses, ids, windows, ttl', () => {
    refuses({ ...end.out, dst: '10.0.0' }, /dst: not an IPv4 address/);
    refuses({ ...end.out, id: 0 }, /id must be > 0/);
    refuses({ ...end.in, replayWindow: 100 }, /replayWindow must be a multiple of 64/);
    refuses({ ...end.out, ttl: 0 }, /ttl must be 1\.\.255/);
  });
  it('duplicates: the same id, the same inbound SPI, the same SKIP key tuple', () => {
    const engine = nativeEngine([end.in, spiEnd.in]);
    expect(() => engine.installSa(end.in)).toThrow(/already installed/);
    expect(() => engine.installSa({ ...spiEnd.in, id: 77 })).toThrow(/inbound SPI already used by sa 1002/);
    expect(() => engine.installSa({ ...end.in, id: 78 })).toThrow(/SKIP key tuple already used by sa 1001/);
    engine.removeSa(end.in.id);
    engine.installSa({ ...end.in, id: 78 });
    engine.close();
  });
  it('routes and local addresses', () => {
    const engine = nativeEngine();
    expect(() => engine.setRoutes([{ prefix: '10.0.0.1/8', sa: 0 }])).toThrow(/host bits set/);
    expect(() => engine.setRoutes([{ prefix: '10.0.0.0/8', sa: -1 }])).toThrow(/sa must be an SA id or 0/);
    expect(() => engine.setLocalAddresses(['300.1.1.1'])).toThrow(/not an IPv4 address/);
    engine.close();
  });
});
