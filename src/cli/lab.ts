// mipsec lab: the draft's cases end to end — in network namespaces with real links, TUNs, ping and
// TCP when run as root, else (or with --memory) on the in-memory network.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { EngineImpl } from '../engine/index.js';
import type { CaseResult } from '../lab/case.js';
import { labCases } from '../lab/cases.js';
import { TCP_SECONDS } from '../lab/measure.js';
import { FLOW_FRAMES_PER_LINK, netnsUnavailable, runLab, type LabMode } from '../lab/run.js';
import { parseListen } from '../daemon/listen.js';
import { FAULT_IDS, runFaults, type FaultId } from '../lab/faults.js';
import { allCombos, comboId, coveringCombos, runSuites } from '../lab/suites.js';

const HELP =
  `usage: mipsec lab [--netns | --memory] [--json] [--pcap DIR [--key-chain]] [--keep [--metrics HOST:PORT]] ` +
  `[--engine native|ts] [--only ID,...]
       mipsec lab --faults [--only FAULT,...] [--tcp-rate RATE] [--json]
       mipsec lab --suites [--only covering | COMBINATION,...] [--pcap DIR] [--json]

Runs the draft's cases (Figure 6 §4.4/§4.5, §3, Figure 1/2, §3.5.1, a handover) and checks the
packet stacks on every link against the draft's [Packet Format]. As root it builds every case in
network namespaces (veths, bridges, TUN devices) and also measures ping RTT and a ${TCP_SECONDS} s TCP transfer
between the SMN and its correspondent; otherwise it runs them on the in-memory network.

  --netns           namespaces or nothing: exit 2 with the reason when they cannot be used (missing
                    root, /dev/net/tun or a tool such as ping), instead of falling back to memory
  --memory          run on the in-memory network (virtual time) even as root
  --json            print {"mode", "cases": [{"id", "title", "pass", ...}]} instead of text
  --pcap DIR        write DIR/<case>/<link>.pcap and the key log (esp_sa, skip-sa.jsonl): live keys!
                    Each pcap holds the case's probes and the first ${FLOW_FRAMES_PER_LINK} frames on the link of
                    each application flow (the pings, the TCP stream)
  --key-chain       TEST RUNS ONLY, with --pcap: skip-sa.jsonl also holds each SKIP SA's Kij and Kp,
                    so wireshark/check-key-chain.py can check every wrapped Kp on the wire
  --keep            leave the last case's namespaces and roles up until Ctrl-C; each SGW and the SMN
                    answers \`mipsec status --socket /run/mipsec/lab-<node>.sock\`
  --metrics H:P     with --keep: Prometheus text per kept role on http://H:P/metrics, P+1, … in the
                    order printed (port 0: a free port each)
  --engine E        native (default) or ts: the data path the roles use
  --only IDS        comma-separated case ids: ${labCases.map((c) => c.id).join(', ')}
  --faults          (root) faults under a live flow (ping every 10 ms + a TCP stream) on real
                    \`mipsec sgw\` / \`mipsec ha\` processes in namespaces: a chain of 3 SGWs and a
                    HA; --only picks faults: ${FAULT_IDS.join(', ')}. Per fault: probes
                    lost, time until traffic flows again, TCP goodput, what the daemons logged
  --tcp-rate RATE   with --faults: the TCP stream's iperf3 -b (default 20M)
  --suites          (root) every ESP suite × Next-hop MAC × AH coverage × transport (24) through the
                    same 3-SGW daemon chain: ping and 2 MB of TCP, the Internet link's first 600
                    packets read back by tshark with wireshark/mipsec-skip.lua (SKIP on every packet,
                    the configured Crypt/MAC Alg, nothing in clear); --only covering: 3 combinations
                    that use every value once; --pcap DIR keeps DIR/<combination>/internet.pcap

Exit status: 0 when every case passed, 1 when one failed, 2 on a usage error.`;

function fmtStacks(result: CaseResult): string[] {
  const lines: string[] = [];
  for (const [link, stack] of Object.entries(result.stacks)) {
    lines.push(`      ${link}`);
    for (const line of stack) lines.push(`        ${line}`);
  }
  return lines;
}

