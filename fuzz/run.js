#!/usr/bin/env node
// Builds the libFuzzer harnesses (clang++ -fsanitize=fuzzer,address,undefined) from the native data-path
// sources, writes the seed corpus, runs each harness for --seconds and prints what it found; the JS
// harnesses (fuzz/<name>.js) run over dist/, compiled first when src/ is newer. See fuzz/README.md.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HARNESSES = {
  ipv4: 'IPv4 parser, checksum and RFC 1624 update',
  skip: 'SKIP header parser and key tuple',
  ah: 'AH parser (GMAC and HMAC lengths), SPI peek',
  esp: 'ESP framing, trailer check and writer',
  icmp40: 'ICMP 40 Security Failures parser (raw, and made type 40 with a valid checksum)',
  inbound: 'INBOUND on raw packets at gateway G1 (relay) and G2 (end)',
  xform: 'ENCAP / WRAP / IPIP_ENCAP on fuzzed inner datagrams, INBOUND round trip',
  batch: 'descriptor and batch bounds',
};
/** Harnesses written in JS over the compiled TypeScript (dist/): fuzz/<name>.js, a seeded mutation loop. */
const JS_HARNESSES = {
  reassembly: 'fragment reassembly (src/roles/common/reassembly.ts): permuted, mutated and interleaved fragment sequences',
};
const ALL = { ...HARNESSES, ...JS_HARNESSES };
const MAX_LEN = { ipv4: 256, skip: 128, ah: 128, esp: 2048, icmp40: 512, inbound: 2048, xform: 1600, batch: 4096 };

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fuzzDir = path.join(root, 'fuzz');
const outDir = path.join(fuzzDir, 'out');
const buildDir = path.join(outDir, 'build');

const usage = `usage: npm run fuzz -- [--seconds N] [--only NAME[,NAME]] [--jobs J] [--build-only]

  --seconds N   run each harness N seconds (default 60)
  --only NAMES  run only these harnesses: ${Object.keys(ALL).join(', ')}
  --jobs J      harnesses run in parallel (default 1; each uses one core)
  --build-only  build harnesses and seeds, run nothing

Exits non-zero when a harness finds a crash, a sanitizer report or an oracle failure; the reproducer
path is printed (re-run it with: fuzz/out/<name> <reproducer>, or node fuzz/<name>.js --replay <reproducer>).`;

function fail(message) {
  console.error(`fuzz: ${message}`);
  process.exit(2);
}

function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        seconds: { type: 'string', default: '60' },
        only: { type: 'string' },
        jobs: { type: 'string', default: '1' },
        'build-only': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    fail(`${err.message}\n\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 1) fail(`--seconds must be a positive integer, got '${values.seconds}'`);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) fail(`--jobs must be a positive integer, got '${values.jobs}'`);
  const names = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(ALL);
  for (const n of names) if (!(n in ALL)) fail(`--only: unknown harness '${n}' (one of ${Object.keys(ALL).join(', ')})`);
  return { seconds, jobs, names, buildOnly: values['build-only'] };
}

function has(cmd, args) {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

function clangSupportsFuzzer(cxx) {
  const probe = path.join(os.tmpdir(), `mipsec-fuzz-probe-${process.pid}`);
  fs.writeFileSync(`${probe}.cc`, 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n');
  const ok = has(cxx, ['-fsanitize=fuzzer,address,undefined', `${probe}.cc`, '-o', probe]);
  fs.rmSync(probe, { force: true });
  fs.rmSync(`${probe}.cc`, { force: true });
  return ok;
}

/** clang 14 with the libFuzzer runtime and the libcrypto headers; installs them from apt when missing. */
function toolchain() {
  const candidates = ['clang++-14', 'clang++'];
  let cxx = candidates.find((c) => has(c, ['--version']));
  const haveHeaders = fs.existsSync('/usr/include/openssl/evp.h');
  if (!cxx || !clangSupportsFuzzer(cxx) || !haveHeaders) {
    console.error('fuzz: installing clang-14, libclang-rt-14-dev and libssl-dev from apt');
    const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
    for (const args of [['apt-get', 'update'], ['apt-get', 'install', '-y', 'clang-14', 'libclang-rt-14-dev', 'libssl-dev']]) {
      const cmd = [...sudo, ...args];
      const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit' });
      if (r.status !== 0) fail(`'${cmd.join(' ')}' failed; install clang-14, libclang-rt-14-dev and libssl-dev yourself`);
    }
    cxx = candidates.find((c) => has(c, ['--version']));
    if (!cxx || !clangSupportsFuzzer(cxx)) fail('clang++ still cannot build with -fsanitize=fuzzer after installing clang-14');
  }
  return cxx;
}

const COMMON_FLAGS = ['-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined', `-I${path.join(root, 'native')}`, `-I${fuzzDir}`];
const LIB_SANITIZE = '-fsanitize=fuzzer-no-link,address,undefined';

function newestHeader() {
  let newest = 0;
  for (const dir of [path.join(root, 'native'), fuzzDir]) {
    for (const entry of fs.readdirSync(dir, { recursive: true })) {
      if (String(entry).endsWith('.h')) newest = Math.max(newest, fs.statSync(path.join(dir, String(entry))).mtimeMs);
    }
  }
  return newest;
}

function stale(target, sources, headerTime) {
  if (!fs.existsSync(target)) return true;
  const t = fs.statSync(target).mtimeMs;
  return headerTime > t || sources.some((s) => fs.statSync(s).mtimeMs > t);
}

function runCommand(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}\n${err}`))));
  });
}

