// `mipsec bench overload`: a gateway offered twice what it can carry. In the fault lab's namespaces (src/lab/faults.ts:
// real `mipsec sgw` and `mipsec ha` processes), first the carry rate: UDP iperf3 from mn (behind sgw0) to h1 (behind
// sgw1) offered 1 Gbit/s, the rate h1 receives is what the pair carries. Then, for --seconds: UDP at 2× that rate,
// plus a flood from an Internet host of plain datagrams and SKIP packets with fresh (bogus) keys from 2,000 spoofed
// sources, plus Mobile IP registrations to the HA (from the home link, beside sgw0), while
//   * `mipsec status` is asked of sgw0 and sgw1 every 100 ms over their sockets by a prober process (what the CLI
//     does, without Node's start-up; not this process, whose own work would be in the figure): every answer's latency;
//   * halfway, sgw3 (a nested SGW, idle until then) is restarted and h0 behind it pings h1: the first packets of
//     new SKIP keys at sgw0 and sgw1 must still be punted, keyed and delivered;
//   * the gateways' counters say what they dropped and why; the kernel's drop counters say what nobody counted.
// Then the load stops and the same probes run again: recovery.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SkipAlg } from '../../engine/types.js';
import { skipCounter } from '../../keys/derive.js';
import { FaultLab, MN_HOMES, type Daemon, type Node } from '../../lab/faults.js';
import { ipToU32 } from '../../wire/addr.js';
import { buildIpv4 } from '../../wire/ipv4.js';
import { encodeSkipHeader, IPPROTO_SKIP } from '../../wire/skip.js';
import { parseProberLines, type StatusProberSpec } from './status-prober.js';
import { buildUdpDatagram } from '../../wire/udp.js';

const REGISTRAR = fileURLToPath(new URL('../../../dist/bench/soak/registrar.js', import.meta.url));
const STATUS_PROBER = fileURLToPath(new URL('../../../dist/bench/overload/status-prober.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spoofed Internet sources of the flood. */
export const FLOOD_SOURCES = 2000;

// Sends the datagrams of a file (u16 length + bytes, repeated) round robin through a raw socket at a given rate,
// for a given time; prints how many it sent and how many the kernel refused.
const FLOOD_PY = String.raw`
import socket, struct, sys, time
path, pps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
data = open(path, 'rb').read()
packets, i = [], 0
while i < len(data):
    (n,) = struct.unpack_from('>H', data, i)
    pkt = data[i + 2:i + 2 + n]
    packets.append((pkt, socket.inet_ntoa(pkt[16:20])))
    i += 2 + n
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = refused = k = 0
start = time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * pps)
    while sent + refused < due:
        pkt, dst = packets[k % len(packets)]
        k += 1
        try:
            s.sendto(pkt, (dst, 0))
            sent += 1
        except OSError:
            refused += 1
    time.sleep(0.001)
print('sent %d refused %d seconds %.2f' % (sent, refused, time.monotonic() - start), flush=True)
`;

/** The flood: per spoofed source one plain UDP datagram to h1 and one SKIP packet with a random wrapped Kp. */
function floodPackets(): Buffer {
  const n = skipCounter(Math.floor(Date.now() / 1000));
  const parts: Buffer[] = [];
  for (let i = 0; i < FLOOD_SOURCES; i++) {
    const src = ipToU32(`198.18.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`);
    const plain = buildUdpDatagram({ src, dst: ipToU32('10.1.0.10'), srcPort: 1024 + i, dstPort: 9 }, randomBytes(64));
    const skip = encodeSkipHeader({
      srcNsid: 0,
      dstNsid: 0,
      nextHeader: 50,
      n,
      kijAlg: SkipAlg.kij['aes256-kw'],
      cryptAlg: SkipAlg.crypt.aes128gcm,
      macAlg: 0,
      compAlg: 0,
      wrappedKp: randomBytes(40),
    });
    const esp = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 1]), randomBytes(80)]);
    const sealed = buildIpv4({ src, dst: ipToU32('198.18.1.1'), protocol: IPPROTO_SKIP }, Buffer.concat([skip, esp]));
    for (const d of [plain, sealed]) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(d.length);
      parts.push(len, Buffer.from(d));
    }
  }
  return Buffer.concat(parts);
}

