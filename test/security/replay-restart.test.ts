// Issue 10 hole 13 (replay across a restart): an inbound SA installed with a replay floor treats every
// sequence number up to it as already seen (docs/engine.md), on both engines, for ESP and for AH + ESP.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { ReplayMarks } from '../../src/daemon/replay-marks.js';
import { Op, Reason, Verdict, reasonName, type Engine, type SaDesc } from '../../src/engine/index.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { collectEchoes, echoServer, probe } from '../../src/lab/traffic.js';
import type { InjectPacket } from '../../src/engine/io.js';
import type { EnginePunt, HostDataPath } from '../../src/net/types.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';
import { addCorrespondent, figure6Fixture } from '../daemon/fixture.js';
import { ADDR, datagram, endSaPair, engineWith, runOne, type SaPair } from '../engine/fixtures.js';

const CH0 = '10.0.0.10';
const CH1 = '10.1.0.10';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

function sealed(make: (seq: number) => SaPair, seq: number): Uint8Array {
  const tx = engineWith('ts', [make(seq - 1).out]);
  const packet = runOne(tx, Op.ENCAP, datagram(80, { id: seq & 0xffff }), make(0).out.id).packet;
  tx.close();
  return packet;
}

function outcome(rx: Engine, packet: Uint8Array): string {
  const r = runOne(rx, Op.INBOUND, packet);
  return r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason];
}

describe.each(['native', 'ts'] as const)('[%s] hole 13: replayFloor', (impl) => {
  describe.each([undefined, 'hmac-sha256-128'] as const)('ESP with AH %s', (ah) => {
    const make = (seq: number) =>
      endSaPair({ suite: 'aes128gcm', ah, mode: 'skip', id: 73, src: ADDR.sgw0, dst: ADDR.sgw1, seq });
    const receiver = (replayFloor?: number): Engine => {
      const rx = engineWith(impl, [{ ...make(0).in, replayFloor }]);
      opened.push(rx);
      return rx;
    };

    it('hole 13: a packet captured before a restart is a replay after it (sequence <= floor)', () => {
      const captured = [1, 40, 500, 2000].map((seq) => sealed(make, seq));
      const before = receiver();
      for (const p of captured) expect(outcome(before, p)).toBe('deliver');
      const after = receiver(before.saStats(make(0).in.id)!.espSeq);
      for (const p of captured) expect(outcome(after, p)).toBe('replay');
      expect(Number(after.counters()[18])).toBe(captured.length);
      expect(after.saStats(make(0).in.id)?.espSeq).toBe(2000);
    });

    it('the first number above the floor is accepted once, and the window moves on from there', () => {
      const rx = receiver(2000);
      expect(outcome(rx, sealed(make, 2001))).toBe('deliver');
      expect(outcome(rx, sealed(make, 2001))).toBe('replay');
      expect(outcome(rx, sealed(make, 5000))).toBe('deliver');
      expect(outcome(rx, sealed(make, 4990))).toBe('deliver');
      expect(rx.saStats(make(0).in.id)?.espSeq).toBe(5000);
    });

    it('a floor out of range is refused at install', () => {
      expect(() => receiver(2 ** 32)).toThrow(/replayFloor/);
      expect(() => receiver(-1)).toThrow(/replayFloor/);
    });
  });
});

/** An SGW daemon of `fx` on the in-memory network; sgw0 keeps its replay marks in the fixture's state directory. */
function sgwDaemon(
  fx: ReturnType<typeof figure6Fixture>,
  name: 'sgw0' | 'sgw1',
  impl: 'native' | 'ts',
  host: DaemonOptions['host'],
  wrapEngine?: DaemonOptions['wrapEngine'],
): Promise<Daemon> {
  return runDaemon({
    configPath: fx.file(`${name}.yaml`),
    role: 'sgw',
    host,
    clock: fx.network.clock,
    engine: impl,
    statusSocket: false,
    logLevel: 'silent',
    ...(name === 'sgw0' ? { stateDir: fx.file('state') } : {}),
    ...(wrapEngine ? { wrapEngine } : {}),
  });
}