async function parallel(tasks, limit) {
  const queue = [...tasks];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(workers);
}

/**
 * Builds the native core library with the sanitizers (native/Makefile: the same sources and dependency tracking as
 * `make -C native`, into fuzz/out/build/core) and fuzz/common.cc, then links each harness against them.
 */
async function build(cxx, names) {
  fs.mkdirSync(buildDir, { recursive: true });
  const jobs = os.cpus().length;
  const coreDir = path.join(buildDir, 'core');
  const sanitizedFlags = [...COMMON_FLAGS.filter((f) => !f.startsWith('-I')), LIB_SANITIZE].join(' ');
  const make = ['-s', '-C', path.join(root, 'native'), `-j${jobs}`, 'lib', `OUT=${coreDir}`, `CXX=${cxx}`];
  await runCommand('make', [...make, `CXXFLAGS=${sanitizedFlags}`]);
  const lib = path.join(coreDir, 'libmipsec-core.a');
  const headerTime = newestHeader();
  const commonSrc = path.join(fuzzDir, 'common.cc');
  const commonObj = path.join(buildDir, 'fuzz_common.o');
  if (stale(commonObj, [commonSrc], headerTime)) {
    await runCommand(cxx, [...COMMON_FLAGS, LIB_SANITIZE, '-c', commonSrc, '-o', commonObj]);
  }
  const objs = [commonObj, lib];
  const link = [];
  for (const name of names) {
    const src = path.join(fuzzDir, `${name}.cc`);
    const bin = path.join(outDir, name);
    if (stale(bin, [src, ...objs], headerTime)) {
      link.push(() => runCommand(cxx, [...COMMON_FLAGS, '-fsanitize=fuzzer,address,undefined', src, ...objs, '-lcrypto', '-o', bin]));
    }
  }
  const seeds = path.join(outDir, 'seeds-gen');
  const seedSrc = path.join(fuzzDir, 'seeds.cc');
  if (stale(seeds, [seedSrc, ...objs], headerTime)) {
    link.push(() => runCommand(cxx, [...COMMON_FLAGS, LIB_SANITIZE, seedSrc, ...objs, '-lcrypto', '-o', seeds]));
  }
  await parallel(link, jobs);
  return seeds;
}

function writeSeeds(seedsBin) {
  const dir = path.join(outDir, 'seeds');
  fs.rmSync(dir, { recursive: true, force: true });
  const r = spawnSync(seedsBin, [dir], { stdio: 'inherit' });
  if (r.status !== 0) fail(`seed generator failed (exit ${r.status ?? r.signal})`);
  return dir;
}

/** The figures libFuzzer prints: final stats, and the last status line for coverage. */
export function parseLibFuzzerLog(log) {
  const stat = (key) => {
    const m = log.match(new RegExp(`stat::${key}:\\s*(\\d+)`));
    return m ? Number(m[1]) : undefined;
  };
  const status = [...log.matchAll(/^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)\/\S+.*?(?:exec\/s: (\d+))?/gm)].at(-1);
  const artifact = log.match(/Test unit written to (\S+)/);
  const sanitizer = log.match(/^SUMMARY: (\S+Sanitizer: .*)$/m) ?? log.match(/^(FINDING: .*)$/m) ?? log.match(/^==\d+== ERROR: libFuzzer: (.*)$/m);
  return {
    executions: stat('number_of_executed_units') ?? (status ? Number(status[1]) : undefined),
    execPerSec: stat('average_exec_per_sec') ?? (status?.[5] ? Number(status[5]) : undefined),
    coverage: status ? Number(status[2]) : undefined,
    features: status ? Number(status[3]) : undefined,
    corpus: status ? Number(status[4]) : undefined,
    reproducer: artifact?.[1],
    finding: sanitizer?.[1],
  };
}