export interface Latency {
  samples: number;
  failed: number;
  medianMs: number | null;
  p95Ms: number | null;
  maxMs: number | null;
}

export interface PhaseFigures {
  status: Record<'sgw0' | 'sgw1', Latency>;
  /** Registrations accepted per second by the HA (client-side acknowledgements, from the home link). */
  registrationsPerS: number;
}

export interface OverloadReport {
  /** The most h1 received in the sweep (and at what offer); the sweep itself. */
  carry: {
    offeredMbps: number;
    receivedMbps: number;
    lostPct: number;
    sweep: { offeredMbps: number; receivedMbps: number; lostPct: number }[];
  };
  /** UDP offered 1 Gbit/s (as much as iperf3 sends): what gets through far past the knee. */
  farPastKnee: { offeredMbps: number; receivedMbps: number; lostPct: number };
  load: PhaseFigures & {
    seconds: number;
    udp: { offeredMbps: number; receivedMbps: number; lostPct: number; lostPackets: number };
    flood: { sources: number; sent: number; pps: number; refused: number };
    /** h0 → h1 after sgw3's restart under load: new keys at sgw3, sgw0 and sgw1; ms to the first reply, or null. */
    newKeyFirstReplyMs: number | null;
    /**
     * The gateways' counters over the load (engine reasons, role, I/O loop), and the kernel's drops in their
     * namespaces.
     */
    counters: Record<string, number>;
    kernelDrops: Record<string, number>;
  };
  idle: PhaseFigures & { newKeyFirstReplyMs: number | null };
  after: PhaseFigures & {
    /**
     * UDP at half the carry rate, 3 s, up to three times until the gateways lose ≤ 2 % (`gatewayLostPct`: what
     * iperf3 lost minus what h1's own socket dropped, `receiverDrops`, which on a shared 2-core machine is
     * iperf3 falling behind, not the gateways); the attempt that counted, and every attempt.
     */
    udp: {
      offeredMbps: number;
      receivedMbps: number;
      lostPct: number;
      receiverDrops: number;
      gatewayLostPct: number;
      attempts: { receivedMbps: number; lostPct: number; receiverDrops: number; gatewayLostPct: number }[];
    };
    pingLost: string;
    rssMb: Record<string, number>;
  };
  rssMbBefore: Record<string, number>;
  pass: boolean;
  failures: string[];
}

function latency(values: number[], failed: number): Latency {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    v.length ? Math.round(v[Math.min(v.length - 1, Math.floor(q * v.length))] * 10) / 10 : null;
  return {
    samples: v.length,
    failed,
    medianMs: at(0.5),
    p95Ms: at(0.95),
    maxMs: v.length ? Math.round(v[v.length - 1] * 10) / 10 : null,
  };
}

/**
 * Asks sgw0 and sgw1 for their status every `everyMs` until stop(), from a prober process of its own
 * (status-prober.ts): the latencies of the answers, without this process's own work in them.
 */
