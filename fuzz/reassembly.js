#!/usr/bin/env node
// JS fuzz harness for the fragment reassembler (src/roles/common/reassembly.ts, built into dist/): a
// seeded mutation loop over fragment sequences. One execution = one datagram cut by fragmentIpv4 at a
// random MTU, its fragments permuted and possibly mutated (duplicated, dropped, header fields changed,
// junk of the same key added), interleaved with other sources' pieces, clock jumps between pushes.
// Oracles: push never throws; the held bytes and datagrams never exceed the limits; a datagram whose
// fragments were a clean permutation comes back byte for byte, exactly once, when nothing evicted it;
// whatever comes back parses and is no larger than 65,535 bytes. Prints one JSON line of results;
// a finding writes its seed and execution to the artifact directory (--replay re-runs it).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL, fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const load = (rel) => import(pathToFileURL(path.join(root, 'dist', rel)).href);
const { Reassembler } = await load('roles/common/reassembly.js');
const { Tally } = await load('roles/common/counters.js');
const { VirtualClock } = await load('net/clock.js');
const { fragmentIpv4 } = await load('wire/fragment.js');
const { buildIpv4, parseIpv4, setIpv4Checksum, MAX_IP_TOTAL } = await load('wire/ipv4.js');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    artifacts: { type: 'string', default: path.join(root, 'fuzz', 'out', 'artifacts', 'reassembly') },
    replay: { type: 'string' },
  },
});

/** mulberry32: small, fast, seedable. */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), chance: (p) => next() < p };
}

const LIMIT_SETS = [
  {},
  { maxBytes: 16_384, maxDatagrams: 8, perSourceShare: 0.5, maxFragments: 16, timeoutMs: 50 },
  { maxBytes: 4096, maxDatagrams: 2, perSourceShare: 1, maxFragments: 4, timeoutMs: 5 },
];
const DEFAULTS = { maxBytes: 1 << 20, maxDatagrams: 256, maxFragments: 128 };

/** A datagram of up to 3,000 bytes (2 % up to 65,535) whose payload words are distinct, so misplaced pieces show. */
function datagram(r, src, id, big = r.chance(0.02)) {
  const size = big ? r.int(MAX_IP_TOTAL - 20) : r.int(3000);
  const payload = new Uint8Array(size);
  const words = new DataView(payload.buffer);
  const salt = r.int(2 ** 32);
  for (let i = 0; i + 4 <= size; i += 4) words.setUint32(i, (salt + i * 0x9e3779b1) >>> 0);
  return { packet: buildIpv4({ src, dst: 0x0a010001, identification: id, protocol: 17, ttl: 64 }, payload), big };
}

/** A random MTU: small ones (down to 28) for ordinary datagrams, at least 576 for the big ones. */
function mtu(r, big) {
  return big ? 576 + 8 * r.int(1000) : 28 + 8 * r.int(200);
}

/** Changes one header field of a fragment (offset, MF, total length, a payload byte) and fixes its checksum. */
function mutate(r, packet) {
  const p = packet.slice();
  switch (r.int(4)) {
    case 0: p[7] ^= 1 << r.int(8); break;
    case 1: p[6] ^= r.chance(0.5) ? 0x20 : 1 << r.int(5); break;
    case 2: if (p.length > 21) return p.subarray(0, 20 + r.int(p.length - 20)).slice(); break;
    default: if (p.length > 20) p[20 + r.int(p.length - 20)] ^= 0xff;
  }
  setIpv4Checksum(p, 0, (p[0] & 0x0f) * 4);
  if (r.chance(0.5)) {
    p[2] = p.length >>> 8;
    p[3] = p.length & 0xff;
    setIpv4Checksum(p, 0, (p[0] & 0x0f) * 4);
  }
  return p;
}