// The daemon level: sgw0 restarts with its state directory; what sgw1 sent it before is a replay after.
describe.each(['native', 'ts'] as const)('[%s] hole 13: replay marks across an SGW daemon restart', (impl) => {
  const daemons: Daemon[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop();
  });

  it('hole 13: SKIP packets captured before a graceful restart are replays after it; new traffic flows at once', async () => {
    const fx = figure6Fixture();
    const engines: Engine[] = [];
    const sgw0 = (host: DaemonOptions['host']) => sgwDaemon(fx, 'sgw0', impl, host, (e) => (engines.push(e), e));
    daemons.push(await sgw0(fx.hostFor));
    daemons.push(await sgwDaemon(fx, 'sgw1', impl, fx.hostFor));
    echoServer(addCorrespondent(fx.network, 'ch0', CH0));
    const ch1 = addCorrespondent(fx.network, 'ch1', CH1);
    const ping = (seqs: number[]) => {
      const echoes = collectEchoes(ch1);
      for (const seq of seqs) ch1.send(probe(CH1, CH0, seq));
      fx.network.runFor(SETTLE_MS);
      echoes.stop();
      return echoes.seqs;
    };
    expect(ping([1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
    const toSgw0 = (p: Uint8Array) => p[9] === IPPROTO_SKIP && p.subarray(16, 20).join('.') === '198.18.0.1';
    const captured = fx.network
      .link('internet')
      .captures()
      .filter((f) => toSgw0(f.packet))
      .map((f) => f.packet.slice());
    expect(captured.length).toBeGreaterThanOrEqual(4);

    await daemons.shift()!.stop();
    daemons.unshift(await sgw0(() => fx.network.host('sgw0')));
    const echoes = collectEchoes(ch1);
    for (const p of captured) fx.network.host('sgw0').inject(p.slice(), { iface: 'outside' });
    fx.network.runFor(SETTLE_MS);
    echoes.stop();
    expect(echoes.seqs).toEqual([]);
    expect(Number(engines[1].counters()[Reason.replay])).toBe(captured.length);
    // No handshake needed: sgw1's next packets carry higher numbers on the same key tuple.
    expect(ping([5, 6])).toEqual([5, 6]);
  });
});

describe('hole 13: replay marks after a SIGKILL (no final write)', () => {
  const pair = endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 74, src: ADDR.sgw0, dst: ADDR.sgw1 });
  const inbound = (id: number): SaDesc => ({ ...pair.in, id });
  const stats = (espSeq: number) => () => ({ packets: 0n, bytes: 0n, ahSeq: 0, espSeq });
  /** sgw0's marks in `dir` at the time `now` says; `problem` hears what of the journal could not be read. */
  const marksIn = (dir: string, now = () => 0, problem: (m: string) => void = () => {}) =>
    new ReplayMarks(dir, 'sgw0', now, problem);

  it("hole 13: the floor covers what arrived after the last periodic write (twice the last interval's advance)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-marks-'));
    const problems: string[] = [];
    const before = marksIn(
      dir,
      () => 1_000,
      (m) => problems.push(m),
    );
    expect(before.floored(inbound(1)).replayFloor).toBeUndefined();
    before.sample(stats(100));
    before.sample(stats(400));
    // Killed here: up to ~300 more packets may have been accepted before it died.
    const after = marksIn(
      dir,
      () => 2_000,
      (m) => problems.push(m),
    );
    expect(after.floored(inbound(9)).replayFloor).toBe(400 + 2 * 300);
    after.close(stats(1_000));
    expect(marksIn(dir, () => 3_000).floored(inbound(10)).replayFloor).toBe(1_000);
    expect(problems).toEqual([]);
  });

  it('a torn or damaged tail of the journal is cut off and reported; the lines before it stand', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-marks-'));
    const first = marksIn(dir);
    first.floored(inbound(1));
    first.sample(stats(50));
    const file = join(dir, 'sgw0', 'replay-marks.journal');
    // A crash in the middle of the next write, then bytes no write made.
    appendFileSync(file, '0123456789abcdef ["0123456789abcdef0123456789abcdef",9');
    appendFileSync(file, '\nnot a journal line\n');
    const problems: string[] = [];
    const after = marksIn(
      dir,
      () => 0,
      (m) => problems.push(m),
    );
    expect(after.floored(inbound(2)).replayFloor).toBe(50);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('2 line(s) at its end did not check and were cut off');
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('each second appends only the marks that moved; marks of keys gone for 3 h are dropped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-marks-'));
    const file = join(dir, 'sgw0', 'replay-marks.journal');
    const lines = () => readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    let now = 0;
    const marks = marksIn(dir, () => now);
    marks.floored(inbound(1));
    marks.sample(stats(10));
    marks.sample(stats(20));
    expect(lines()).toBe(2);
    // Idle: the margin drops to 0 once (exact mark), then nothing more is written.
    marks.sample(stats(20));
    marks.sample(stats(20));
    marks.sample(stats(20));
    expect(lines()).toBe(3);
    marks.retire(1, stats(20)());
    // A live key of another tuple keeps its mark however long it lasts; the retired one goes after 3 h.
    const other = { ...inbound(2), skipHeader: pair.in.skipHeader!.map((b, i) => (i === 20 ? b ^ 1 : b)) };
    marks.floored(other);
    marks.sample(stats(5));
    now = 3 * 3600_000 + 60_000;
    marks.sample(stats(5));
    expect(marks.floored(inbound(3)).replayFloor).toBeUndefined();
    expect(marks.floored({ ...other, id: 4 }).replayFloor).toBe(5);
  });

  it('a mark is held once, by a number (not a 32-digit string, nor again in the journal)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-marks-'));
    const marks = marksIn(dir);
    marks.floored(inbound(1));
    marks.sample(stats(10));
    const inside = marks as unknown as { marks: Map<unknown, unknown>; journal: { live: Map<unknown, unknown> } };
    expect([...inside.marks.keys()].map((k) => typeof k)).toEqual(['number']);
    expect(inside.journal.live).toBe(inside.marks);
  });

  it('hole 13: a journal written with 32-digit keys (before marks were numbers) still floors its keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-marks-'));
    const key = createHash('sha256').update(pair.in.src).update(pair.in.skipHeader!).digest().toString('hex', 0, 16);
    const body = JSON.stringify([key, 700, 100, 0]);
    mkdirSync(join(dir, 'sgw0'));
    const checksum = createHash('sha256').update(body).digest('hex').slice(0, 16);
    writeFileSync(join(dir, 'sgw0', 'replay-marks.journal'), `${checksum} ${body}\n`);
    const problems: string[] = [];
    const after = marksIn(
      dir,
      () => 0,
      (m) => problems.push(m),
    );
    expect(after.floored(inbound(5)).replayFloor).toBe(800);
    expect(problems).toEqual([]);
  });
});

