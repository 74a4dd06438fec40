// Successor keys through a role's NodeKeys (docs/engine.md §4.3): the engine keys another gateway's next packet keys
// only within what NodeKeys gave it (a peer it keyed itself, ids it reserved) and NodeKeys adopts each as its own — the
// per-peer cap, the tuple known, retirement — so a peer minting keys at will gets no more from the engine than from
// the control plane. A key log turns it off (it records each Kp).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrackedEngine } from '../../src/daemon/engine.js';
import { ReplayMarks } from '../../src/daemon/replay-marks.js';
import { createEngine, Op, Reason, Verdict, type Engine } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying } from '../../src/keys/keying.js';
import type { KeyLog } from '../../src/roles/common/keylog.js';
import { NodeKeys, SUCCESSOR_IDS, type SaLimits } from '../../src/roles/common/keys.js';
import { datagram, runOne } from '../engine/fixtures.js';
import { makeCa, makeIdentity } from '../keys/helpers.js';

const SGW = '198.18.0.1';
const PEER = '198.18.0.2';
const nowS = () => Math.floor(Date.now() / 1000);

/** An SGW's NodeKeys on `engine`, and a peer SGW that seals each datagram under a fresh packet key. */
function gatewayPair(engine: Engine, o: { limits?: SaLimits; keyLog?: KeyLog } = {}) {
  const ca = makeCa();
  const sgwId = makeIdentity(ca, `sgw:${SGW}`);
  const peerId = makeIdentity(ca, `sgw:${PEER}`);
  const sgwCerts = new CertCache(ca.cert);
  sgwCerts.add(peerId.cert, nowS());
  const peerCerts = new CertCache(ca.cert);
  peerCerts.add(sgwId.cert, nowS());
  const peerKeying = new SkipKeying({ identity: peerId, certs: peerCerts, now: nowS, kpMaxPackets: 1 });
  const sender = createEngine('native');
  const seal = (): Uint8Array => {
    const r = peerKeying.outboundSa({ peer: sgwId.name, src: PEER, dst: SGW, role: 'end', esp: 'aes128gcm' }, 1);
    if (!r.ok || !r.created) throw new Error(`expected a fresh outbound SA, got ${JSON.stringify(r)}`);
    sender.installSa(r.sa);
    const sealed = runOne(sender, Op.ENCAP, datagram(120, { src: '10.2.0.5', dst: '10.1.0.5' }), r.sa.id);
    expect(sealed.verdict).toBe(Verdict.FORWARD);
    return sealed.packet;
  };
  /** The gateway's keys on `on`, as a process that starts would make them. */
  const keysOn = (on: Engine) => {
    on.setLocalAddresses([SGW]);
    return new NodeKeys(new SkipKeying({ identity: sgwId, certs: sgwCerts, now: nowS }), on, o.keyLog, o.limits);
  };
  const keys = keysOn(engine);
  return { keys, seal, keysOn, close: () => (keys.close(), sender.close()) };
}

const inbound = (engine: Engine, packet: Uint8Array) => runOne(engine, Op.INBOUND, packet);

