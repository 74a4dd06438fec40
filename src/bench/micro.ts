// The data-path micro-benchmark (issue 2 §10): packets/s and Gbit/s on one core for ENCAP, decap and the
// three next-hop relays, native and TS, next to `openssl speed -evp aes-128-gcm` run in the same process.
// How each op is fed fresh packets is explained in bench/README.md and printed under the table.
import { execFile } from 'node:child_process';
import os from 'node:os';
import { Batch } from '../engine/batch.js';
import { createEngine } from '../engine/index.js';
import {
  DESC_WORDS,
  Desc,
  Op,
  VERDICT_COUNTER_BASE,
  Verdict,
  reasonName,
  type Engine,
  type EngineImpl,
  type OpCode,
  type SaDesc,
  type VerdictCode,
} from '../engine/types.js';
import { END_GW, RELAY_GW, SENDER, endPair, innerDatagram, nexthopPair } from './fixtures.js';
import { installCostUs } from './install.js';
import { median } from './median.js';

export const MICRO_OPS = [
  'encap-aes128gcm',
  'decap-aes128gcm',
  'relay-gmac-full',
  'relay-gmac-headers',
  'relay-hmac-full',
] as const;
export type MicroOp = (typeof MICRO_OPS)[number];
export type MicroImpl = EngineImpl | 'openssl';

/** One cell, the `--json` row. Gbit/s counts inner packet bytes. */
export interface MicroRow {
  op: MicroOp;
  impl: MicroImpl;
  bytes: number;
  pps: number;
  gbps: number;
}

export interface MicroOptions {
  sizes: readonly number[];
  /** Ops and data paths to measure (default: all); openssl runs when the encap op is measured. */
  ops?: readonly MicroOp[];
  impls?: readonly EngineImpl[];
  /** Seconds per measured run of a native cell. */
  seconds: number;
  /** Seconds per measured run of a TS cell. */
  tsSeconds: number;
  /** Measured runs per cell; the median is reported. */
  runs: number;
  /** Table sizes at which to measure the SA install cost (none: not measured). */
  installSizes?: readonly number[];
  /** Progress text, one call per step. */
  progress?: (text: string) => void;
}

/** CPU µs per SA install (and remove) with `sas` SAs installed. */
export interface InstallRow {
  impl: EngineImpl;
  sas: number;
  us: number;
}

export interface MicroResult {
  rows: MicroRow[];
  installs: InstallRow[];
  /** Native cells: what refilling the batch alone costs per packet (ns), already inside the figures. */
  feedNs: Map<string, number>;
  /** Why there are no openssl rows, when there are none. */
  opensslMissing?: string;
  opensslVersion?: string;
}

export const BATCH_PACKETS = 256;
const WARMUP_SECONDS = 0.2;
/** Inner sizes a 2048-byte slot holds after its 256-byte headroom with every layer the relay case adds (165 bytes). */
export const MIN_INNER = 28;
export const MAX_INNER = 1600;

const cellKey = (op: MicroOp, impl: MicroImpl, bytes: number): string => `${op}/${impl}/${bytes}`;

/** A batch ready to run, and how to put fresh input into it before each run. */
interface Workload {
  engine: Engine;
  batch: Batch;
  expect: VerdictCode;
  refill: () => void;
}

/** Pushes one packet per slot for `op`; returns the batch and each slot's packet offset. */
function fill(op: OpCode, packets: readonly Uint8Array[], arg0 = 0): { batch: Batch; offsets: Uint32Array } {
  const batch = new Batch({ capacity: packets.length });
  const offsets = new Uint32Array(packets.length);
  packets.forEach((p, i) => {
    batch.push(op, p, arg0);
    offsets[i] = batch.desc[i * DESC_WORDS + Desc.offset];
  });
  return { batch, offsets };
}

/**
 * A pool of `rounds` × 256 prepared inputs. Refill r writes pool[r mod rounds][i] — the leading bytes of
 * slot i's packet that the op overwrote — and slot i's descriptor. After the last round `restart` runs
 * (it reinstalls an inbound SA, so its replay window accepts the pool's sequence numbers again).
 */
