// mipsec bench e2e: the harness on the veth path for real (root, iproute2, iperf3, ping — as in CI),
// plus the pieces that need no namespaces: /proc parsing, medians, ratios, order, arguments, SVG.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listNamespaces, NetnsSession, randomSuffix, runCommand } from '../../src/net/netns.js';
import { roundOrder, runE2e } from '../../src/bench/e2e/index.js';
import { processTicks, softirqTicks, udpCounts } from '../../src/bench/e2e/measure.js';
import { PATH_NAMES } from '../../src/bench/e2e/paths.js';
import { relayCosts, relayCpuPerPacket } from '../../src/bench/e2e/chain.js';
import { FIRST_PACKET_SAMPLES } from '../../src/bench/e2e/sgwd.js';
import { median } from '../../src/bench/median.js';
import { formatSvg, formatTables, ratios, type PathResult } from '../../src/bench/e2e/report.js';
import { establishedPacketDelays, firstPacketDelays, firstPacketSendDelays } from '../../src/bench/e2e/sgwd.js';
import type { Topology } from '../../src/bench/e2e/topology.js';

const ROW_KEYS = ['cpu_s_per_gbit', 'path', 'tcp_gbps', 'udp_pps', 'version'];

async function ourNamespaces(): Promise<string[]> {
  return (await listNamespaces()).filter((n) => n.startsWith('mb-'));
}

