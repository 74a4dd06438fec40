// `mipsec lab --memory`: every case on the in-memory network, the --json shape and ids, usage
// errors; the pieces the namespace lab relies on: the stack diff and the pcapng stream reader.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labCases } from '../../src/lab/cases.js';
import { stackDiff } from '../../src/lab/stacks.js';
import { runLab } from '../../src/lab/run.js';
import { PcapngReader } from '../../src/net/linux/pcapng.js';

process.env.MIPSEC_NATIVE = '1';
const BIN = resolve(import.meta.dirname, '../../bin/mipsec.js');
const IDS = [
  '4.4',
  '4.5.1',
  '4.5.2',
  '4.5.3',
  '4.5.4',
  '4.5.5',
  '4.5.6',
  '4.5.7a',
  '4.5.7b',
  '3.2',
  '3.4',
  'fig1',
  '3.5',
  '3.5-direct',
  '3.5-nat',
  'fig2-n3',
  '3.5.1',
  'handover',
  'spi',
];

describe('mipsec lab on the in-memory network', () => {
  it.each(['native', 'ts'] as const)('every case passes on the %s engine', async (engine) => {
    const report = await runLab({ mode: 'memory', engine });
    expect(report.cases.map((c) => c.id)).toEqual(IDS);
    for (const c of report.cases) expect(c.pass, `${c.id}: ${c.failures.join('; ')}`).toBe(true);
    expect(report.cases.find((c) => c.id === '4.5.3')!.stacks.internet).toHaveLength(2);
  });

  it('--memory --json prints {mode, cases: [{id, title, pass, …}]} and exits 0', () => {
    const run = spawnSync('node', [BIN, 'lab', '--memory', '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as {
      mode: string;
      cases: { id: string; title: string; pass: boolean; stacks: object }[];
    };
    expect(out.mode).toBe('memory');
    expect(out.cases.map((c) => c.id)).toEqual(IDS);
    for (const c of out.cases) {
      expect(c.pass).toBe(true);
      expect(c.title.length).toBeGreaterThan(0);
      expect(typeof c.stacks).toBe('object');
    }
  });

  it('without root it says so in one line and runs the cases on the in-memory network', () => {
    // As root, drop to an unprivileged uid for this run; otherwise the test already runs without root.
    const argv = [BIN, 'lab', '--json', '--only', '4.5.1'];
    const run =
      process.getuid?.() === 0
        ? spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', ...argv], {
            encoding: 'utf8',
            timeout: 60_000,
          })
        : spawnSync('node', argv, { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const notices = run.stderr.split('\n').filter((l) => l.includes('running on the in-memory network instead'));
    expect(notices).toEqual([
      'mipsec lab: WARNING: network namespaces unavailable (not running as root); running on the in-memory network instead (--netns makes this an error)',
    ]);
    const out = JSON.parse(run.stdout) as { mode: string; cases: { id: string; pass: boolean }[] };
    expect(out.mode).toBe('memory');
    expect(out.cases.map((c) => [c.id, c.pass])).toEqual([['4.5.1', true]]);
    // Asked for namespaces it cannot have, it refuses instead of simulating.
    const strict =
      process.getuid?.() === 0
        ? spawnSync(
            'setpriv',
            ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', BIN, 'lab', '--netns', '--only', '4.5.1'],
            { encoding: 'utf8', timeout: 60_000 },
          )
        : spawnSync('node', [BIN, 'lab', '--netns', '--only', '4.5.1'], { encoding: 'utf8', timeout: 60_000 });
    expect(strict.status).toBe(2);
    expect(strict.stderr.trim()).toBe('mipsec lab: --netns: network namespaces cannot be used: not running as root');
  });

  it('usage errors exit 2 and name the problem', () => {
    const bad = spawnSync('node', [BIN, 'lab', '--memory', '--only', '4.4,9.9'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown case id 9.9');
    const engine = spawnSync('node', [BIN, 'lab', '--engine', 'fast'], { encoding: 'utf8' });
    expect(engine.status).toBe(2);
    expect(engine.stderr).toContain('--engine must be native or ts');
  });

  it('the case list names every id once', () => {
    expect(new Set(labCases.map((c) => c.id)).size).toBe(labCases.length);
  });
});

describe('stackDiff', () => {
  it('names missing and unexpected lines per link, and a change of order', () => {
    expect(stackDiff({ a: ['x', 'y'] }, { a: ['x', 'y'] })).toEqual([]);
    expect(stackDiff({ a: ['x', 'y'] }, { a: ['x'], b: ['z'] })).toEqual(['a: missing y', 'b: unexpected z']);
    expect(stackDiff({ a: ['x', 'y'] }, { a: ['y', 'x'] })).toEqual(['a: same packets in another order']);
    // `*` stands for a value random by design (the NAT's port): digits only.
    expect(stackDiff({ a: ['UDP(*>7)'] }, { a: ['UDP(28362>7)'] })).toEqual([]);
    expect(stackDiff({ a: ['UDP(*>7)'] }, { a: ['UDP(x>7)'] })).toEqual([
      'a: missing UDP(*>7)',
      'a: unexpected UDP(x>7)',
    ]);
  });
});

function block(type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const out = Buffer.alloc(12 + padded.length);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(out.length, 4);
  padded.copy(out, 8);
  out.writeUInt32LE(out.length, out.length - 4);
  return out;
}

function stream(frames: Buffer[]): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  const name = Buffer.from('p0');
  const idb = Buffer.alloc(8 + 4 + 4 + 4);
  idb.writeUInt16LE(1, 0);
  idb.writeUInt32LE(65535, 4);
  idb.writeUInt16LE(2, 8);
  idb.writeUInt16LE(name.length, 10);
  name.copy(idb, 12);
  const epbs = frames.map((f, i) => {
    const head = Buffer.alloc(20);
    head.writeUInt32LE(0, 0);
    head.writeUInt32LE(0, 4);
    head.writeUInt32LE(1_000_000 + i, 8);
    head.writeUInt32LE(f.length, 12);
    head.writeUInt32LE(f.length, 16);
    return block(6, Buffer.concat([head, f]));
  });
  return Buffer.concat([block(0x0a0d0d0a, shb), block(1, idb), ...epbs]);
}

describe('PcapngReader', () => {
  it('reads frames split across arbitrary chunks, with interface names and times', () => {
    const bytes = stream([Buffer.from('frame-one'), Buffer.from('two')]);
    const reader = new PcapngReader();
    const got = [];
    for (let at = 0; at < bytes.length; at += 7) got.push(...reader.push(bytes.subarray(at, at + 7)));
    expect(got.map((f) => [f.iface, Buffer.from(f.data).toString()])).toEqual([
      ['p0', 'frame-one'],
      ['p0', 'two'],
    ]);
    expect(got[0].timeMs).toBe(1000);
    expect(got[1].timeMs).toBeCloseTo(1000.001, 6);
    expect(reader.error).toBeUndefined();
  });

  it('stops with a reason on a broken stream instead of reading past a block', () => {
    const bytes = stream([Buffer.from('abc')]);
    const epbAt = bytes.length - 36;
    const lying = Buffer.from(bytes);
    lying.writeUInt32LE(4000, epbAt + 20); // captured length far beyond its block
    const reader = new PcapngReader();
    expect(reader.push(lying)).toEqual([]);
    expect(reader.error).toMatch(/captured length 4000 beyond its block/);
    const garbage = new PcapngReader();
    expect(garbage.push(Buffer.from([0x0a, 0x0d, 0x0d, 0x0a, 8, 0, 0, 0, 1, 2, 3, 4]))).toEqual([]);
    expect(garbage.error).toMatch(/byte-order magic|block length/);
    const unknownIface = new PcapngReader();
    const noIdb = Buffer.concat([bytes.subarray(0, 28), bytes.subarray(bytes.length - 36)]);
    expect(unknownIface.push(noIdb)).toEqual([]);
    expect(unknownIface.error).toMatch(/never described/);
  });
});