function pooledRefill(
  batch: Batch,
  offsets: Uint32Array,
  lengths: Uint32Array,
  pool: readonly (readonly Uint8Array[])[],
  restart?: () => void,
): () => void {
  const { buffer, desc } = batch;
  let round = 0;
  return () => {
    if (round === pool.length) {
      round = 0;
      restart?.();
    }
    const heads = pool[round++];
    for (let i = 0; i < heads.length; i++) {
      const d = i * DESC_WORDS;
      desc[d + Desc.offset] = offsets[i];
      desc[d + Desc.length] = lengths[i];
      buffer.set(heads[i], offsets[i]);
    }
  };
}

function innerPackets(size: number): Uint8Array[] {
  return Array.from({ length: BATCH_PACKETS }, (_, i) => innerDatagram(size, i));
}

/** Runs packets through one op on `engine` and returns copies of the outputs (all must get `expect`). */
function prepare(
  engine: Engine,
  op: OpCode,
  packets: readonly Uint8Array[],
  arg0: number,
  expect: VerdictCode,
  what: string,
): Uint8Array[] {
  const { batch } = fill(op, packets, arg0);
  engine.process(batch);
  return packets.map((_, i) => {
    const r = batch.result(i);
    if (r.verdict !== expect)
      throw new Error(
        `bench setup (${what}): packet ${i} got verdict ${r.verdict} (${reasonName[r.reason]}), expected ${expect}`,
      );
    return Uint8Array.from(r.packet);
  });
}

const lengthsOf = (packets: readonly Uint8Array[]): Uint32Array => Uint32Array.from(packets, (p) => p.length);

function reinstaller(engine: Engine, sa: SaDesc): () => void {
  return () => {
    engine.removeSa(sa.id);
    engine.installSa(sa);
  };
}

/** Rounds of pre-built inbound packets: enough that an SA reinstall is rare, few enough to stay in cache. */
function poolRounds(impl: EngineImpl, wireBytes: number, wholePackets: boolean): number {
  if (impl === 'ts') return 4; // TS setup is slow and its per-packet cost dwarfs a reinstall
  if (!wholePackets) return 64;
  return Math.max(2, Math.min(16, Math.floor((4 << 20) / (BATCH_PACKETS * wireBytes))));
}

// ENCAP encrypts the inner datagram in place. A refill restores the descriptor and the inner IPv4 header
// (20 bytes); the payload is then the previous round's ciphertext, which costs AES-GCM the same.
function encapWorkload(impl: EngineImpl, size: number): Workload {
  const engine = createEngine(impl);
  const pair = endPair();
  engine.installSa(pair.out);
  const inner = innerPackets(size);
  const { batch, offsets } = fill(Op.ENCAP, inner, pair.out.id);
  const heads = inner.map((p) => p.subarray(0, 20));
  return { engine, batch, expect: Verdict.FORWARD, refill: pooledRefill(batch, offsets, lengthsOf(inner), [heads]) };
}

// Decap (INBOUND at G2) decrypts in place, so every refill copies whole pre-encapsulated packets back,
// from a pool of rounds with rising sequence numbers; the inbound SA is reinstalled once per pool.
function decapWorkload(impl: EngineImpl, size: number): Workload {
  const pair = endPair();
  const sender = createEngine(impl);
  sender.installSa(pair.out);
  const inner = innerPackets(size);
  const first = prepare(sender, Op.ENCAP, inner, pair.out.id, Verdict.FORWARD, 'encap for decap');
  const pool = [first];
  const rounds = poolRounds(impl, first[0].length, true);
  while (pool.length < rounds)
    pool.push(prepare(sender, Op.ENCAP, inner, pair.out.id, Verdict.FORWARD, 'encap for decap'));
  sender.close();
  const engine = createEngine(impl);
  engine.installSa(pair.in);
  const { batch, offsets } = fill(Op.INBOUND, first);
  return {
    engine,
    batch,
    expect: Verdict.DELIVER,
    refill: pooledRefill(batch, offsets, lengthsOf(first), pool, reinstaller(engine, pair.in)),
  };
}