// On a native data path a new key's first packet reaches the role as a loop punt (unknown_key). One under a key
// restored above a replay mark must be answered from there with ICMP 40 code 0 (the sender moves to a fresh Kp), never
// handed back to the loop, which would drop it as a replay unanswered while the sender seals on under that key.
describe('hole 13: a restored key met on a loop punt is refused, not handed back to the loop', () => {
  const daemons: Daemon[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop();
  });

  /**
   * sgw0 and sgw1 on the in-memory network, ch1 pinging ch0 through them; sgw0 stopped. The first two SKIP packets sgw1
   * sent sgw0 (one key).
   */
  async function twoPacketsThenStop(fx: ReturnType<typeof figure6Fixture>): Promise<Uint8Array[]> {
    daemons.push(await sgwDaemon(fx, 'sgw0', 'native', fx.hostFor));
    daemons.push(await sgwDaemon(fx, 'sgw1', 'native', fx.hostFor));
    echoServer(addCorrespondent(fx.network, 'ch0', CH0));
    const ch1 = addCorrespondent(fx.network, 'ch1', CH1);
    for (const seq of [1, 2, 3]) ch1.send(probe(CH1, CH0, seq));
    fx.network.runFor(SETTLE_MS);
    const toSgw0 = (p: Uint8Array) => p[9] === IPPROTO_SKIP && p.subarray(16, 20).join('.') === '198.18.0.1';
    const packets = fx.network
      .link('internet')
      .captures()
      .filter((f) => toSgw0(f.packet))
      .map((f) => f.packet.slice());
    expect(packets.length).toBeGreaterThanOrEqual(2);
    await daemons.shift()!.stop();
    return packets.slice(0, 2);
  }

  /**
   * sgw0 started again on a host whose I/O loops are a stub: `packets` are punted to it from the outside loop as
   * unknown_key, one per settle (the first waits for sgw1's certificate, fetched again by the new process; the second
   * meets the key installed). What it re-injects, with the loop it went to, and its role counters.
   */
  async function puntToRestarted(fx: ReturnType<typeof figure6Fixture>, packets: readonly Uint8Array[]) {
    const injected: { iface: string; packet: InjectPacket }[] = [];
    let punt: ((p: EnginePunt) => void) | undefined;
    const dataPath: HostDataPath = {
      tableOf: (iface) => (iface === 'inside' ? 1 : 2),
      onEnginePunt: (handler) => ((punt = handler), () => (punt = undefined)),
      inject: (iface, sent) => (injected.push(...sent.map((packet) => ({ iface, packet }))), true),
    };
    const host = fx.network.host('sgw0');
    Object.defineProperty(host, 'dataPath', { value: dataPath, configurable: true });
    daemons.unshift(await sgwDaemon(fx, 'sgw0', 'native', () => host));
    expect(punt).toBeDefined();
    for (const packet of packets) {
      punt!({ packet: packet.slice(), reason: 'unknown_key', sa: 0, iface: 'outside' });
      fx.network.runFor(SETTLE_MS);
    }
    const role = daemons[0].status().counters.role as Record<string, number>;
    return { inbound: injected.filter((p) => p.packet.via === 'inbound'), role };
  }

  it('a loop punt under a key below its restored floor is answered with code 0, not handed back to the loop', async () => {
    const fx = figure6Fixture();
    const { inbound, role } = await puntToRestarted(fx, await twoPacketsThenStop(fx));
    expect(inbound).toEqual([]);
    expect(role.refused_restored_key).toBe(2);
  });

  it("without a floor, a loop punt of another SGW's new key is keyed and handed back to the loop that punted it", async () => {
    const fx = figure6Fixture();
    const [first, second] = await twoPacketsThenStop(fx);
    // Without its replay marks nothing floors the key: the first is opened here, the second goes back to its loop.
    rmSync(fx.file('state'), { recursive: true, force: true });
    const { inbound, role } = await puntToRestarted(fx, [first, second]);
    expect(inbound).toEqual([{ iface: 'outside', packet: { packet: second, via: 'inbound' } }]);
    expect(role.first_packet_reinjected).toBe(1);
    expect(role.refused_restored_key ?? 0).toBe(0);
  });
});