describe.each(['native', 'ts'] as const)('successor keys through NodeKeys (%s engine)', (impl) => {
  it('keys nothing before the control plane keyed the peer, then its next keys within the ids it reserved', () => {
    const engine = createEngine(impl);
    const { keys, seal, close } = gatewayPair(engine);
    const firstPacket = seal();
    keys.syncSuccessors();
    expect(inbound(engine, firstPacket).reason).toBe(Reason.unknown_key);
    const first = keys.inbound(firstPacket, 'full');
    expect(first.ok).toBe(true);
    expect(inbound(engine, firstPacket).verdict).toBe(Verdict.DELIVER);

    keys.syncSuccessors();
    const flood = Array.from({ length: SUCCESSOR_IDS + 2 }, () => inbound(engine, seal()));
    expect(flood.slice(0, SUCCESSOR_IDS).map((r) => r.verdict)).toEqual(Array(SUCCESSOR_IDS).fill(Verdict.DELIVER));
    expect(flood.slice(SUCCESSOR_IDS).map((r) => r.reason)).toEqual([Reason.unknown_key, Reason.unknown_key]);
    const ids = flood.slice(0, SUCCESSOR_IDS).map((r) => r.sa);
    expect(new Set([...ids, first.ok && first.id]).size).toBe(SUCCESSOR_IDS + 1);

    // Adopted as if keyed here: each is a known SA of the peer, and its tuple is known to the keying.
    expect(keys.syncSuccessors()).toBe(SUCCESSOR_IDS);
    for (const id of ids) expect(keys.meta(id)).toMatchObject({ direction: 'in', role: 'end', src: PEER, dst: SGW });
    // More ids: the next keys go on in the engine again.
    expect(inbound(engine, seal()).verdict).toBe(Verdict.DELIVER);
    close();
    engine.close();
  });

  it("a peer's keys keyed by the engine count towards its cap: the oldest go, as for keys keyed here", () => {
    const engine = createEngine(impl);
    const { keys, seal, close } = gatewayPair(engine, { limits: { maxInboundPerPeer: 4 } });
    const first = keys.inbound(seal(), 'full');
    expect(first.ok).toBe(true);
    keys.syncSuccessors();
    const ids = Array.from({ length: 6 }, () => inbound(engine, seal()).sa);
    keys.syncSuccessors();
    expect(keys.evictedInbound).toBe(3);
    const held = [first.ok ? first.id : 0, ...ids].filter((id) => engine.saStats(id) !== undefined);
    expect(held).toEqual(ids.slice(2));
    close();
    engine.close();
  });

  it('the overall cap holds: the engine keeps only the ids the cap leaves room for', () => {
    const engine = createEngine(impl);
    const { keys, seal, close } = gatewayPair(engine, { limits: { maxInbound: 4 } });
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    keys.syncSuccessors(); // 3 ids: room for 3 more
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    keys.syncSuccessors(); // 3 held: 1 id left
    const results = Array.from({ length: 3 }, () => inbound(engine, seal()).verdict);
    expect(results).toEqual([Verdict.DELIVER, Verdict.PUNT, Verdict.PUNT]);
    keys.syncSuccessors();
    expect(inbound(engine, seal()).reason).toBe(Reason.unknown_key); // 4 held: no room, no id
    close();
    engine.close();
  });

  it('a retired key that comes again goes to the control plane, which refuses it', () => {
    const engine = createEngine(impl);
    const { keys, seal, close } = gatewayPair(engine, { limits: { maxInboundPerPeer: 2 } });
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    keys.syncSuccessors();
    const packets = [seal(), seal(), seal()];
    for (const p of packets) expect(inbound(engine, p).verdict).toBe(Verdict.DELIVER);
    keys.syncSuccessors(); // the cap of 2 retires the first key and the first successor
    const replayed = inbound(engine, packets[0]);
    expect(replayed.reason).toBe(Reason.unknown_key);
    expect(keys.inbound(replayed.packet, 'full')).toMatchObject({ ok: false, reason: 'retired_key' });
    close();
    engine.close();
  });

  it('after a reset (a reload changed the settings) the next key comes to the control plane, then the engine again', () => {
    const engine = createEngine(impl);
    const { keys, seal, close } = gatewayPair(engine);
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    keys.syncSuccessors();
    const before = inbound(engine, seal());
    expect(before.verdict).toBe(Verdict.DELIVER);
    keys.resetSuccessors(); // the successor it just keyed inherited the old settings: no template either
    const next = seal();
    expect(inbound(engine, next).reason).toBe(Reason.unknown_key);
    expect(keys.inbound(next, 'full').ok).toBe(true);
    keys.syncSuccessors();
    expect(inbound(engine, seal()).verdict).toBe(Verdict.DELIVER);
    close();
    engine.close();
  });

  it('with a key log the engine keys nothing: every new key comes to the control plane', () => {
    const engine = createEngine(impl);
    const keyLog = { record: () => undefined, keyChainSink: undefined } as unknown as KeyLog;
    const { keys, seal, close } = gatewayPair(engine, { keyLog });
    expect(keys.inbound(seal(), 'full').ok).toBe(true);
    expect(keys.syncSuccessors()).toBe(0);
    expect(inbound(engine, seal()).reason).toBe(Reason.unknown_key);
    close();
    engine.close();
  });
});

describe.each(['native', 'ts'] as const)('successor keys after a restart (%s engine)', (impl) => {
  it('a key tuple whose replay floor was restored stays with the control plane; a fresh one is keyed by the engine', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-successors-'));
    const quiet = { installed: () => undefined, retired: () => undefined };
    const marksBefore = new ReplayMarks(dir, 'sgw', Date.now, () => undefined);
    const before = new TrackedEngine(createEngine(impl), quiet, Date.now, marksBefore);
    const pair = gatewayPair(before);
    const [heldBefore, first, fresh] = [pair.seal(), pair.seal(), pair.seal()];
    expect(pair.keys.inbound(heldBefore, 'full').ok).toBe(true);
    expect(inbound(before, heldBefore).verdict).toBe(Verdict.DELIVER);
    marksBefore.close((id) => before.saStats(id)); // the process stops: its marks are written

    const marks = new ReplayMarks(dir, 'sgw', Date.now, () => undefined);
    expect(marks.restoredKeys()).toHaveLength(1);
    const after = new TrackedEngine(createEngine(impl), quiet, Date.now, marks);
    const keys = pair.keysOn(after);
    expect(keys.inbound(first, 'full').ok).toBe(true);
    keys.syncSuccessors();
    expect(inbound(after, heldBefore).reason).toBe(Reason.unknown_key);
    expect(inbound(after, fresh).verdict).toBe(Verdict.DELIVER);
    expect(keys.syncSuccessors()).toBe(1);
    expect(after.list().map((r) => r.peer)).toEqual([`sgw:${PEER}`, `sgw:${PEER}`]);
    pair.close();
    before.close();
    after.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