function statusSampler(lab: FaultLab, everyMs = 100): { stop: () => Promise<Record<'sgw0' | 'sgw1', Latency>> } {
  const spec: StatusProberSpec = {
    sockets: { sgw0: join(lab.dir, 'sgw0.sock'), sgw1: join(lab.dir, 'sgw1.sock') },
    everyMs,
    timeoutMs: 3000,
  };
  const prober = spawn(process.execPath, [STATUS_PROBER, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let errors = '';
  prober.stdout.on('data', (c: Buffer) => (out += c.toString()));
  prober.stderr.on('data', (c: Buffer) => (errors += c.toString()));
  const closed = new Promise<number | null>((resolve) => prober.once('close', resolve));
  return {
    stop: async () => {
      prober.kill('SIGTERM');
      const code = await closed;
      if (code !== 0) throw new Error(`the status prober exited ${code}: ${errors.trim()}`);
      const got = parseProberLines(out);
      const of = (name: 'sgw0' | 'sgw1') => latency(got[name]?.ms ?? [], got[name]?.failed ?? 0);
      return { sgw0: of('sgw0'), sgw1: of('sgw1') };
    },
  };
}

interface UdpFigures {
  offeredMbps: number;
  receivedMbps: number;
  lostPct: number;
  lostPackets: number;
  packets: number;
}

/** UDP iperf3 mn → h1 at `rate` for `seconds` (1200-byte datagrams): what was offered and what h1 received. */
async function udp(lab: FaultLab, rate: string, seconds: number): Promise<UdpFigures> {
  const out = await lab.execAsync('mn', 'iperf3', [
    '-c',
    '10.1.0.10',
    '-u',
    '-b',
    rate,
    '-l',
    '1200',
    '-t',
    String(seconds),
    '-J',
    '--connect-timeout',
    '5000',
  ]);
  const j = JSON.parse(out.slice(out.indexOf('{'))) as {
    end?: {
      sum?: { bits_per_second: number; lost_percent: number; lost_packets: number; packets: number };
      sum_sent?: { bits_per_second: number };
      sum_received?: { bits_per_second: number };
    };
    error?: string;
  };
  if (!j.end?.sum) throw new Error(`iperf3 -u ${rate}: ${j.error ?? out.slice(0, 200)}`);
  const offered = j.end.sum_sent?.bits_per_second ?? j.end.sum.bits_per_second;
  const received =
    j.end.sum_received?.bits_per_second ?? j.end.sum.bits_per_second * (1 - j.end.sum.lost_percent / 100);
  return {
    offeredMbps: offered / 1e6,
    receivedMbps: received / 1e6,
    lostPct: j.end.sum.lost_percent,
    lostPackets: j.end.sum.lost_packets,
    packets: j.end.sum.packets,
  };
}

/** Up to three 3-s runs at `rate`, 1 s apart, until the gateways lose ≤ 2 % (h1's own socket drops not counted). */
async function recoveredUdp(lab: FaultLab, rate: string): Promise<OverloadReport['after']['udp']> {
  const attempts: OverloadReport['after']['udp']['attempts'] = [];
  let last: UdpFigures | undefined;
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1000);
    const before = kernelDrops(lab)['h1 udp RcvbufErrors'] ?? 0;
    last = await udp(lab, rate, 3);
    const receiverDrops = Math.min(last.lostPackets, (kernelDrops(lab)['h1 udp RcvbufErrors'] ?? 0) - before);
    const gatewayLostPct = last.packets > 0 ? ((last.lostPackets - receiverDrops) / last.packets) * 100 : 0;
    attempts.push({ receivedMbps: last.receivedMbps, lostPct: last.lostPct, receiverDrops, gatewayLostPct });
    if (gatewayLostPct <= 2) break;
  }
  const counted = attempts.at(-1)!;
  return {
    offeredMbps: last!.offeredMbps,
    receivedMbps: last!.receivedMbps,
    lostPct: last!.lostPct,
    receiverDrops: counted.receiverDrops,
    gatewayLostPct: counted.gatewayLostPct,
    attempts,
  };
}

/** ms from the first echo request until its reply, for up to `count` tries 200 ms apart (new keys on the way). */
async function firstReplyMs(lab: FaultLab, from: Node, to: string): Promise<number | null> {
  const out = await lab.execAsync(from, 'ping', ['-D', '-n', '-c', '25', '-i', '0.2', '-W', '5', to]);
  const first = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/m.exec(out);
  if (!first) return null;
  // Requests go out every 200 ms from seq 1: the reply to seq k arrived (k − 1) × 200 ms + rtt after the first request.
  return Math.round((Number(first[2]) - 1) * 200 + Number(first[3]));
}

