#!/usr/bin/env node
// The punt path's memory under load (issue 11 item 5): an I/O loop whose engine has no policy punts every packet
// read from its TUN to JS, as a daemon's interface loops do. A generator in a test namespace sends UDP datagrams of
// mixed sizes into the TUN at a paced rate; this process samples its RSS (and V8's heap and external memory) every
// few seconds: RSS, V8's heap (total and used) and external memory, glibc's thread arenas (the workers' malloc
// heaps) and the main heap (brk: the JS thread's mallocs, ArrayBuffer backing stores among them). Like a daemon forwarding what it decides, JS sends every punted packet back out (one inject call per
// packet, via 'raw' with the datagram as `carries`), readdressed into a device that discards it. Root only; runs the built dist/ (npx tsc -p tsconfig.build.json) and the built addon.
//
//   node scripts/punt-rss.mjs [seconds=120] [packetsPerSecond=50000] [sampleSeconds=10]
//
// Prints one JSON line per sample, then a summary line { rssStartMiB, rssEndMiB, growth, punted, puntDropped }.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

process.env.MIPSEC_NATIVE = '1';
const { createEngine } = await import('../dist/engine/index.js');
const { IoLoop } = await import('../dist/engine/io.js');

const seconds = Number(process.argv[2] ?? 120);
const pps = Number(process.argv[3] ?? 50_000);
const every = Number(process.argv[4] ?? 10);
const ns = `mipsec-rss-${randomBytes(3).toString('hex')}`;
const MiB = 1 << 20;

/**
 * Resident memory of glibc's thread arenas (the workers' malloc heaps): anonymous read-write mappings that start on
 * a 64 MiB boundary (HEAP_MAX_SIZE on 64-bit: each non-main arena heap is mapped so aligned).
 */
function mallocMiB() {
  let arenaKb = 0;
  let brkKb = 0;
  let at = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      at = head[4] === '[heap]' ? 'brk' : BigInt('0x' + head[1]) % (64n << 20n) === 0n && head[2].startsWith('rw') && head[3] === '0' && head[4] === '' ? 'arena' : '';
      continue;
    }
    if (at && line.startsWith('Rss:')) {
      if (at === 'brk') brkKb += Number(line.split(/\s+/)[1]);
      else arenaKb += Number(line.split(/\s+/)[1]);
    }
  }
  return { arena: +(arenaKb / 1024).toFixed(1), brk: +(brkKb / 1024).toFixed(1) };
}
const arenaMiB = () => mallocMiB().arena;

const generator = [
  'import random, socket, sys, time',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  'end = time.time() + float(sys.argv[1]); rate = int(sys.argv[2]); burst = max(1, rate // 200)',
  'payloads = [bytes(random.randrange(32, 1400)) for _ in range(997)]; i = 0; sent = 0',
  'start = time.time()',
  'while time.time() < end:',
  '    for _ in range(burst):',
  "        s.sendto(payloads[i % 997], ('10.99.0.2', 9)); i += 1",
  '    sent += burst',
  '    ahead = sent / rate - (time.time() - start)',
  '    if ahead > 0: time.sleep(ahead)',
  "print(sent, flush=True)",
].join('\n');

execFileSync('ip', ['netns', 'add', ns]);
let loop;
let engine;
try {
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A discard device: a veth without ARP whose peer drops what it gets (not for it, no forwarding).
  execFileSync('ip', ['-n', ns, 'link', 'add', 'mrssd0', 'type', 'veth', 'peer', 'name', 'mrssd1']);
  for (const dev of ['mrssd0', 'mrssd1']) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'arp', 'off', 'up']);
  execFileSync('ip', ['-n', ns, 'route', 'add', '10.98.0.0/16', 'dev', 'mrssd0']);
  engine = createEngine('native');
  let received = 0;
  let kept = 0;
  loop = IoLoop.start({
    engine, netns: ns, tun: { name: 'mrss0', addresses: ['10.99.0.1/24'], offload: false }, raw: true,
    // What a daemon does with a punt: copies the packet out of the batch, decides, and sends it on — one inject per
    // packet (the raw socket fills in the header checksum).
    onPunt: (packets) => {
      for (const p of packets) {
        const copy = p.packet.slice();
        copy[17] = 98;
        kept += copy[9];
        loop.inject([{ packet: copy, via: 'raw', carries: copy }]);
      }
      received += packets.length;
    },
  });
  const gen = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', generator, String(seconds), String(pps)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const t0 = Date.now();
  const sample = () => {
    const m = process.memoryUsage();
    const s = loop.stats();
    return { t: Math.round((Date.now() - t0) / 1000), rssMiB: +(m.rss / MiB).toFixed(1), arenaMiB: arenaMiB(), mainHeapMiB: mallocMiB().brk, heapTotalMiB: +(m.heapTotal / MiB).toFixed(1), heapUsedMiB: +(m.heapUsed / MiB).toFixed(1), externalMiB: +(m.external / MiB).toFixed(1), arrayBuffersMiB: +(m.arrayBuffers / MiB).toFixed(1), punted: s.punted, puntDropped: s.puntDropped, injected: s.injected, injectDropped: s.injectDropped, txRaw: s.txRaw, txErrors: s.txErrors, received };
  };
  const samples = [sample()];
  console.log(JSON.stringify(samples[0]));
  const timer = setInterval(() => {
    samples.push(sample());
    console.log(JSON.stringify(samples.at(-1)));
  }, every * 1000);
  await new Promise((resolve) => gen.on('exit', resolve));
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 500));
  samples.push(sample());
  // The first sample after the traffic started is the baseline: the loop's fixed batch memory is in place by then.
  const base = samples[1] ?? samples[0];
  const end = samples.at(-1);
  console.log(JSON.stringify({ summary: true, seconds, pps, rssBaselineMiB: base.rssMiB, rssEndMiB: end.rssMiB, growth: +((end.rssMiB / base.rssMiB - 1) * 100).toFixed(1) + '%', rssMaxMiB: Math.max(...samples.map((s) => s.rssMiB)), arenaBaselineMiB: base.arenaMiB, arenaEndMiB: end.arenaMiB, arenaMaxMiB: Math.max(...samples.map((s) => s.arenaMiB)), punted: end.punted, puntDropped: end.puntDropped, injected: end.injected, injectDropped: end.injectDropped, txRaw: end.txRaw, txErrors: end.txErrors, received: end.received, kept: kept > 0 }));
} finally {
  loop?.stop();
  engine?.close();
  execFileSync('ip', ['netns', 'del', ns]);
}