// Relay (INBOUND at G1): verify A's next-hop layer around an End-End packet for G2, replace it with G1's.
// The new layer ends where the old one ended and the datagram under it is only read, so each slot keeps
// one End-End packet and a refill writes a fresh layer header (IPv4 + SKIP + AH, 108 bytes GMAC, 100 HMAC: A wrapped
// the same packet once per round, so sequence numbers rise) and the descriptor. The setup checks that a
// relayed slot plus a refill is byte for byte the packet A sent.
function relayWorkload(impl: EngineImpl, size: number, op: MicroOp): Workload {
  const alg = op === 'relay-hmac-full' ? 'hmac-sha256-128' : 'gmac-aes128';
  const coverage = op === 'relay-gmac-headers' ? 'headers' : 'full';
  const end = endPair();
  const firstHop = nexthopPair(10, alg, coverage, SENDER, RELAY_GW);
  const nextHop = nexthopPair(20, alg, coverage, RELAY_GW, END_GW);
  const sender = createEngine(impl);
  sender.installSa(end.out);
  sender.installSa(firstHop.out);
  const esp = prepare(sender, Op.ENCAP, innerPackets(size), end.out.id, Verdict.FORWARD, 'encap for relay');
  const rounds = poolRounds(impl, 0, false);
  const wire: Uint8Array[][] = [];
  while (wire.length < rounds)
    wire.push(prepare(sender, Op.WRAP, esp, firstHop.out.id, Verdict.FORWARD, 'wrap for relay'));
  sender.close();
  // Compact copies: subarrays would keep every whole packet alive and scatter the refill's reads.
  const pool = wire.map((round) => round.map((p, i) => p.slice(0, p.length - esp[i].length)));

  const engine = createEngine(impl);
  engine.installSa(firstHop.in);
  engine.installSa(nextHop.out);
  engine.setLocalAddresses([RELAY_GW]);
  engine.setRoutes([{ prefix: `${END_GW}/32`, sa: nextHop.out.id }]);
  const { batch, offsets } = fill(Op.INBOUND, wire[0]);
  const refill = pooledRefill(batch, offsets, lengthsOf(wire[0]), pool, reinstaller(engine, firstHop.in));
  refill();
  engine.process(batch);
  refill();
  for (let i = 0; i < BATCH_PACKETS; i++) {
    const back = batch.buffer.subarray(offsets[i], offsets[i] + wire[1][i].length);
    if (Buffer.compare(back, wire[1][i]) !== 0)
      throw new Error(`bench setup (${op}): a relayed slot plus a refill is not packet ${i} as sent`);
  }
  return { engine, batch, expect: Verdict.FORWARD, refill };
}

function workload(impl: EngineImpl, op: MicroOp, size: number): Workload {
  if (op === 'encap-aes128gcm') return encapWorkload(impl, size);
  if (op === 'decap-aes128gcm') return decapWorkload(impl, size);
  return relayWorkload(impl, size, op);
}

const wallSeconds = (): number => performance.now() / 1000;

/**
 * CPU seconds (user + system) this process has used. Figures divide by CPU time, as `openssl speed`
 * does by default, so time the scheduler gives to other processes on a shared machine does not count;
 * V8's helper threads do count, which only lowers the figures.
 */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs `step` (which handles `perStep` packets) for `seconds` of wall time; packets per CPU second. */
function timed(seconds: number, perStep: number, step: () => void): { packets: number; rate: number } {
  let packets = 0;
  const wall = wallSeconds();
  const cpu = cpuSeconds();
  let used = 0;
  do {
    step();
    packets += perStep;
    used = cpuSeconds() - cpu;
  } while (wallSeconds() - wall < seconds || used <= 0);
  return { packets, rate: packets / used };
}

function verdictCount(engine: Engine, verdict: VerdictCode): bigint {
  return engine.counters()[VERDICT_COUNTER_BASE + verdict];
}

/** Refills and processes for `seconds`; packets/s. Every packet must get the expected verdict. */
function measure(w: Workload, seconds: number, what: string): number {
  const before = verdictCount(w.engine, w.expect);
  const { packets, rate } = timed(seconds, w.batch.count, () => {
    w.refill();
    w.engine.process(w.batch);
  });
  const got = verdictCount(w.engine, w.expect) - before;
  if (got !== BigInt(packets)) {
    const r = w.batch.result(0);
    throw new Error(
      `${what}: only ${got} of ${packets} packets got the expected verdict (packet 0: verdict ${r.verdict}, ` +
        `${reasonName[r.reason]})`,
    );
  }
  return rate;
}

