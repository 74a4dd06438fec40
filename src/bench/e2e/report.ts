// Medians, ratios, the printed tables and the SVG bar chart of an e2e run.
import { median } from '../median.js';
import { PEER_NAMES, type PathName } from './paths.js';
import type { RunFigures } from './measure.js';
import type { ChainRow, RelayCost } from './chain.js';

/**
 * The `--json` row. Figures are medians; null when the path (or that figure) could not be measured, and `error` says
 * why.
 */
export interface E2eRow {
  path: PathName;
  version: string | null;
  tcp_gbps: number | null;
  udp_pps: number | null;
  cpu_s_per_gbit: number | null;
  /** Paths that key on the first packet (mipsec-sgwd): first packet of a new key to its delivery, ms (median). */
  first_packet_ms?: number | null;
  /** The same key at the sending gateway: the datagram's arrival to its first packet under the new key leaving, ms. */
  first_packet_send_ms?: number | null;
  /**
   * The same run's baseline for first_packet_ms: a packet under a key in place, arrival to delivery at the other
   * gateway, ms (median). The difference is what keying a new packet key costs.
   */
  established_packet_ms?: number | null;
  /**
   * Of the new keys the first-packet measurement opened at the receiving daemon, how many its engine keyed itself
   * (successor keys, docs/engine.md §4.3) rather than its control plane.
   */
  first_packet_engine_keyed?: number | null;
  /**
   * Paths with mipsec daemons (medians over the rounds): of the TCP run's packets, those the daemons' I/O loops punted
   * to JavaScript, and their share of all the loops handled (slow / (fast + slow)).
   */
  tcp_slow_path_packets?: number;
  tcp_js_share?: number;
  error?: string;
}

/** Everything known about one path, written to bench/results/<timestamp>.json. */
export interface PathResult extends E2eRow {
  mode: string;
  runs: RunFigures[];
}

export const METRICS = ['tcp_gbps', 'udp_pps', 'cpu_s_per_gbit'] as const;
export type Metric = (typeof METRICS)[number];

/** Fills the medians of a path that ran at least once. */
export function summarize(result: PathResult): void {
  if (result.runs.length === 0) return;
  result.tcp_gbps = median(result.runs.map((r) => r.tcp_gbps));
  const udp = result.runs.map((r) => r.udp_pps).filter((v): v is number => v !== null);
  result.udp_pps = udp.length ? median(udp) : null;
  const udpErrors = result.runs.map((r, i) => (r.udp_error ? `round ${i + 1}: ${r.udp_error}` : '')).filter(Boolean);
  if (udpErrors.length) {
    const note =
      `UDP failed in ${udpErrors.length} of ` +
      `${result.runs.length} runs${udp.length ? ' (median of the others)' : ''}: ${udpErrors[0]}`;
    result.error = result.error ? `${result.error}; ${note}` : note;
  }
  result.cpu_s_per_gbit = median(result.runs.map((r) => r.cpu_s_per_gbit));
}

/** ratio[metric][against] = this path's median / that path's median (null if either is missing). */
export type Ratios = Record<Metric, Partial<Record<PathName, number | null>>>;

export function ratios(row: E2eRow, rows: readonly E2eRow[]): Ratios {
  const against = ['veth' as PathName, ...PEER_NAMES].filter((p) => rows.some((r) => r.path === p));
  const out = {} as Ratios;
  for (const metric of METRICS) {
    out[metric] = {};
    for (const name of against) {
      const other = rows.find((r) => r.path === name)?.[metric];
      const own = row[metric];
      out[metric][name] = own != null && other != null && other > 0 ? own / other : null;
    }
  }
  return out;
}

export function jsonRows(results: readonly PathResult[]): E2eRow[] {
  return results.map((r) => {
    const row: E2eRow = {
      path: r.path,
      version: r.version,
      tcp_gbps: r.tcp_gbps,
      udp_pps: r.udp_pps,
      cpu_s_per_gbit: r.cpu_s_per_gbit,
    };
    if (r.first_packet_ms !== undefined) row.first_packet_ms = r.first_packet_ms;
    if (r.first_packet_send_ms !== undefined) row.first_packet_send_ms = r.first_packet_send_ms;
    if (r.established_packet_ms !== undefined) row.established_packet_ms = r.established_packet_ms;
    if (r.first_packet_engine_keyed !== undefined) row.first_packet_engine_keyed = r.first_packet_engine_keyed;
    const counted = r.runs.filter((run) => run.tcp_js_share !== undefined);
    if (counted.length > 0) {
      row.tcp_slow_path_packets = median(counted.map((run) => run.tcp_slow_path_packets ?? 0));
      row.tcp_js_share = median(counted.map((run) => run.tcp_js_share!));
    }
    if (r.error) row.error = r.error;
    return row;
  });
}

