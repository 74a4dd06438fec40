// mipsec bench micro | e2e: the data-path micro-benchmark (src/bench/micro.ts, bench/README.md) and the
// end-to-end benchmark against other userspace VPNs (src/bench/e2e/, bench/e2e.md).
import { parseArgs } from 'node:util';
import { INSTALL_TABLE_SIZES } from '../bench/install.js';
import {
  MAX_INNER,
  MICRO_OPS,
  MIN_INNER,
  formatTable,
  runMicro,
  type MicroOp,
  type MicroOptions,
} from '../bench/micro.js';
import type { EngineImpl } from '../engine/types.js';

const TS_SHARE = 0.3;

const GROUP_HELP = `usage: mipsec bench micro | e2e | soak | overload [options]

  micro   data-path micro-benchmark: native vs TS vs openssl speed, one core
  e2e     iperf3 through client — gateway A — gateway B — server namespaces:
          plain veth, mipsec (SKIP, SPI, the sgw daemons, TS path), wireguard-go, OpenVPN, strongSwan
  soak    the daemons under load for N minutes: memory, fds, tables and drops every minute
  overload  the sgw daemons offered 2× what they carry plus a spoofed-source flood: drops by reason,
          status latency, registrations and new keys under load, recovery

Run \`mipsec bench <name> --help\` for the options.`;

const HELP = `usage: mipsec bench micro [--json] [--seconds S] [--sizes 64,512,1400] [--runs N]
                          [--ops OP,...] [--impls native,ts]

Measures packets/s and Gbit/s (inner bytes) on one core for ESP encap and decap
(AES-128-GCM), the next-hop relay with GMAC at full and headers coverage and
with HMAC (full), on the native and the TS data path, next to
\`openssl speed -evp aes-128-gcm -bytes N\` run in the same invocation; prints
the ratios native/openssl and native/TS and checks the issue's targets. The
table ends with the SA install cost at ${INSTALL_TABLE_SIZES.join(', ')} installed SAs
(CPU µs per install and remove; not in --json).

options:
  --seconds S   seconds per measured run of a native cell (default 1; TS cells
                get ${TS_SHARE} × S, openssl whole seconds, at least 1)
  --sizes LIST  inner packet sizes in bytes, ${MIN_INNER}..${MAX_INNER} (default 64,512,1400)
  --runs N      measured runs per cell, the median is reported (default 3)
  --ops LIST    only these ops (default all: ${MICRO_OPS.join(', ')});
                openssl runs when encap-aes128gcm is among them
  --impls LIST  only these data paths (default native,ts), e.g. to profile one cell
  --json        print only a JSON array of {"op","impl","bytes","pps","gbps"}
  --help        this text

Progress goes to stderr. See bench/README.md for how each op is fed and how to
read the ratios.`;

function usageError(message: string): number {
  console.error(`mipsec bench: ${message}\n\n${HELP}`);
  return 2;
}

/** The `bench` command group: `micro` here, `e2e` in src/bench/e2e/. */
export async function run(_name: string, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(GROUP_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'e2e') return (await import('../bench/e2e/index.js')).runE2e(rest);
  if (sub === 'soak') return (await import('../bench/soak/index.js')).runSoakCommand(rest);
  if (sub === 'overload') return (await import('../bench/overload/index.js')).runOverloadCommand(rest);
  if (sub !== 'micro') {
    console.error(`mipsec bench: unknown benchmark '${sub}' (micro, e2e, soak or overload)\n\n${GROUP_HELP}`);
    return 2;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        json: { type: 'boolean', default: false },
        seconds: { type: 'string', default: '1' },
        sizes: { type: 'string', default: '64,512,1400' },
        runs: { type: 'string', default: '3' },
        ops: { type: 'string', default: MICRO_OPS.join(',') },
        impls: { type: 'string', default: 'native,ts' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    return usageError((err as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600)
    return usageError(`--seconds must be a number in (0, 600], got '${values.seconds}'`);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 99)
    return usageError(`--runs must be an integer in 1..99, got '${values.runs}'`);
  const sizes = values.sizes.split(',').map((s) => Number(s.trim()));
  const badSize = values.sizes
    .split(',')
    .find((s, i) => !Number.isInteger(sizes[i]) || sizes[i] < MIN_INNER || sizes[i] > MAX_INNER);
  if (badSize !== undefined)
    return usageError(`--sizes: '${badSize.trim()}' is not an integer in ${MIN_INNER}..${MAX_INNER}`);
  if (new Set(sizes).size !== sizes.length) return usageError('--sizes lists a size twice');
  const ops = values.ops.split(',').map((s) => s.trim());
  const badOp = ops.find((op) => !(MICRO_OPS as readonly string[]).includes(op));
  if (badOp !== undefined) return usageError(`--ops: unknown op '${badOp}' (one of ${MICRO_OPS.join(', ')})`);
  const impls = values.impls.split(',').map((s) => s.trim());
  const badImpl = impls.find((i) => i !== 'native' && i !== 'ts');
  if (badImpl !== undefined) return usageError(`--impls: unknown data path '${badImpl}' (native or ts)`);

  const tty = process.stderr.isTTY;
  let lastWidth = 0;
  const progress = (text: string): void => {
    if (tty) {
      process.stderr.write(`\r${text.padEnd(lastWidth)}`);
      lastWidth = text.length;
    } else {
      process.stderr.write(`${text}\n`);
    }
  };
  // The SA install rows belong to the human table; the --json rows stay one per op, impl and size.
  const installSizes = values.json ? [] : INSTALL_TABLE_SIZES;
  const options: MicroOptions = {
    sizes,
    ops: ops as MicroOp[],
    impls: impls as EngineImpl[],
    seconds,
    tsSeconds: seconds * TS_SHARE,
    runs,
    installSizes,
    progress,
  };
  const result = await runMicro(options);
  if (tty) process.stderr.write(`\r${' '.repeat(lastWidth)}\r`);
  if (values.json) {
    console.log(JSON.stringify(result.rows));
  } else {
    console.log(formatTable(result, options));
  }
  return 0;
}