/** What the refill alone costs per packet (ns): the part of each figure that is not the op. */
function feedCost(w: Workload, seconds: number): number {
  return 1e9 / timed(seconds, w.batch.count, w.refill).rate;
}

const toRow = (op: MicroOp, impl: MicroImpl, bytes: number, pps: number): MicroRow => ({
  op,
  impl,
  bytes,
  pps,
  gbps: (pps * bytes * 8) / 1e9,
});

// ---- openssl speed ----

/**
 * Bytes per second from `openssl speed` output: the machine-readable `+F:<n>:<cipher>:<bytes/s>...` line
 * (-mr), else the human table's last row (`AES-128-GCM  123456.78k`, in 1000s of bytes per second).
 */
export function parseOpensslSpeed(output: string): number | undefined {
  const mr = output.match(/^\+F:\d+:[^:\n]*:([\d.]+)/m);
  if (mr) return Number(mr[1]);
  const table = output.match(/^aes-128-gcm\s+([\d.]+)k\s*$/im);
  return table ? Number(table[1]) * 1000 : undefined;
}

function execOpenssl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 120_000 }, (err: Error | null, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve({ stdout, stderr }),
    );
  });
}

async function opensslVersion(): Promise<string | undefined> {
  try {
    return (await execOpenssl(['version'])).stdout.trim();
  } catch {
    return undefined;
  }
}

/** Packets/s of `openssl speed -evp aes-128-gcm -bytes N -seconds S` (whole seconds, at least 1). */
async function opensslPps(bytes: number, seconds: number): Promise<number> {
  const s = String(Math.max(1, Math.round(seconds)));
  const { stdout, stderr } = await execOpenssl([
    'speed',
    '-mr',
    '-evp',
    'aes-128-gcm',
    '-bytes',
    String(bytes),
    '-seconds',
    s,
  ]);
  const rate = parseOpensslSpeed(stdout) ?? parseOpensslSpeed(stderr);
  if (rate === undefined || !Number.isFinite(rate) || rate <= 0)
    throw new Error(
      `could not read a rate from \`openssl speed\` output: ${JSON.stringify((stdout + stderr).slice(-200))}`,
    );
  return rate / bytes;
}

// ---- the run ----