/** Kernel drop counters in the gateways' namespaces: every link's rx/tx dropped and the raw sockets' drops. */
function kernelDrops(lab: FaultLab): Record<string, number> {
  const out: Record<string, number> = {};
  for (const node of ['sgw0', 'sgw1', 'h1'] as const) {
    for (const l of JSON.parse(lab.ip(node, '-s', '-j', 'link', 'show')) as {
      ifname: string;
      stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } };
    }[]) {
      const rx = l.stats64?.rx?.dropped ?? 0;
      const tx = l.stats64?.tx?.dropped ?? 0;
      if (rx) out[`${node} ${l.ifname} rx_dropped`] = rx;
      if (tx) out[`${node} ${l.ifname} tx_dropped`] = tx;
    }
    const raw = lab
      .exec(node, 'cat', ['/proc/net/raw'])
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.trim().split(/\s+/).at(-1)));
    const rawDrops = raw.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    if (rawDrops) out[`${node} raw socket drops`] = rawDrops;
    const snmp = lab
      .exec(node, 'cat', ['/proc/net/snmp'])
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    if (snmp.length === 2) {
      const [names, values] = snmp.map((l) => l.split(/\s+/).slice(1));
      for (const k of ['RcvbufErrors', 'SndbufErrors']) {
        const v = Number(values[names.indexOf(k)]);
        if (v) out[`${node} udp ${k}`] = v;
      }
    }
  }
  return out;
}

function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) d[k] = v - (before[k] ?? 0);
  return d;
}

function rssMb(lab: FaultLab): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of ['sgw0', 'sgw1'] as Daemon[]) {
    const s = lab.status(name).status as unknown as { process: { rssBytes: number } };
    out[name] = Math.round(s.process.rssBytes / 1e5) / 10;
  }
  return out;
}

export interface OverloadOptions {
  seconds?: number;
  /** Flood packets per second (half plain, half SKIP with fresh keys). */
  floodPps?: number;
  progress?: (line: string) => void;
}