function figures(result: CaseResult): string {
  const parts: string[] = [];
  if (result.rttMs !== undefined) parts.push(`RTT ${result.rttMs.toFixed(2)} ms`);
  if (result.tcpMbps !== undefined) parts.push(`TCP ${result.tcpMbps.toFixed(1)} Mbit/s`);
  const d = result.tcpDataPath;
  if (d) {
    const reasons = Object.entries(d.slowPathReasons)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ');
    parts.push(
      `TCP packets in the role nodes: fast path ${d.fastPath}, ` +
        `slow path ${d.slowPath}${reasons ? ` (${reasons})` : ''}`,
    );
  }
  for (const m of result.moves ?? [])
    parts.push(`${m.move}: lost ${m.lost}/${m.sent}, back after ${m.resumeMs ?? '—'} ms`);
  parts.push(...(result.notes ?? []));
  return parts.join('; ');
}

export async function run(_name: string, args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        netns: { type: 'boolean' },
        memory: { type: 'boolean' },
        json: { type: 'boolean' },
        pcap: { type: 'string' },
        'key-chain': { type: 'boolean' },
        keep: { type: 'boolean' },
        metrics: { type: 'string' },
        engine: { type: 'string', default: 'native' },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        faults: { type: 'boolean' },
        'tcp-rate': { type: 'string' },
        suites: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`mipsec lab: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.engine !== 'native' && values.engine !== 'ts') {
    console.error(`mipsec lab: --engine must be native or ts, got '${values.engine}'`);
    return 2;
  }
  const engine = values.engine as EngineImpl;
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (values.faults && values.suites) {
    console.error('mipsec lab: --faults and --suites are separate runs; give one');
    return 2;
  }
  if (values['key-chain'] && (values.pcap === undefined || values.faults || values.suites)) {
    console.error(
      "mipsec lab: --key-chain goes with the cases' --pcap DIR (it adds Kij and Kp to DIR/<case>/skip-sa.jsonl)",
    );
    return 2;
  }
  if (values.faults) return runFaultsCommand(only, values['tcp-rate'], values.json === true);
  if (values.suites) return runSuitesCommand(only, values.pcap, values.json === true);
  if (values['tcp-rate'] !== undefined) {
    console.error('mipsec lab: --tcp-rate goes with --faults');
    return 2;
  }
  const known = new Set(labCases.map((c) => c.id));
  const unknown = (only ?? []).filter((id) => !known.has(id));
  if (unknown.length) {
    console.error(`mipsec lab: --only: unknown case id ${unknown.join(', ')} (known: ${[...known].join(', ')})`);
    return 2;
  }
  let metrics;
  try {
    metrics = values.metrics === undefined ? undefined : parseListen(values.metrics);
  } catch (err) {
    console.error(`mipsec lab: ${(err as Error).message}`);
    return 2;
  }
  if (metrics && !values.keep) {
    console.error('mipsec lab: --metrics serves the roles kept by --keep; add --keep');
    return 2;
  }
  const json = values.json === true;
  // Progress goes to stderr with --json so stdout stays one JSON document.
  const say = json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);

  if (values.netns && values.memory) {
    console.error('mipsec lab: --netns and --memory exclude each other; give one');
    return 2;
  }
  let mode: LabMode = 'memory';
  if (!values.memory) {
    const why = netnsUnavailable();
    if (why && values.netns) {
      console.error(`mipsec lab: --netns: network namespaces cannot be used: ${why}`);
      return 2;
    }
    // Loud, on stderr even without --json: a root user asked for the real lab and gets the simulation.
    if (why)
      console.error(
        `mipsec lab: WARNING: network namespaces unavailable (${why}); running on the in-memory network instead ` +
          `(--netns makes this an error)`,
      );
    else mode = 'netns';
  }
  if (mode === 'netns' && engine !== 'native') {
    console.error(
      'mipsec lab: the namespace lab reads its TUNs with the native I/O loop; use --engine native or --memory',
    );
    return 2;
  }
  if (values.keep && mode !== 'netns') say('mipsec lab: --keep has nothing to keep on the in-memory network');

  say(
    `mipsec lab: ${only?.length ?? labCases.length} cases ` +
      `${mode === 'netns' ? 'in network namespaces' : 'on the in-memory network'} (${engine} engine)`,
  );
  const report = await runLab({
    mode,
    engine,
    only,
    pcapDir: values.pcap,
    keyChain: values['key-chain'],
    keep: values.keep,
    metrics,
    progress: (e) => {
      const n = `[${String(e.index + 1).padStart(2)}/${e.total}]`;
      if (e.phase === 'start') {
        if (json) say(`${n} ${e.labCase.id} …`);
        return;
      }
      const r = e.result;
      say(
        `${n} ${r.pass ? 'PASS' : 'FAIL'} ${r.id.padEnd(10)} ` +
          `${r.section} ${r.title} (${(r.durationMs / 1000).toFixed(1)} s)`,
      );
      if (json) return;
      for (const line of fmtStacks(r)) say(line);
      const f = figures(r);
      if (f) say(`      ${f}`);
      for (const failure of r.failures) say(`      ✗ ${failure}`);
    },
  });
  const passed = report.cases.filter((c) => c.pass).length;
  if (json) console.log(JSON.stringify({ mode: report.mode, engine: report.engine, cases: report.cases }, null, 2));
  say(
    `${passed} of ${report.cases.length} cases passed ` +
      `(${mode})${values.pcap ? `; captures and key logs in ${values.pcap}` : ''}`,
  );
  if (report.kept) {
    for (const r of report.keptRoles ?? []) {
      say(
        `--keep: ${r.role} ${r.node}: mipsec status ` +
          `--socket ${r.socketPath}${r.metricsUrl ? `; metrics ${r.metricsUrl}` : ''}`,
      );
    }
    say(
      `--keep: namespaces ${report.kept.session.names.join(' ')} stay up with the roles running; Ctrl-C removes them`,
    );
    await new Promise(() => undefined);
  }
  return passed === report.cases.length ? 0 : 1;
}

/** `mipsec lab --faults`: namespaces only (the faults kill real daemon processes). */
async function runFaultsCommand(
  only: string[] | undefined,
  tcpRate: string | undefined,
  json: boolean,
): Promise<number> {
  const unknown = (only ?? []).filter((id) => !(FAULT_IDS as readonly string[]).includes(id));
  if (unknown.length) {
    console.error(`mipsec lab --faults: --only: unknown fault ${unknown.join(', ')} (known: ${FAULT_IDS.join(', ')})`);
    return 2;
  }
  if (tcpRate !== undefined && !/^\d+(\.\d+)?[KMG]?$/.test(tcpRate)) {
    console.error(`mipsec lab --faults: --tcp-rate is an iperf3 -b rate such as 20M, got '${tcpRate}'`);
    return 2;
  }
  const why =
    netnsUnavailable() ??
    (commandMissing('python3')
      ? 'python3 is missing (apt-get install python3): the netem stand-in is a Python script'
      : undefined);
  if (why) {
    console.error(`mipsec lab --faults: needs network namespaces: ${why}`);
    return 2;
  }
  const say = json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);
  const report = await runFaults({ only: only as FaultId[] | undefined, tcpRate, progress: say });
  const passed = report.faults.filter((f) => f.pass).length;
  if (json) console.log(JSON.stringify(report, null, 2));
  say(`${passed} of ${report.faults.length} faults passed`);
  return passed === report.faults.length ? 0 : 1;
}

/** `mipsec lab --suites`: every suite combination on the wire through the daemon chain (namespaces only). */
async function runSuitesCommand(
  only: string[] | undefined,
  pcapDir: string | undefined,
  json: boolean,
): Promise<number> {
  const all = allCombos();
  let combos = all;
  if (only?.length === 1 && only[0] === 'covering') combos = coveringCombos();
  else if (only?.length) {
    const unknown = only.filter((id) => !all.some((c) => comboId(c) === id));
    if (unknown.length) {
      console.error(
        `mipsec lab --suites: --only: unknown combination ${unknown.join(', ')} ` +
          `(covering, or ESP-MAC-COVERAGE-TRANSPORT such as ${comboId(all[0])})`,
      );
      return 2;
    }
    combos = all.filter((c) => only.includes(comboId(c)));
  }
  const why = netnsUnavailable();
  if (why) {
    console.error(`mipsec lab --suites: needs network namespaces: ${why}`);
    return 2;
  }
  const say = json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);
  const report = await runSuites({ combos, pcapDir, progress: say });
  const passed = report.suites.filter((r) => r.pass).length;
  if (json) console.log(JSON.stringify(report, null, 2));
  say(`${passed} of ${report.suites.length} suite combinations passed${pcapDir ? `; captures in ${pcapDir}` : ''}`);
  return passed === report.suites.length ? 0 : 1;
}

function commandMissing(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}