function fmt(value: number | null | undefined, digits: number): string {
  return value == null ? '—' : value.toFixed(digits);
}

function ratioText(value: number | null | undefined): string {
  return value == null ? '—' : `${value >= 10 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function renderTable(header: string[], body: string[][], rightAlignFrom: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const SHORT: Record<PathName, string> = {
  veth: 'veth',
  'mipsec-skip': 'skip',
  'mipsec-spi': 'spi',
  'mipsec-sgwd': 'sgwd',
  'mipsec-ts': 'ts',
  'wireguard-go': 'wg',
  openvpn: 'ovpn',
  strongswan: 'swan',
};

/** The main table (medians) and the ratio table (each figure against veth and each peer). */
export function formatTables(results: readonly PathResult[]): string {
  const rows = jsonRows(results);
  const main = renderTable(
    ['path', 'version', 'TCP Gbit/s', '× veth', 'UDP pps', 'CPU s/Gbit', 'runs'],
    results.map((r) => [
      r.path,
      r.version ?? '—',
      fmt(r.tcp_gbps, 3),
      ratioText(ratios(r, rows).tcp_gbps.veth),
      r.udp_pps == null ? '—' : Math.round(r.udp_pps).toString(),
      fmt(r.cpu_s_per_gbit, 2),
      String(r.runs.length),
    ]),
    2,
  );
  const against = (['veth', ...PEER_NAMES] as PathName[]).filter((p) => rows.some((r) => r.path === p));
  const ratioHeader = [
    'path',
    ...METRICS.flatMap((m) =>
      against.map((a) => `${m === 'tcp_gbps' ? 'TCP' : m === 'udp_pps' ? 'UDP' : 'CPU'}/${SHORT[a]}`),
    ),
  ];
  const ratioTable = renderTable(
    ratioHeader,
    results.map((r) => {
      const q = ratios(r, rows);
      return [r.path, ...METRICS.flatMap((m) => against.map((a) => ratioText(q[m][a])))];
    }),
    1,
  );
  const modes = results.map((r) => `  ${r.path}: ${r.mode}`).join('\n');
  const product = productLines(results);
  const errors = results.filter((r) => r.error).map((r) => `  ${r.path}: ${r.error}`);
  return [
    main,
    ...(against.length
      ? ['', 'Ratios of medians (TCP and UDP: higher is better; CPU s/Gbit: lower is better):', ratioTable]
      : []),
    ...(product.length
      ? ['', "The deployed daemons (mipsec-sgwd) against the benchmark's static gateway (mipsec-skip):", ...product]
      : []),
    '',
    'What runs on each path:',
    modes,
    ...(errors.length ? ['', 'Paths or figures that could not be measured:', ...errors] : []),
  ].join('\n');
}

/** mipsec-sgwd's TCP as a share of mipsec-skip's, and what a new packet key costs it. */
function productLines(results: readonly PathResult[]): string[] {
  const sgwd = results.find((r) => r.path === 'mipsec-sgwd');
  if (!sgwd) return [];
  const skip = results.find((r) => r.path === 'mipsec-skip')?.tcp_gbps;
  const lines = [];
  if (sgwd.tcp_gbps != null && skip != null && skip > 0)
    lines.push(
      `  TCP: ${ratioText(sgwd.tcp_gbps / skip)} mipsec-skip (${fmt(sgwd.tcp_gbps, 3)} vs ${fmt(skip, 3)} Gbit/s)`,
    );
  if (sgwd.first_packet_ms != null)
    lines.push(
      `  first packet of a new SKIP key, arrival at the receiving daemon to delivery inside: ` +
        `${sgwd.first_packet_ms.toFixed(3)} ms (median)`,
    );
  if (sgwd.first_packet_send_ms != null)
    lines.push(
      `  the same at the sending daemon, the datagram's arrival to its first sealed packet leaving: ` +
        `${sgwd.first_packet_send_ms.toFixed(3)} ms (median)`,
    );
  if (sgwd.first_packet_engine_keyed != null)
    lines.push(
      `  new keys the receiving daemon's engine keyed itself (successor keys): ${sgwd.first_packet_engine_keyed}`,
    );
  if (sgwd.established_packet_ms != null)
    lines.push(
      `  a packet under a key in place, arrival at a daemon to delivery inside (same run): ` +
        `${sgwd.established_packet_ms.toFixed(3)} ms (median)`,
    );
  return lines;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const PALETTE: Record<PathName, string> = {
  veth: '#9e9e9e',
  'mipsec-skip': '#1b5e20',
  'mipsec-spi': '#2e7d32',
  'mipsec-sgwd': '#43a047',
  'mipsec-ts': '#81c784',
  'wireguard-go': '#1565c0',
  openvpn: '#ef6c00',
  strongswan: '#6a1b9a',
};