describe('bench e2e on the veth path (real namespaces)', () => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-test-'));
  afterEach(() => vi.restoreAllMocks());

  it('prints exactly {rows: [...]} with --json, writes JSON + SVG, and leaves no namespace behind', async () => {
    const before = new Set(await ourNamespaces());
    const printed: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    const code = await runE2e([
      '--paths',
      'veth',
      '--runs',
      '1',
      '--seconds',
      '1',
      '--chain',
      'off',
      '--json',
      '--out',
      outDir,
    ]);
    expect(code).toBe(0);

    expect(printed).toHaveLength(1);
    const out = JSON.parse(printed[0]);
    expect(Object.keys(out)).toEqual(['rows']);
    expect(out.rows).toHaveLength(1);
    const row = out.rows[0];
    expect(Object.keys(row).sort()).toEqual(ROW_KEYS);
    expect(row.path).toBe('veth');
    expect(row.version).toMatch(/^Linux \S+/);
    expect(row.tcp_gbps).toBeGreaterThan(0.05);
    expect(row.udp_pps).toBeGreaterThan(1000);
    expect(row.cpu_s_per_gbit).toBeGreaterThanOrEqual(0);

    const files = fs.readdirSync(outDir).sort();
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(files.filter((f) => f.endsWith('.svg'))).toHaveLength(1);
    const written = JSON.parse(fs.readFileSync(path.join(outDir, files.find((f) => f.endsWith('.json'))!), 'utf8'));
    expect(written.rows).toEqual(out.rows);
    expect(written.paths[0].runs).toHaveLength(1);
    expect(written.meta.seconds_per_run).toBe(1);
    const svg = fs.readFileSync(path.join(outDir, files.find((f) => f.endsWith('.svg'))!), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<rect /g)?.length).toBe(1 + 3); // background + one bar per panel

    const leftovers = (await ourNamespaces()).filter((n) => !before.has(n));
    expect(leftovers).toEqual([]);
  }, 120_000);

  it('refuses bad arguments with exit code 2 and names the flag', async () => {
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((text: string) => void errors.push(text));
    expect(await runE2e(['--paths', 'veth,bogus'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--paths: unknown path 'bogus'/);
    expect(await runE2e(['--runs', '0'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--runs must be an integer/);
    expect(await runE2e(['--seconds', '1.5'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--seconds must be an integer/);
    expect(await runE2e(['--paths', 'veth,veth'])).toBe(2);
    expect(await runE2e(['--chain', '1,5'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--chain: '5' is not a relay count in 1\.\.4/);
    expect(await runE2e(['--transport', 'tcp'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--transport must be udp or raw, got 'tcp'/);
    expect(await runE2e(['--relay-coverage', 'some'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--relay-coverage must be headers or full/);
    expect(await runE2e(['--poll-us=-1'])).toBe(2);
    expect(errors.join('\n')).toMatch(/--poll-us must be an integer in 0\.\.100000/);
  });
});

// The mipsec paths run the built gateway process (dist/, made by npm ci / npm run build), so this runs the CLI.
const cli = fileURLToPath(new URL('../../bin/mipsec.js', import.meta.url));
const built = fs.existsSync(fileURLToPath(new URL('../../dist/bench/e2e/gateway.js', import.meta.url)));

describe.skipIf(!built)('bench e2e through mipsec (built CLI, real namespaces)', () => {
  it('mipsec-skip over the UDP transport and a chain through one relaying SGW carry TCP; the JSON says how it ran', async () => {
    const before = new Set(await ourNamespaces());
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-mipsec-'));
    const { stdout } = await runCommand(
      process.execPath,
      [
        cli,
        'bench',
        'e2e',
        '--paths',
        'mipsec-skip',
        '--runs',
        '1',
        '--seconds',
        '1',
        '--chain',
        '1',
        '--json',
        '--out',
        outDir,
      ],
      { timeoutMs: 150_000 },
    );
    const { rows } = JSON.parse(stdout);
    expect(rows).toHaveLength(1);
    expect(rows[0].path).toBe('mipsec-skip');
    expect(rows[0].version).toMatch(/native, OpenSSL .*UDP transport, port 4741/);
    expect(rows[0].tcp_gbps).toBeGreaterThan(0.05);
    const written = JSON.parse(
      fs.readFileSync(path.join(outDir, fs.readdirSync(outDir).find((f) => f.endsWith('.json'))!), 'utf8'),
    );
    expect(written.meta).toMatchObject({ mipsec_transport: 'udp', mipsec_poll_us: 1000 });
    expect(written.chain.setup).toMatch(/covering headers only .*UDP transport/);
    const relayed = written.chain.rows.find((r: { relays: unknown }) => r.relays === 1);
    expect(relayed.error).toBeUndefined();
    expect(relayed.tcp_gbps).toBeGreaterThan(0.05);
    expect(relayed.rtt_us).toBeGreaterThan(0);
    // The relay's worker CPU per relayed packet, from its loop's cpuMicros: well under a millisecond, above zero.
    expect(relayed.relay_cpu_us).toBeGreaterThan(0.05);
    expect(relayed.relay_cpu_us).toBeLessThan(1000);
    expect((await ourNamespaces()).filter((n) => !before.has(n))).toEqual([]);
  }, 180_000);

  it('mipsec-sgwd: two real mipsec sgw daemons from CLI-made configs carry TCP, and a new SKIP key is timed at the receiver', async () => {
    const before = new Set(await ourNamespaces());
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-sgwd-'));
    const { stdout } = await runCommand(
      process.execPath,
      [
        cli,
        'bench',
        'e2e',
        '--paths',
        'mipsec-sgwd',
        '--runs',
        '1',
        '--seconds',
        '1',
        '--chain',
        'off',
        '--json',
        '--out',
        outDir,
      ],
      { timeoutMs: 150_000 },
    );
    const { rows } = JSON.parse(stdout);
    expect(rows).toEqual([
      expect.objectContaining({ path: 'mipsec-sgwd', version: expect.stringMatching(/mipsec sgw daemons/) }),
    ]);
    expect(rows[0].error).toBeUndefined();
    expect(rows[0].tcp_gbps).toBeGreaterThan(0.01);
    expect(rows[0].first_packet_ms).toBeGreaterThan(0);
    expect(rows[0].first_packet_ms).toBeLessThan(100);
    expect(rows[0].first_packet_send_ms).toBeGreaterThan(0);
    expect(rows[0].first_packet_send_ms).toBeLessThan(100);
    expect(rows[0].established_packet_ms).toBeGreaterThan(0);
    expect(rows[0].established_packet_ms).toBeLessThan(100);
    // After the first key, gwA's every new key is a successor of it: gwB's engine keys it (docs/engine.md §4.3).
    expect(rows[0].first_packet_engine_keyed).toBeGreaterThanOrEqual(FIRST_PACKET_SAMPLES);
    // The daemons' loops counted the TCP run: established traffic stays native (issue 11: ≤ 0.1 % in JavaScript).
    expect(rows[0].tcp_slow_path_packets).toBeGreaterThanOrEqual(0);
    expect(rows[0].tcp_js_share).toBeLessThan(0.001);
    expect((await ourNamespaces()).filter((n) => !before.has(n))).toEqual([]);
  }, 180_000);
});

describe('first packet of a new key, from a capture at the receiving gateway', () => {
  it('pairs each SKIP arrival from gwA with the next echo request leaving inside, in time order', () => {
    const dev = { bToA: 'x-ba', bToServer: 'x-bs' } as Topology['dev'];
    const line = (t: number, d: string, proto: number, src: string) => `${t}\t${d}\t${proto}\t${src}`;
    const capture = [
      'Capturing on x-ba and x-bs',
      line(10.0, 'x-ba', 57, '198.18.2.1'),
      line(10.01, 'x-ba', 57, '198.18.2.2'),
      line(10.1, 'x-ba', 57, '198.18.2.1'),
      // tshark writes one interface's packets late: order comes from the timestamps.
      line(10.002, 'x-bs', 1, '198.18.1.1'),
      line(10.1015, 'x-bs', 1, '198.18.1.1'),
      line(10.2, 'x-ba', 57, '198.18.2.1'),
      '5 packets captured',
    ].join('\n');
    expect(firstPacketDelays(capture, { dev }).map((d) => Math.round(d * 10) / 10)).toEqual([2, 1.5]);
  });

  it('at the sender: pairs each echo request from the client with the next packet gwA seals to gwB', () => {
    const dev = { aToClient: 'x-ac', aToB: 'x-ab' } as Topology['dev'];
    const line = (t: number, d: string, proto: number, src: string) => `${t}\t${d}\t${proto}\t${src}`;
    const capture = [
      line(10.0, 'x-ac', 1, '198.18.1.1'),
      line(10.0005, 'x-ab', 17, '198.18.2.2'), // gwB's packet on the same link: not gwA's
      line(10.003, 'x-ab', 17, '198.18.2.1'),
      line(10.004, 'x-ab', 17, '198.18.2.1'),
      line(10.1, 'x-ac', 1, '198.18.1.1'),
      line(10.1012, 'x-ab', 57, '198.18.2.1'),
    ].join('\n');
    expect(firstPacketSendDelays(capture, { dev }).map((d) => Math.round(d * 10) / 10)).toEqual([3, 1.2]);
    // A stalled gateway: two arrive before the first leaves; only the first pairs, and a loss shifts nothing after it.
    const stalled = [
      line(20, 'x-ac', 1, '198.18.1.1'),
      line(20.1, 'x-ac', 1, '198.18.1.1'),
      line(20.15, 'x-ab', 17, '198.18.2.1'),
      line(20.16, 'x-ab', 17, '198.18.2.1'),
      line(21, 'x-ac', 1, '198.18.1.1'),
      line(21.002, 'x-ab', 17, '198.18.2.1'),
    ];
    expect(firstPacketSendDelays(stalled.join('\n'), { dev }).map((d) => Math.round(d))).toEqual([150, 2]);
  });

  it('for a key in place: pairs each SKIP packet gwA receives from gwB with the next echo reply leaving inside', () => {
    const dev = { aToClient: 'x-ac', aToB: 'x-ab' } as Topology['dev'];
    const line = (t: number, d: string, proto: number, src: string) => `${t}\t${d}\t${proto}\t${src}`;
    const capture = [
      line(10.0, 'x-ac', 1, '198.18.1.1'), // the client's echo request: not a reply
      line(10.001, 'x-ab', 57, '198.18.2.1'), // gwA's own sealed request
      line(10.003, 'x-ab', 57, '198.18.2.2'),
      line(10.0031, 'x-ac', 1, '198.18.1.1'), // another request, not the reply
      line(10.0034, 'x-ac', 1, '198.18.3.2'),
      line(10.1, 'x-ab', 17, '198.18.2.2'),
      line(10.1002, 'x-ac', 1, '198.18.3.2'),
    ].join('\n');
    expect(establishedPacketDelays(capture, { dev }).map((d) => Math.round(d * 10) / 10)).toEqual([0.4, 0.2]);
  });
});

describe('NetnsSession', () => {
  it('removes its namespaces and stops its processes on close, and only touches its own namespaces', async () => {
    const session = new NetnsSession(`mb-t${randomSuffix()}`);
    const ns = await session.addNamespace('one');
    const sleeper = session.spawn(ns, 'sleep', 'sleep', ['300']);
    await expect(session.ip('mb-not-ours', ['link', 'show'])).rejects.toThrow(/was not created by session/);
    expect(await listNamespaces()).toContain(ns);
    let undone = false;
    session.onCleanup('flag', async () => {
      undone = true;
    });
    await session.close();
    expect(sleeper.running).toBe(false);
    expect(undone).toBe(true);
    expect(await listNamespaces()).not.toContain(ns);
    await expect(session.addNamespace('two')).rejects.toThrow(/is closed/);
  });

  it('rejects interface names Linux would refuse', async () => {
    const session = new NetnsSession(`mb-t${randomSuffix()}`);
    try {
      const a = await session.addNamespace('a');
      const b = await session.addNamespace('b');
      await expect(session.addVeth(a, 'x'.repeat(16), b, 'y')).rejects.toThrow(/1\.\.15 characters/);
      await session.addVeth(a, 'va', b, 'vb');
      expect((await session.links(b)).map((l) => l.ifname)).toContain('vb');
    } finally {
      await session.close();
    }
  });
});

describe('figures', () => {
  it('reads utime+stime after the last parenthesis of /proc/PID/stat', () => {
    const stat = '1234 (odd) name) S 1 1 1 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0 100 1000 10';
    expect(processTicks(stat)).toBe(42);
    expect(() => processTicks('garbage')).toThrow(/unreadable/);
  });

  it('reads the softirq column of the cpu line', () => {
    expect(softirqTicks('cpu  205126 0 30456 165678 2971 0 648 288 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n')).toBe(648);
    expect(() => softirqTicks('intr 1 2 3\n')).toThrow(/softirq/);
  });

  it('counts UDP datagrams received as packets − lost on the receiving side', () => {
    const report = {
      end: { sum_sent: { packets: 282458 }, sum_received: { packets: 282271, lost_packets: 100102, seconds: 3 } },
    };
    expect(udpCounts(report)).toEqual({ received: 182169, sent: 282458, seconds: 3 });
    expect(() => udpCounts({ end: { sum: { bytes: 1 } } })).toThrow(/lacks packets/);
  });

  it("reads the relays' CPU per packet from the gateway's loop-stats lines", () => {
    const line = (netns: string, cpuMicros: number, rxUdp: number, rxRaw = 0) =>
      `loop-stats ${JSON.stringify({ netns, stats: { cpuMicros, rxUdp, rxRaw } })}`;
    const output = [
      'ready',
      line('n0', 9_000_000, 5),
      line('n1', 900_000, 1_000_000),
      line('n2', 1_000_000, 999_000, 1_000),
      'n2: {…} engine drops/punts: none',
    ].join('\n');
    expect(relayCpuPerPacket(output, ['n1'])).toBeCloseTo(0.9, 9);
    expect(relayCpuPerPacket(output, ['n1', 'n2'])).toBeCloseTo(0.95, 9);
    expect(relayCpuPerPacket(output, [])).toBeNull();
    expect(relayCpuPerPacket(output, ['n1', 'n3']), 'a relay without its line').toBeNull();
    expect(relayCpuPerPacket('loop-stats {"netns":"n1","sta', ['n1']), 'a cut line').toBeNull();
  });

  it('takes medians of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow();
  });

  it('alternates the order of the paths between rounds', () => {
    expect(roundOrder(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c']);
    expect(roundOrder(['a', 'b', 'c'], 1)).toEqual(['c', 'b', 'a']);
    expect(roundOrder(['a', 'b', 'c'], 2)).toEqual(['a', 'b', 'c']);
  });

  it('gives ratios against veth and each peer, null where a path did not run', () => {
    const mk = (path: PathResult['path'], tcp: number | null): PathResult => ({
      path,
      mode: 'm',
      version: tcp == null ? null : '1',
      tcp_gbps: tcp,
      udp_pps: tcp == null ? null : tcp * 1000,
      cpu_s_per_gbit: tcp == null ? null : 1 / tcp,
      runs: [],
      ...(tcp == null ? { error: 'not installed' } : {}),
    });
    const results = [mk('veth', 10), mk('mipsec-spi', 2), mk('wireguard-go', 0.4), mk('openvpn', null)];
    const q = ratios(results[1], results);
    expect(q.tcp_gbps.veth).toBeCloseTo(0.2);
    expect(q.tcp_gbps['wireguard-go']).toBeCloseTo(5);
    expect(q.tcp_gbps.openvpn).toBeNull();
    expect(q.cpu_s_per_gbit['wireguard-go']).toBeCloseTo(0.2);
    const table = formatTables(results);
    expect(table).toMatch(/openvpn: not installed/);
    expect(table).toMatch(/mipsec-spi .* 2\.000 .* 0\.20×/);
    const svg = formatSvg(results, 'a <title> & more');
    expect(svg).toContain('a &lt;title&gt; &amp; more');
    expect(svg.match(/did not run/g)?.length).toBe(3);
  });

  it('gives the cost of one relay between consecutive relay counts and overall, ignoring the kernel row and failed rows', () => {
    const row = (relays: number | 'kernel', tcp: number | null, rtt: number | null) => ({
      relays,
      tcp_gbps: tcp,
      rtt_us: rtt,
      relay_cpu_us: null,
      runs: [],
    });
    const costs = relayCosts([
      row('kernel', 9, 50),
      row(0, 1, 100),
      row(1, 0.9, 140),
      row(2, null, null),
      row(4, 0.729, 260),
    ]);
    expect(costs.map((c) => [c.from, c.to])).toEqual([
      [0, 1],
      [1, 4],
      [0, 4],
    ]);
    expect(costs[0].throughput_loss).toBeCloseTo(0.1);
    expect(costs[0].rtt_us).toBeCloseTo(40);
    expect(costs[1].throughput_loss).toBeCloseTo(1 - Math.cbrt(0.81));
    expect(costs[1].rtt_us).toBeCloseTo(40);
    expect(costs[2].rtt_us).toBeCloseTo(40);
  });

  it('knows exactly its eight paths (the seven of issue 6 and the daemons of issue 11)', () => {
    expect([...PATH_NAMES].sort()).toEqual([
      'mipsec-sgwd',
      'mipsec-skip',
      'mipsec-spi',
      'mipsec-ts',
      'openvpn',
      'strongswan',
      'veth',
      'wireguard-go',
    ]);
  });
});