export async function runOverload(o: OverloadOptions = {}): Promise<OverloadReport> {
  const say = o.progress ?? (() => undefined);
  const seconds = o.seconds ?? 10;
  const floodPps = o.floodPps ?? 5000;
  const lab = new FaultLab();
  const failures: string[] = [];
  try {
    lab.build();
    lab.writeConfigs();
    for (const name of ['sgw0', 'sgw1', 'ha'] as const) await lab.start(name);
    const server = lab.spawnIn('h1', 'iperf3', ['-s']);
    writeFileSync(join(lab.dir, 'flood.bin'), floodPackets());
    writeFileSync(join(lab.dir, 'flood.py'), FLOOD_PY);
    // Registrations to the HA all the time, from the home link (mn): a plain registrar across sgw0 cannot work —
    // the home SGW takes the reply's destination for an SMN's care-of and holds the reply for End-End keys with it.
    const spec = { ha: '10.0.0.2', mode: 'storm', count: 10_000_000, careOfBase: '10.1.0.100', nodes: MN_HOMES };
    const reg = lab.spawnIn('mn', process.execPath, [REGISTRAR, JSON.stringify(spec)]);
    const acks: number[] = [];
    reg.child.stdout!.on('data', (c: Buffer) => {
      const n = c.toString().match(/^ack \d+$/gm)?.length ?? 0;
      for (let i = 0; i < n; i++) acks.push(Date.now());
    });
    const perSecond = (from: number, to: number) =>
      Math.round((acks.filter((t) => t >= from && t < to).length / ((to - from) / 1000)) * 10) / 10;

    // Idle: status latency, registrations, and a new key (sgw3's first packets to h1).
    say('overload: idle figures …');
    await sleep(1500);
    const idleFrom = Date.now();
    let sampler = statusSampler(lab);
    await lab.start('sgw3');
    const idleNewKey = await firstReplyMs(lab, 'h0', '10.1.0.10');
    await sleep(1500);
    const idle = {
      status: await sampler.stop(),
      registrationsPerS: perSecond(idleFrom, Date.now()),
      newKeyFirstReplyMs: idleNewKey,
    };
    const rssMbBefore = rssMb(lab);

    // The carry rate: offered 10, 20, 40, … Mbit/s (2 s each) while ≤ 5 % is lost; the most received is what the
    // pair carries. Then 1 Gbit/s offered, to see what is left of it far past the knee.
    say('overload: carry rate (UDP sweep) …');
    const sweep: UdpFigures[] = [];
    for (let rate = 10; rate <= 1280; rate *= 2) {
      const r = await udp(lab, `${rate}M`, 2);
      sweep.push(r);
      say(
        `  offered ${r.offeredMbps.toFixed(1)} Mbit/s: received ${r.receivedMbps.toFixed(1)}, lost ` +
          `${r.lostPct.toFixed(1)} %`,
      );
      if (r.lostPct > 5) break;
    }
    const carried = sweep.filter((r) => r.lostPct <= 5);
    const best = (carried.length ? carried : sweep).reduce((a, b) => (b.receivedMbps > a.receivedMbps ? b : a));
    const carry = {
      offeredMbps: best.offeredMbps,
      receivedMbps: best.receivedMbps,
      lostPct: best.lostPct,
      sweep: sweep.map((r) => ({ offeredMbps: r.offeredMbps, receivedMbps: r.receivedMbps, lostPct: r.lostPct })),
    };
    await sleep(1000);
    const far = await udp(lab, '1G', 2);
    const farPastKnee = { offeredMbps: far.offeredMbps, receivedMbps: far.receivedMbps, lostPct: far.lostPct };
    say(
      `  offered ${far.offeredMbps.toFixed(1)} Mbit/s: received ${far.receivedMbps.toFixed(1)}, lost ` +
        `${far.lostPct.toFixed(1)} %`,
    );
    await sleep(2000);
    const twice = `${Math.max(1, Math.round(2 * carry.receivedMbps))}M`;
    say(
      `overload: carries ${carry.receivedMbps.toFixed(1)} Mbit/s; offering ${twice} + ${floodPps} flood packets/s ` +
        `from ${FLOOD_SOURCES} spoofed sources for ${seconds} s …`,
    );

    // The load.
    await sleep(1000);
    const countersBefore = lab.counters();
    const kernelBefore = kernelDrops(lab);
    const loadFrom = Date.now();
    sampler = statusSampler(lab);
    const flood = lab.spawnIn('x', 'python3', [
      join(lab.dir, 'flood.py'),
      join(lab.dir, 'flood.bin'),
      String(floodPps),
      String(seconds),
    ]);
    const udpLoad = udp(lab, twice, seconds);
    await sleep((seconds * 1000) / 2);
    await lab.stop('sgw3', 'SIGTERM');
    await lab.start('sgw3');
    const loadNewKey = await firstReplyMs(lab, 'h0', '10.1.0.10');
    const udpDuring = await udpLoad;
    await flood.exited;
    const loadTo = Date.now();
    const loadStatus = await sampler.stop();
    const floodLine = /sent (\d+) refused (\d+) seconds ([\d.]+)/.exec(flood.out());
    const load = {
      seconds,
      status: loadStatus,
      registrationsPerS: perSecond(loadFrom, loadTo),
      udp: udpDuring,
      flood: {
        sources: FLOOD_SOURCES,
        sent: Number(floodLine?.[1] ?? 0),
        refused: Number(floodLine?.[2] ?? 0),
        pps: floodLine ? Math.round(Number(floodLine[1]) / Number(floodLine[3])) : 0,
      },
      newKeyFirstReplyMs: loadNewKey,
      counters: grown(countersBefore, lab.counters()),
      kernelDrops: grown(kernelBefore, kernelDrops(lab)),
    };

    // Recovery: the same probes once the load is gone.
    say('overload: recovery …');
    await sleep(2000);
    const afterFrom = Date.now();
    sampler = statusSampler(lab);
    const udpAfter = await recoveredUdp(lab, `${Math.max(1, Math.round(carry.receivedMbps / 2))}M`);
    const pingOut = await lab.execAsync('mn', 'ping', ['-q', '-c', '50', '-i', '0.02', '-W', '1', '10.1.0.10']);
    const afterStatus = await sampler.stop();
    const after = {
      status: afterStatus,
      registrationsPerS: perSecond(afterFrom, Date.now()),
      udp: udpAfter,
      pingLost: /\d+ packets transmitted, \d+ received[^\n]*/.exec(pingOut)?.[0] ?? pingOut.slice(0, 100),
      rssMb: rssMb(lab),
    };
    reg.child.kill('SIGKILL');
    server.child.kill('SIGKILL');

    for (const name of ['sgw0', 'sgw1'] as const) {
      const s = load.status[name];
      if (s.failed > 0) failures.push(`${name}: ${s.failed} status requests unanswered under load`);
      if (s.maxMs === null || s.maxMs > 100)
        failures.push(`${name}: status took up to ${s.maxMs} ms under load (target ≤ 100 ms)`);
    }
    if (load.newKeyFirstReplyMs === null)
      failures.push('under load, h0 behind a freshly restarted sgw3 got no reply from h1 (new keys did not install)');
    if (load.registrationsPerS === 0) failures.push('no registration was accepted under load');
    if (after.udp.gatewayLostPct > 2)
      failures.push(
        `after the load, UDP at half the carry rate lost ${after.udp.gatewayLostPct.toFixed(1)} % in the gateways ` +
          `(${after.udp.attempts.length} attempts)`,
      );
    if (!/ 0% packet loss/.test(after.pingLost)) failures.push(`after the load, ping: ${after.pingLost}`);
    // After the load, the 95th percentile: on a loaded shared machine even an idle daemon's slowest answer can pass
    // 100 ms (the idle figures show it).
    for (const name of ['sgw0', 'sgw1'] as const) {
      const s = after.status[name];
      if (s.failed > 0 || s.p95Ms === null || s.p95Ms > 100)
        failures.push(`${name}: after the load, status p95 ${s.p95Ms} ms, ${s.failed} unanswered`);
    }
    if (after.registrationsPerS < idle.registrationsPerS / 2)
      failures.push(`registrations after the load ${after.registrationsPerS}/s, idle ${idle.registrationsPerS}/s`);
    return { carry, farPastKnee, idle, load, after, rssMbBefore, pass: failures.length === 0, failures };
  } finally {
    lab.close();
  }
}