/** One execution; returns a finding (string) or undefined. */
function execute(r, state, exec) {
  const { reassembler, tally, clock, limits } = state;
  const id = exec & 0xffff;
  const src = 0x0b000000 + r.int(64);
  const { packet: original, big } = datagram(r, src, id);
  const parts = fragmentIpv4(original, mtu(r, big)) ?? [original];
  let pieces = parts.map((p) => ({ p, clean: true }));
  for (let i = pieces.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [pieces[i], pieces[j]] = [pieces[j], pieces[i]];
  }
  let clean = !r.chance(0.3);
  if (!clean) {
    const op = r.int(4);
    const k = r.int(pieces.length);
    if (op === 0) pieces.splice(k, 0, pieces[k]);
    else if (op === 1) pieces.splice(k, 1);
    else if (op === 2) pieces[k] = { p: mutate(r, pieces[k].p), clean: false };
    else pieces.splice(k, 0, { p: mutate(r, parts[r.int(parts.length)]), clean: false });
  }
  const noise = r.chance(0.2) ? r.int(4) : 0;
  for (let n = 0; n < noise; n++) {
    const other = datagram(r, 0x0c000000 + r.int(1024), r.int(65536), false).packet;
    const frags = fragmentIpv4(other, mtu(r, false)) ?? [other];
    pieces.splice(r.int(pieces.length + 1), 0, { p: frags[r.int(frags.length)], clean: true, noise: true });
  }
  const evictedBefore = tally.get('drop_frag_memory') + tally.get('drop_frag_timeout') + tally.get('drop_frag_source_share');
  let jumped = false;
  let back = 0;
  for (const { p, noise: isNoise } of pieces) {
    const ip = parseIpv4(p, 0, p.length, { allowFragments: true });
    if (!ip.ok) continue; // the hook drops it before the reassembler
    let whole;
    try {
      whole = reassembler.push(p, ip.header);
    } catch (err) {
      return `push threw: ${err.stack}`;
    }
    const held = reassembler.held();
    const bound = { ...DEFAULTS, ...limits };
    if (held.bytes > bound.maxBytes || held.datagrams > bound.maxDatagrams || held.bytes < 0) {
      return `memory bound broken: ${JSON.stringify(held)}`;
    }
    if (whole) {
      const check = parseIpv4(whole.datagram, 0);
      const length = whole.datagram.length;
      if (!check.ok || check.header.totalLength !== length || length > MAX_IP_TOTAL) return 'reassembled datagram does not parse';
      const ours = !isNoise && whole.header.identification === id && whole.header.src === src;
      if (ours) back++;
      if (ours && clean && !equal(whole.datagram, original)) return 'clean permutation came back different';
    }
    if (r.chance(0.01)) {
      clock.runFor(r.int(limits.timeoutMs ?? 20_000));
      jumped = true;
    }
  }
  const evicted = tally.get('drop_frag_memory') + tally.get('drop_frag_timeout') + tally.get('drop_frag_source_share') !== evictedBefore;
  const fragmented = parts.length > 1;
  if (clean && fragmented && !jumped && !evicted && pieces.length <= ({ ...DEFAULTS, ...limits }).maxFragments && back !== 1) {
    return `clean permutation of ${parts.length} fragments came back ${back} times`;
  }
  return undefined;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function freshState(r) {
  const clock = new VirtualClock(0);
  const tally = new Tally();
  const limits = LIMIT_SETS[r.int(LIMIT_SETS.length)];
  return { clock, tally, limits, reassembler: new Reassembler(clock, tally, limits) };
}

/** Executions in rounds of 1,000 on one reassembler (state carries over), each round seeded from (seed, round). */
function run(seed, deadline, only) {
  let executions = 0;
  for (let round = only?.round ?? 0; ; round++) {
    const r = rng((seed ^ Math.imul(round, 0x9e3779b1)) >>> 0);
    const state = freshState(r);
    for (let i = 0; i < 1000; i++) {
      const finding = execute(r, state, i);
      executions++;
      if (finding) return { executions, finding, round, exec: i };
    }
    if (only || Date.now() >= deadline) return { executions };
  }
}

const replay = values.replay ? JSON.parse(fs.readFileSync(values.replay, 'utf8')) : undefined;
const seed = replay?.seed ?? Number(values.seed ?? Date.now() % 2 ** 31);
const started = Date.now();
const result = run(seed, started + Number(values.seconds) * 1000, replay && { round: replay.round });
const seconds = Math.max((Date.now() - started) / 1000, 0.001);
let reproducer;
if (result.finding) {
  fs.mkdirSync(values.artifacts, { recursive: true });
  reproducer = path.join(values.artifacts, `crash-${seed}-${result.round}-${result.exec}.json`);
  fs.writeFileSync(reproducer, JSON.stringify({ seed, round: result.round, exec: result.exec, finding: result.finding }, null, 2));
}
const execPerSec = Math.round(result.executions / seconds);
console.log(JSON.stringify({ executions: result.executions, execPerSec, seed, finding: result.finding, reproducer }));
process.exitCode = result.finding ? 1 : 0;
