// Certificate discovery codec (UDP 1640).
import { describe, expect, it } from 'vitest';
import {
  answerDiscovery,
  decodeDiscovery,
  DISCOVERY_PORT,
  DISCOVERY_REQUEST_BYTES,
  encodeDiscovery,
  MAX_DISCOVERY_CERT_BYTES,
  type DiscoveryMessage,
} from '../../src/keys/discovery.js';
import { makeCa, makeIdentity } from './helpers.js';

describe('certificate discovery', () => {
  const ca = makeCa();
  const smn = makeIdentity(ca, 'smn:10.0.0.100');
  const request: DiscoveryMessage = { type: 'request', id: 0xdeadbeef, name: smn.name };

  it('uses the SKIP CDP port and the documented request layout', () => {
    expect(DISCOVERY_PORT).toBe(1640);
    const bytes = encodeDiscovery(request);
    expect(Buffer.from(bytes.subarray(0, 11)).toString('hex')).toBe('0101deadbeef010a000064');
    expect(bytes).toHaveLength(DISCOVERY_REQUEST_BYTES);
    expect(bytes.subarray(11).every((b) => b === 0)).toBe(true);
  });

  it('hole 10: a request is padded to the largest answer, so no answer is larger than it; an unpadded request does not decode', () => {
    expect(DISCOVERY_REQUEST_BYTES).toBe(11 + 2 + MAX_DISCOVERY_CERT_BYTES);
    const req = encodeDiscovery(request);
    const answer = encodeDiscovery(
      answerDiscovery(request as Extract<DiscoveryMessage, { type: 'request' }>, smn.cert),
    );
    expect(answer.length).toBeLessThanOrEqual(req.length);
    expect(decodeDiscovery(req.subarray(0, 11))).toMatchObject({ ok: false, reason: 'bad_length' });
    expect(decodeDiscovery(req.subarray(0, req.length - 1))).toMatchObject({ ok: false, reason: 'bad_length' });
    const dirty = req.slice();
    dirty[500] = 1;
    expect(decodeDiscovery(dirty)).toMatchObject({ ok: false, reason: 'bad_length' });
  });

  it('round-trips request, certificate and not-found', () => {
    const reply = answerDiscovery(request as Extract<DiscoveryMessage, { type: 'request' }>, smn.cert);
    expect(reply.type).toBe('certificate');
    const notFound = answerDiscovery({ type: 'request', id: 7, name: { nsid: 0, address: 0xc6120001 } }, smn.cert);
    expect(notFound).toEqual({ type: 'notFound', id: 7, name: { nsid: 0, address: 0xc6120001 } });
    for (const msg of [request, reply, notFound]) {
      const bytes = encodeDiscovery(msg);
      expect(decodeDiscovery(bytes)).toEqual({ ok: true, message: msg });
    }
    expect(encodeDiscovery(reply)).toHaveLength(11 + 2 + 164);
  });

  it('refuses every truncation, trailing bytes and bad fields with a reason', () => {
    const reply = encodeDiscovery(answerDiscovery(request as Extract<DiscoveryMessage, { type: 'request' }>, smn.cert));
    for (let len = 0; len < reply.length; len++)
      expect(decodeDiscovery(reply.subarray(0, len))).toMatchObject({
        ok: false,
        reason: len === 11 ? 'truncated' : expect.any(String),
      });
    const longer = new Uint8Array(reply.length + 1);
    longer.set(reply);
    expect(decodeDiscovery(longer)).toMatchObject({ ok: false, reason: 'bad_length' });
    const req = encodeDiscovery(request);
    const withByte = (b: Uint8Array, at: number, v: number) => {
      const c = b.slice();
      c[at] = v;
      return decodeDiscovery(c);
    };
    expect(withByte(req, 0, 2)).toMatchObject({ ok: false, reason: 'bad_version' });
    expect(withByte(req, 1, 9)).toMatchObject({ ok: false, reason: 'bad_type' });
    expect(withByte(req, 6, 3)).toMatchObject({ ok: false, reason: 'unknown_nsid' });
    expect(decodeDiscovery(Uint8Array.of(...req, 0))).toMatchObject({ ok: false, reason: 'bad_length' });
    expect(withByte(reply, 10, 101)).toMatchObject({ ok: false, reason: 'name_mismatch' }); // asks 10.0.0.101, carries 10.0.0.100
    expect(withByte(reply, 6, 0)).toMatchObject({ ok: false, reason: 'name_mismatch' });
    expect(withByte(reply, 11, 0xff)).toMatchObject({ ok: false, reason: 'bad_length' });
    expect(withByte(reply, 13, 0)).toMatchObject({ ok: false, reason: 'bad_certificate' });
  });

  it('random datagrams never throw', () => {
    const reply = encodeDiscovery(answerDiscovery(request as Extract<DiscoveryMessage, { type: 'request' }>, smn.cert));
    let seed = 99;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 5000; i++) {
      const b = reply.slice(0, rand() % (reply.length + 1));
      for (let k = 0; k < 2 && b.length; k++) b[rand() % b.length] = rand();
      expect(typeof decodeDiscovery(b).ok).toBe('boolean');
    }
  });
});