function runHarness(name, seconds, seedsDir) {
  const corpus = path.join(fuzzDir, 'corpus', name);
  const artifacts = path.join(outDir, 'artifacts', name) + path.sep;
  const logFile = path.join(outDir, 'logs', `${name}.log`);
  for (const d of [corpus, artifacts, path.dirname(logFile)]) fs.mkdirSync(d, { recursive: true });
  const args = [
    `-max_total_time=${seconds}`,
    `-max_len=${MAX_LEN[name]}`,
    '-timeout=10',
    '-print_final_stats=1',
    `-artifact_prefix=${artifacts}`,
    corpus,
    path.join(seedsDir, name),
  ];
  return new Promise((resolve) => {
    const child = spawn(path.join(outDir, name), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('close', (code, signal) => {
      fs.writeFileSync(logFile, log);
      resolve({ name, exit: code ?? signal, log: logFile, ...parseLibFuzzerLog(log) });
    });
  });
}

/** Newest modification time of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const entry of fs.readdirSync(dir, { recursive: true })) t = Math.max(t, fs.statSync(path.join(dir, String(entry))).mtimeMs);
  return t;
}

/** The JS harnesses import dist/: compile src/ when it is newer. */
async function buildDist() {
  const marker = path.join(root, 'dist', 'index.js');
  if (fs.existsSync(marker) && fs.statSync(marker).mtimeMs >= newest(path.join(root, 'src'))) return;
  console.error('fuzz: compiling src/ into dist/ for the JS harnesses');
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await runCommand(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')]);
}

function runJsHarness(name, seconds) {
  const artifacts = path.join(outDir, 'artifacts', name);
  const logFile = path.join(outDir, 'logs', `${name}.log`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  return new Promise((resolve) => {
    const args = [path.join(fuzzDir, `${name}.js`), '--seconds', String(seconds), '--artifacts', artifacts];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('close', (code, signal) => {
      fs.writeFileSync(logFile, log);
      const line = log.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      const r = line ? JSON.parse(line) : { finding: log.trim().split('\n').at(-1) };
      resolve({
        name, exit: code ?? signal, log: logFile, executions: r.executions, execPerSec: r.execPerSec,
        coverage: '-', features: '-', corpus: '-', reproducer: r.reproducer, finding: r.finding,
      });
    });
  });
}

function table(results) {
  const rows = results.map((r) => [
    r.name,
    String(r.executions ?? '?'),
    String(r.execPerSec ?? '?'),
    String(r.coverage ?? '?'),
    String(r.features ?? '?'),
    String(r.corpus ?? '?'),
    r.exit === 0 ? '0' : '1',
  ]);
  const head = ['harness', 'executions', 'exec/s', 'cov', 'ft', 'corpus', 'crashes'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

async function main() {
  const { seconds, jobs, names, buildOnly } = parseOptions();
  const native = names.filter((n) => n in HARNESSES);
  let seedsDir;
  if (native.length > 0) {
    const cxx = toolchain();
    console.error(`fuzz: building ${native.join(', ')} with ${cxx}`);
    seedsDir = writeSeeds(await build(cxx, native));
  }
  if (names.some((n) => n in JS_HARNESSES)) await buildDist();
  if (buildOnly) return 0;
  const results = [];
  await parallel(
    names.map((name) => async () => {
      console.error(`fuzz: ${name} (${ALL[name]}) for ${seconds} s`);
      results.push(await (name in JS_HARNESSES ? runJsHarness(name, seconds) : runHarness(name, seconds, seedsDir)));
    }),
    jobs,
  );
  results.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
  console.log(table(results));
  const bad = results.filter((r) => r.exit !== 0);
  for (const r of bad) {
    console.log(`\n${r.name}: ${r.finding ?? `exit ${r.exit}`}`);
    const rerun = r.name in JS_HARNESSES ? `node fuzz/${r.name}.js --replay` : `fuzz/out/${r.name}`;
    console.log(`  reproducer: ${r.reproducer ?? '(none written)'}  (re-run: ${rerun} ${r.reproducer ?? ''})`);
    console.log(`  log: ${path.relative(root, r.log)}`);
  }
  return bad.length ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    console.error(`fuzz: ${err.message}`);
    process.exitCode = 2;
  },
);