/** Three horizontal bar panels (TCP Gbit/s, UDP kpps, CPU s/Gbit), linear scales, each bar labelled with its value. */
export function formatSvg(results: readonly PathResult[], title: string): string {
  const panels: { metric: Metric; label: string; scale: number; digits: number }[] = [
    { metric: 'tcp_gbps', label: 'single-stream TCP, Gbit/s (higher is better)', scale: 1, digits: 3 },
    { metric: 'udp_pps', label: 'UDP 1400-byte datagrams received, kpps (higher is better)', scale: 1e-3, digits: 1 },
    { metric: 'cpu_s_per_gbit', label: 'CPU seconds per Gbit of TCP (lower is better)', scale: 1, digits: 2 },
  ];
  const barH = 18;
  const gap = 6;
  const labelW = 110;
  const chartW = 520;
  const valueW = 120;
  const panelH = 28 + results.length * (barH + gap) + 10;
  const width = labelW + chartW + valueW;
  const height = 40 + panels.length * panelH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  panels.forEach((panel, p) => {
    const top = 40 + p * panelH;
    const values = results.map((r) => (r[panel.metric] == null ? null : (r[panel.metric] as number) * panel.scale));
    const max = Math.max(...values.map((v) => v ?? 0), 1e-12);
    parts.push(`<text x="10" y="${top + 14}" font-weight="bold">${escapeXml(panel.label)}</text>`);
    results.forEach((r, i) => {
      const y = top + 24 + i * (barH + gap);
      const v = values[i];
      parts.push(`<text x="${labelW - 6}" y="${y + barH - 5}" text-anchor="end">${escapeXml(r.path)}</text>`);
      if (v == null) {
        parts.push(`<text x="${labelW + 4}" y="${y + barH - 5}" fill="#b00020">did not run</text>`);
        return;
      }
      const w = Math.max(1, (v / max) * chartW);
      parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${PALETTE[r.path]}"/>`);
      parts.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + barH - 5}">${v.toFixed(panel.digits)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The chain figure: one row per configuration, then the cost of one relay between measured counts. */
export function formatChain(chain: {
  rows: readonly ChainRow[];
  costs: readonly RelayCost[];
  setup?: string;
  error?: string;
}): string {
  if (chain.error) return `Chain figure: could not run: ${chain.error}`;
  const table = renderTable(
    ['chain (gwA … gwB)', 'TCP Gbit/s', 'ping RTT µs', 'relay CPU µs/pkt', 'runs'],
    chain.rows.map((r) => [
      r.relays === 'kernel' ? 'kernel forwarding, no mipsec' : `${r.relays} relaying SGW${r.relays === 1 ? '' : 's'}`,
      fmt(r.tcp_gbps, 3),
      fmt(r.rtt_us, 0),
      fmt(r.relay_cpu_us ?? null, 2),
      r.error ? 'failed' : String(r.runs.length),
    ]),
    1,
  );
  const failures = chain.rows
    .filter((r) => r.error)
    .map((r) => `  ${r.relays === 'kernel' ? 'kernel' : `${r.relays} relays`}: ${r.error}`);
  const costs = chain.costs.map(
    (c) =>
      `  ${c.from} → ${c.to} relays: ${(c.throughput_loss * 100).toFixed(1)} % throughput and ` +
      `${c.rtt_us.toFixed(0)} µs RTT per added relay`,
  );
  const cpu = chain.rows.map((r) => r.relay_cpu_us).filter((v): v is number => typeof v === 'number');
  if (cpu.length) {
    const perPacket = median(cpu);
    costs.push(
      `  a relay's worker: ${perPacket.toFixed(2)} µs CPU per relayed packet, i.e. one core relays ≈ ` +
        `${(1 / perPacket).toFixed(2)} Mpps (it shares this machine's cores with every other gateway and iperf3)`,
    );
  }
  return [
    'Chain figure (medians; 4 middle namespaces, the first k relay, the rest forward in the kernel):',
    ...(chain.setup ? [`  ${chain.setup}`] : []),
    table,
    ...(costs.length ? ['Cost of one relay:', ...costs] : []),
    ...(failures.length ? ['Failed:', ...failures] : []),
  ].join('\n');
}
