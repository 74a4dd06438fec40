// `mipsec lab --suites`: every ESP suite, Next-hop MAC, AH coverage and transport on the wire, through the fault lab's
// chain of three real `mipsec sgw` daemons (src/lab/faults.ts: h0 — sgw3 — sgw0 — Internet — sgw1 — h1). For each
// combination the SGWs are started with it, h0 pings h1 and sends it 2 MB over TCP, and the first packets on the
// Internet link are captured and read back with tshark and the project's SKIP dissector (wireshark/mipsec-skip.lua):
// every packet between the gateways is SKIP (inside UDP on the udp transport), its headers name the configured suite
// and MAC, and nothing of h0's and h1's own traffic crosses the Internet in clear.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkipAlg, type EspSuite, type MacAlg } from '../engine/types.js';
import { FaultLab, type SgwKnobs } from './faults.js';

const DISSECTOR = fileURLToPath(new URL('../../wireshark/mipsec-skip.lua', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const ESP_SUITES: readonly EspSuite[] = ['aes128gcm', 'aes256gcm', 'chacha20poly1305'];
export const NEXT_HOP_MACS: readonly MacAlg[] = ['gmac-aes128', 'hmac-sha256-128'];
export const COVERAGES = ['full', 'headers'] as const;
export const TRANSPORTS = ['raw', 'udp'] as const;

export interface SuiteCombo {
  esp: EspSuite;
  nextHopMac: MacAlg;
  coverage: (typeof COVERAGES)[number];
  transport: (typeof TRANSPORTS)[number];
}

export const comboId = (c: SuiteCombo) => `${c.esp}-${c.nextHopMac}-${c.coverage}-${c.transport}`;

/** Every combination (24). */
export function allCombos(): SuiteCombo[] {
  return ESP_SUITES.flatMap((esp) =>
    NEXT_HOP_MACS.flatMap((nextHopMac) =>
      COVERAGES.flatMap((coverage) => TRANSPORTS.map((transport) => ({ esp, nextHopMac, coverage, transport }))),
    ),
  );
}

/** Three combinations in which every suite, MAC, coverage and transport appears at least once. */
export function coveringCombos(): SuiteCombo[] {
  return [
    { esp: 'aes128gcm', nextHopMac: 'gmac-aes128', coverage: 'full', transport: 'raw' },
    { esp: 'aes256gcm', nextHopMac: 'hmac-sha256-128', coverage: 'headers', transport: 'udp' },
    { esp: 'chacha20poly1305', nextHopMac: 'hmac-sha256-128', coverage: 'full', transport: 'udp' },
  ];
}

export interface SuiteResult {
  id: string;
  combo: SuiteCombo;
  pass: boolean;
  failures: string[];
  ping: { sent: number; received: number };
  tcp: { completed: boolean; mbps: number | null };
  /** The capture on the Internet link, as tshark with the SKIP dissector reads it. */
  wire: { packets: number; stacks: Record<string, number>; cryptAlgs: number[]; macAlgs: number[]; clear: number };
  pcap?: string;
  durationMs: number;
}

/** tshark's reading of a capture: frame.protocols, the SKIP headers' Crypt and MAC algorithms, IP addresses. */
function readCapture(
  lab: FaultLab,
  file: string,
): { stacks: string[]; crypt: number[][]; mac: number[][]; src: string[][] } {
  const out = lab.exec('inet', 'tshark', [
    '-X',
    `lua_script:${DISSECTOR}`,
    '-r',
    file,
    '-T',
    'fields',
    '-e',
    'frame.protocols',
    '-e',
    'skip.crypt_alg',
    '-e',
    'skip.mac_alg',
    '-e',
    'ip.src',
  ]);
  const rows = out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
  const nums = (f: string | undefined) => (f ? f.split(',').filter(Boolean).map(Number) : []);
  return {
    stacks: rows.map((r) => r[0]),
    crypt: rows.map((r) => nums(r[1])),
    mac: rows.map((r) => nums(r[2])),
    src: rows.map((r) => (r[3] ?? '').split(',')),
  };
}

async function runCombo(lab: FaultLab, combo: SuiteCombo, pcapDir: string | undefined): Promise<SuiteResult> {
  const t0 = Date.now();
  const id = comboId(combo);
  const failures: string[] = [];
  lab.writeSgwConfigs(combo as SgwKnobs);
  for (const name of ['sgw0', 'sgw1', 'sgw3'] as const) await lab.start(name);
  const file = join(lab.dir, `${id}.pcap`);
  // The first 600 packets between the gateways (certificate discovery on 1640 and ARP aside): all of the pings,
  // the TCP stream's handshake and first few hundred segments.
  // dumpcap (tshark's capture engine, which the lab installs anyway): classic pcap (-P), 32 MiB buffer like the lab's.
  const capture = lab.spawnIn('inet', 'dumpcap', [
    '-q',
    '-P',
    '-B',
    '32',
    '-i',
    'br0',
    '-c',
    '600',
    '-w',
    file,
    '-f',
    'ip and not udp port 1640',
  ]);
  await sleep(800);
  // Certificates and first keys before the judged pings: up to 10 s for one reply (-w), which a loaded machine needs
  // when three daemons start at once; a combination that never answers fails below all the same.
  await lab.execAsync('h0', 'ping', ['-c', '1', '-w', '10', '10.1.0.10']);
  const pingOut = await lab.execAsync('h0', 'ping', ['-c', '5', '-i', '0.2', '-W', '3', '10.1.0.10']);
  const m = /(\d+) packets transmitted, (\d+) received/.exec(pingOut);
  const ping = { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
  const tcpOut = await lab.execAsync('h0', 'iperf3', [
    '-c',
    '10.1.0.10',
    '-n',
    '2M',
    '-J',
    '--connect-timeout',
    '5000',
  ]);
  let tcp: SuiteResult['tcp'] = { completed: false, mbps: null };
  try {
    const j = JSON.parse(tcpOut.slice(tcpOut.indexOf('{'))) as {
      end?: { sum_received?: { bits_per_second: number } };
      error?: string;
    };
    tcp = {
      completed: !j.error && j.end?.sum_received !== undefined,
      mbps: j.end?.sum_received ? j.end.sum_received.bits_per_second / 1e6 : null,
    };
    if (j.error) failures.push(`TCP: ${j.error}`);
  } catch {
    failures.push(`TCP: iperf3 said ${tcpOut.slice(0, 200)}`);
  }
  await sleep(300);
  capture.child.kill('SIGINT');
  await capture.exited;
  for (const name of ['sgw3', 'sgw0', 'sgw1'] as const) await lab.stop(name, 'SIGTERM');

  const read = readCapture(lab, file);
  const stacks: Record<string, number> = {};
  for (const s of read.stacks) stacks[s] = (stacks[s] ?? 0) + 1;
  const cryptAlgs = [...new Set(read.crypt.flat().filter((a) => a !== 0))].sort();
  const macAlgs = [...new Set(read.mac.flat().filter((a) => a !== 0))].sort();
  // In clear: a packet from h0 or h1 whose stack has no SKIP layer.
  const clear = read.stacks.filter(
    (s, i) => !s.includes('skip') && read.src[i].some((a) => a === '10.0.1.10' || a === '10.1.0.10'),
  ).length;
  const wire = { packets: read.stacks.length, stacks, cryptAlgs, macAlgs, clear };

  if (ping.received < ping.sent - 1 || ping.received === 0)
    failures.push(`ping: ${ping.received} of ${ping.sent} answered`);
  if (!tcp.completed) failures.push('TCP: the 2 MB transfer did not complete');
  if (read.stacks.length < 50) failures.push(`only ${read.stacks.length} packets captured on the Internet link`);
  const notSkip = read.stacks.filter((s) => !s.includes('skip'));
  if (notSkip.length)
    failures.push(
      `${notSkip.length} packets between the gateways without a SKIP header (${[...new Set(notSkip)].join(', ')})`,
    );
  const wantUdp = combo.transport === 'udp';
  const wrongTransport = read.stacks.filter(
    (s) => s.includes('skip') && s.startsWith('eth:ethertype:ip:udp') !== wantUdp,
  );
  if (wrongTransport.length)
    failures.push(`${wrongTransport.length} SKIP packets not on the ${combo.transport} transport`);
  if (cryptAlgs.join() !== String(SkipAlg.crypt[combo.esp]))
    failures.push(
      `SKIP Crypt Alg on the wire ${cryptAlgs.join(', ') || 'none'}, configured ` +
        `${combo.esp} (${SkipAlg.crypt[combo.esp]})`,
    );
  if (macAlgs.join() !== String(SkipAlg.mac[combo.nextHopMac]))
    failures.push(
      `SKIP MAC Alg on the wire ${macAlgs.join(', ') || 'none'}, configured ` +
        `${combo.nextHopMac} (${SkipAlg.mac[combo.nextHopMac]})`,
    );
  if (clear) failures.push(`${clear} packets of h0's or h1's own traffic crossed the Internet in clear`);
  let kept: string | undefined;
  if (pcapDir) {
    mkdirSync(join(pcapDir, id), { recursive: true });
    kept = join(pcapDir, id, 'internet.pcap');
    copyFileSync(file, kept);
  }
  return { id, combo, pass: failures.length === 0, failures, ping, tcp, wire, pcap: kept, durationMs: Date.now() - t0 };
}

export interface SuitesOptions {
  combos?: SuiteCombo[];
  /** Keep DIR/<combination>/internet.pcap (the first 600 packets on the Internet link). */
  pcapDir?: string;
  progress?: (line: string) => void;
}

export async function runSuites(o: SuitesOptions = {}): Promise<{ suites: SuiteResult[] }> {
  const lab = new FaultLab();
  const suites: SuiteResult[] = [];
  try {
    lab.build();
    lab.writeConfigs();
    const server = lab.spawnIn('h1', 'iperf3', ['-s']);
    try {
      for (const combo of o.combos ?? allCombos()) {
        o.progress?.(`suite ${comboId(combo)} …`);
        const r = await runCombo(lab, combo, o.pcapDir);
        suites.push(r);
        o.progress?.(formatSuite(r).join('\n'));
      }
    } finally {
      server.child.kill('SIGKILL');
    }
  } finally {
    lab.close();
  }
  return { suites };
}

export function formatSuite(r: SuiteResult): string[] {
  const lines = [`${r.pass ? 'PASS' : 'FAIL'} ${r.id} (${(r.durationMs / 1000).toFixed(1)} s)`];
  lines.push(
    `      ping ${r.ping.received}/${r.ping.sent}; ` +
      `TCP 2 MB ${r.tcp.completed ? `${r.tcp.mbps?.toFixed(1)} Mbit/s` : 'FAILED'}; ` +
      `${r.wire.packets} packets on the Internet link, Crypt Alg ${r.wire.cryptAlgs.join(',') || '—'}, ` +
      `MAC Alg ${r.wire.macAlgs.join(',') || '—'}, ${r.wire.clear} in clear`,
  );
  for (const [stack, n] of Object.entries(r.wire.stacks)) lines.push(`      ${n} × ${stack}`);
  if (r.pcap) lines.push(`      kept ${r.pcap}`);
  for (const f of r.failures) lines.push(`      ✗ ${f}`);
  return lines;
}