const lat = (l: Latency) =>
  `median ${l.medianMs ?? '—'} ms, p95 ${l.p95Ms ?? '—'} ms, ` +
  `max ${l.maxMs ?? '—'} ms (${l.samples} answers${l.failed ? `, ${l.failed} UNANSWERED` : ''})`;

export function formatOverload(r: OverloadReport): string[] {
  const sweepText = r.carry.sweep.map((x) => `${x.offeredMbps.toFixed(0)}→${x.receivedMbps.toFixed(1)}`).join(', ');
  const lines = [
    `carry rate (UDP mn → sgw0 → sgw1 → h1, 1200-byte datagrams; sweep ${sweepText} Mbit/s): ` +
      `${r.carry.receivedMbps.toFixed(1)} Mbit/s received at ${r.carry.offeredMbps.toFixed(0)} offered ` +
      `(${r.carry.lostPct.toFixed(1)} % lost)`,
    `far past the knee: offered ${r.farPastKnee.offeredMbps.toFixed(0)} Mbit/s, received ` +
      `${r.farPastKnee.receivedMbps.toFixed(1)} (${r.farPastKnee.lostPct.toFixed(1)} % lost)`,
  ];
  for (const [label, p] of [
    ['idle', r.idle],
    ['under load', r.load],
    ['after', r.after],
  ] as const) {
    lines.push(`${label}:`);
    lines.push(`  status sgw0: ${lat(p.status.sgw0)}`);
    lines.push(`  status sgw1: ${lat(p.status.sgw1)}`);
    lines.push(`  registrations accepted: ${p.registrationsPerS}/s`);
    if ('newKeyFirstReplyMs' in p)
      lines.push(
        `  new keys (sgw3 restarted, h0 → h1): first reply ` +
          `${p.newKeyFirstReplyMs ?? 'NEVER'} ms after the first request`,
      );
  }
  const l = r.load;
  lines.push(
    `load: UDP offered ${l.udp.offeredMbps.toFixed(1)} Mbit/s, received ${l.udp.receivedMbps.toFixed(1)}, lost ` +
      `${l.udp.lostPct.toFixed(1)} % (${l.udp.lostPackets} datagrams); flood ${l.flood.sent} packets ` +
      `(${l.flood.pps}/s) from ${l.flood.sources} sources`,
  );
  lines.push(
    `  counted by the gateways: ${
      Object.entries(l.counters)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'nothing'
    }`,
  );
  lines.push(
    `  kernel drops (nobody's reason): ${
      Object.entries(l.kernelDrops)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    }`,
  );
  lines.push(
    `after: UDP at half the carry rate: ${r.after.udp.receivedMbps.toFixed(1)} of ` +
      `${r.after.udp.offeredMbps.toFixed(1)} Mbit/s, ` +
      `lost ${r.after.udp.lostPct.toFixed(1)} % (h1's own socket dropped ${r.after.udp.receiverDrops}: ` +
      `${r.after.udp.gatewayLostPct.toFixed(1)} % in the gateways; attempt ${r.after.udp.attempts.length} of up to ` +
      `3); ping: ${r.after.pingLost}`,
  );
  lines.push(
    `RSS MB before → after: ${Object.keys(r.rssMbBefore)
      .map((k) => `${k} ${r.rssMbBefore[k]} → ${r.after.rssMb[k]}`)
      .join(', ')}`,
  );
  for (const f of r.failures) lines.push(`✗ ${f}`);
  lines.push(r.pass ? 'PASS' : 'FAIL');
  return lines;
}