export async function runMicro(o: MicroOptions): Promise<MicroResult> {
  const progress = o.progress ?? (() => {});
  const rows: MicroRow[] = [];
  const feedNs = new Map<string, number>();
  const ops = o.ops ?? MICRO_OPS;
  const cells = (o.impls ?? (['native', 'ts'] as const)).flatMap((impl) =>
    ops.flatMap((op) => o.sizes.map((bytes) => ({ impl, op, bytes }))),
  );
  const opensslSizes = ops.includes('encap-aes128gcm') ? o.sizes : [];
  const total = cells.length + opensslSizes.length;
  let step = 0;
  for (const { impl, op, bytes } of cells) {
    step++;
    const label = `[${step}/${total}] ${impl} ${op} ${bytes} B`;
    progress(`${label}: setup`);
    const w = workload(impl, op, bytes);
    try {
      const seconds = impl === 'native' ? o.seconds : o.tsSeconds;
      progress(`${label}: warm-up`);
      measure(w, Math.min(WARMUP_SECONDS, seconds), label);
      const runs: number[] = [];
      for (let r = 0; r < o.runs; r++) {
        progress(`${label}: run ${r + 1}/${o.runs}`);
        runs.push(measure(w, seconds, label));
      }
      rows.push(toRow(op, impl, bytes, median(runs)));
      if (impl === 'native') feedNs.set(cellKey(op, impl, bytes), feedCost(w, Math.min(WARMUP_SECONDS, seconds)));
    } finally {
      w.engine.close();
    }
  }

  const version = await opensslVersion();
  let opensslMissing: string | undefined = version ? undefined : 'openssl not found on PATH';
  for (const bytes of opensslSizes) {
    step++;
    if (opensslMissing) continue;
    const runs: number[] = [];
    try {
      for (let r = 0; r < o.runs; r++) {
        progress(`[${step}/${total}] openssl speed -evp aes-128-gcm -bytes ${bytes}: run ${r + 1}/${o.runs}`);
        runs.push(await opensslPps(bytes, o.seconds));
      }
      rows.push(toRow('encap-aes128gcm', 'openssl', bytes, median(runs)));
    } catch (err) {
      opensslMissing = `openssl speed failed: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  return { rows, installs: measureInstalls(o, progress), feedNs, opensslMissing, opensslVersion: version };
}

function measureInstalls(o: MicroOptions, progress: (text: string) => void): InstallRow[] {
  const rows: InstallRow[] = [];
  for (const impl of o.impls ?? (['native', 'ts'] as const)) {
    const engine = createEngine(impl);
    const filled = { next: 1 };
    try {
      for (const sas of o.installSizes ?? []) {
        progress(`${impl} SA install with ${sas} SAs installed`);
        rows.push({ impl, sas, us: installCostUs(engine, sas, filled) });
      }
    } finally {
      engine.close();
    }
  }
  return rows;
}

// ---- the report ----

function find(rows: readonly MicroRow[], op: MicroOp, impl: MicroImpl, bytes: number): MicroRow | undefined {
  return rows.find((r) => r.op === op && r.impl === impl && r.bytes === bytes);
}

const fmtPps = (pps: number): string => (pps >= 1e6 ? `${(pps / 1e6).toFixed(2)} M` : `${(pps / 1e3).toFixed(1)} k`);
const fmtRatio = (a?: MicroRow, b?: MicroRow): string => (a && b ? `${(a.pps / b.pps).toFixed(2)}×` : '—');

export interface TargetCheck {
  target: string;
  met: boolean;
  detail: string;
}

/** The three targets of issue 2. */
export function checkTargets(result: MicroResult, sizes: readonly number[]): TargetCheck[] {
  const { rows } = result;
  const checks: TargetCheck[] = [];
  const encapNative = find(rows, 'encap-aes128gcm', 'native', 1400);
  const encapOpenssl = find(rows, 'encap-aes128gcm', 'openssl', 1400);
  if (!encapNative)
    checks.push({
      target: 'encap 1400 B ≥ 0.8 × openssl',
      met: false,
      detail: 'not measured in this run (needs native encap-aes128gcm at 1400 B)',
    });
  else if (!encapOpenssl)
    checks.push({
      target: 'encap 1400 B ≥ 0.8 × openssl',
      met: false,
      detail: `no openssl figure (${result.opensslMissing ?? 'not measured'})`,
    });
  else {
    const ratio = encapNative.pps / encapOpenssl.pps;
    checks.push({
      target: 'encap 1400 B ≥ 0.8 × openssl',
      met: ratio >= 0.8,
      detail: `${fmtPps(encapNative.pps)}pps vs ${fmtPps(encapOpenssl.pps)}pps = ${ratio.toFixed(2)}×`,
    });
  }
  const relay = sizes
    .map((b) => find(rows, 'relay-gmac-headers', 'native', b))
    .filter((r): r is MicroRow => r !== undefined);
  checks.push({
    target: 'relay headers ≥ 2 Mpps at every size',
    met: relay.length > 0 && relay.length === sizes.length && relay.every((r) => r.pps >= 2e6),
    detail: relay.length
      ? relay.map((r) => `${r.bytes} B ${fmtPps(r.pps)}pps`).join(', ')
      : 'not measured in this run (needs native relay-gmac-headers)',
  });
  const ratios = MICRO_OPS.flatMap((op) => {
    const n = find(rows, op, 'native', 64);
    const t = find(rows, op, 'ts', 64);
    return n && t ? [{ op, ratio: n.pps / t.pps }] : [];
  });
  checks.push({
    target: 'native ≥ 10 × TS at 64 B',
    met: ratios.length === MICRO_OPS.length && ratios.every((r) => r.ratio >= 10),
    detail: ratios.length
      ? ratios.map((r) => `${r.op} ${r.ratio.toFixed(1)}×`).join(', ')
      : 'not measured in this run (needs native and ts at 64 B)',
  });
  return checks;
}

/** The SA install rows: one line per table size, native and ts side by side. */
function formatInstalls(installs: readonly InstallRow[]): string[] {
  if (installs.length === 0) return [];
  const cell = (impl: EngineImpl, sas: number): string => {
    const row = installs.find((r) => r.impl === impl && r.sas === sas);
    return row ? row.us.toFixed(1) : '—';
  };
  const sizes = [...new Set(installs.map((r) => r.sas))];
  return [
    'SA install (+ remove) cost, CPU µs each, fastest of several rounds, by SAs already installed (flat: no table ' +
      'copy):',
    `  ${'SAs'.padStart(6)}  ${'native µs'.padStart(9)}  ${'ts µs'.padStart(9)}`,
    ...sizes.map((n) => `  ${String(n).padStart(6)}  ${cell('native', n).padStart(9)}  ${cell('ts', n).padStart(9)}`),
    '',
  ];
}

export function formatTable(result: MicroResult, o: MicroOptions): string {
  const { rows } = result;
  const head = [
    'op',
    'bytes',
    'native pps',
    'Gbit/s',
    'ts pps',
    'Gbit/s',
    'openssl pps',
    'Gbit/s',
    'nat/ossl',
    'nat/ts',
    'feed ns/pkt',
  ];
  const body: string[][] = [];
  for (const op of o.ops ?? MICRO_OPS) {
    for (const bytes of o.sizes) {
      const n = find(rows, op, 'native', bytes);
      const t = find(rows, op, 'ts', bytes);
      const s = op === 'encap-aes128gcm' ? find(rows, op, 'openssl', bytes) : undefined;
      const opensslCells =
        op !== 'encap-aes128gcm' ? ['', ''] : s ? [fmtPps(s.pps), s.gbps.toFixed(2)] : ['n/a', 'n/a'];
      const feed = result.feedNs.get(cellKey(op, 'native', bytes));
      body.push([
        op,
        String(bytes),
        n ? fmtPps(n.pps) : '—',
        n ? n.gbps.toFixed(2) : '—',
        t ? fmtPps(t.pps) : '—',
        t ? t.gbps.toFixed(2) : '—',
        ...opensslCells,
        op === 'encap-aes128gcm' ? fmtRatio(n, s) : '',
        fmtRatio(n, t),
        feed === undefined ? '—' : feed.toFixed(0),
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const out = [
    `mipsec micro-benchmark: one core (${cpu}), node ${process.version}, ` +
      `${result.opensslVersion ?? 'openssl: not found'}`,
    `batches of ${BATCH_PACKETS} packets; median of ${o.runs} runs of ${o.seconds} s (native) / ${o.tsSeconds} s ` +
      `(ts) after a warm-up;`,
    'rates per CPU second of this process (user + system, as openssl speed counts user time); Gbit/s of inner bytes',
    '',
    line(head),
    ...body.map(line),
    '',
  ];
  out.push(...formatInstalls(result.installs));
  if (result.opensslMissing)
    out.push(`openssl: ${result.opensslMissing}; no openssl figures and no native/openssl ratio.`);
  out.push(
    'feed ns/pkt: what refilling the batch alone costs per packet (native cells); it is inside the figures:',
    "  encap: descriptor + the 20-byte inner header (the payload is the last round's ciphertext, same AES-GCM work);",
    '  decap: descriptor + the whole encapsulated packet, from a pool of rounds with rising sequence numbers;',
    '  relay: descriptor + a fresh 108-byte (GMAC) or 100-byte (HMAC) next-hop layer header (IPv4, SKIP, AH) over ' +
      'the same End-End packet;',
    '  decap and relay reinstall the inbound SA once per pool (its replay window accepts the pool again).',
    'openssl: `openssl speed -mr -evp aes-128-gcm -bytes N` (EVP_EncryptUpdate over one buffer, user CPU time; no ' +
      'per-packet IV, AAD or tag).',
    '',
    'targets:',
    ...checkTargets(result, o.sizes).map((c) => `  ${c.met ? 'MET   ' : 'MISSED'} ${c.target}: ${c.detail}`),
  );
  return out.join('\n');
}
