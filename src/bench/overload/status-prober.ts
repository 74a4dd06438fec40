// Asks daemons for their status every `everyMs`, as an operator's `mipsec status` would, and times each answer: a
// process of its own, so that what the bench itself does meanwhile (spawning, restarting sgw3, parsing iperf3) is
// not in the figure. `node status-prober.js '<StatusProberSpec JSON>'` prints one line per request,
// `<name> <ms>` or `<name> failed`, until SIGTERM; then `done`.
import { requestStatus } from '../../daemon/socket.js';

export interface StatusProberSpec {
  /** Status socket path of each daemon, by the name the lines carry. */
  sockets: Record<string, string>;
  everyMs: number;
  timeoutMs: number;
}

/** Parses the prober's output: each daemon's answer latencies (ms) and how many requests went unanswered. */
export function parseProberLines(out: string): Record<string, { ms: number[]; failed: number }> {
  const got: Record<string, { ms: number[]; failed: number }> = {};
  for (const line of out.split('\n')) {
    const m = /^(\S+) (failed|[\d.]+)$/.exec(line.trim());
    if (!m || m[1] === 'done') continue;
    const entry = (got[m[1]] ??= { ms: [], failed: 0 });
    if (m[2] === 'failed') entry.failed++;
    else entry.ms.push(Number(m[2]));
  }
  return got;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as StatusProberSpec;
  let running = true;
  process.once('SIGTERM', () => (running = false));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  while (running) {
    const tick = performance.now();
    const lines = await Promise.all(
      Object.entries(spec.sockets).map(async ([name, path]) => {
        const t = performance.now();
        try {
          await requestStatus(path, { request: 'status' }, spec.timeoutMs);
          return `${name} ${(performance.now() - t).toFixed(2)}`;
        } catch {
          return `${name} failed`;
        }
      }),
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    await sleep(Math.max(0, spec.everyMs - (performance.now() - tick)));
  }
  process.stdout.write('done\n');
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: Error) => {
    process.stderr.write(`status-prober: ${err.message}\n`);
    process.exit(1);
  });
}