const HELP = `usage: mipsec bench overload [--seconds S] [--flood-pps N] [--json]

(root) Two \`mipsec sgw\` daemons (and a HA, and a nested SGW) in namespaces: finds the rate they carry (UDP
iperf3 offered 1 Gbit/s), then offers twice that plus a flood of plain and fresh-key SKIP packets from
${FLOOD_SOURCES} spoofed sources for S seconds (default 10), while status is asked every 100 ms, registrations
run (home link) and a restarted nested SGW needs new keys; then checks recovery.

Exit status: 0 when status answered within 100 ms under load, new keys and registrations went through and
the gateways recovered; 1 otherwise; 2 on a usage error.`;

export async function runOverloadCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: 'string' },
        'flood-pps': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`mipsec bench overload: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const seconds = values.seconds === undefined ? 10 : Number(values.seconds);
  const floodPps = values['flood-pps'] === undefined ? 5000 : Number(values['flood-pps']);
  if (!Number.isInteger(seconds) || seconds < 4 || seconds > 600) {
    console.error('mipsec bench overload: --seconds must be an integer 4..600');
    return 2;
  }
  if (!Number.isInteger(floodPps) || floodPps < 0 || floodPps > 1_000_000) {
    console.error('mipsec bench overload: --flood-pps must be an integer 0..1000000');
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('mipsec bench overload: needs root (network namespaces)');
    return 2;
  }
  try {
    execFileSync('sh', ['-c', 'command -v iperf3 && command -v python3 && command -v ping'], { stdio: 'ignore' });
  } catch {
    console.error(
      'mipsec bench overload: needs iperf3, python3 and ping (apt-get install iperf3 python3 iputils-ping)',
    );
    return 2;
  }
  const json = values.json === true;
  const say = json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);
  const report = await runOverload({ seconds, floodPps, progress: say });
  if (json) console.log(JSON.stringify(report, null, 2));
  else for (const line of formatOverload(report)) say(line);
  return report.pass ? 0 : 1;
}
