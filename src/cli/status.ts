// mipsec status [--json] [--socket PATH | --node NAME]: asks a running daemon over its unix socket.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultSocketPath, NoDaemonError, requestStatus, SOCKET_DIR } from '../daemon/socket.js';
import { formatStatus, type Status } from '../daemon/status.js';

const HELP = `usage: mipsec status [--json] [--socket PATH | --node NAME]

Shows a running daemon's SAs, bindings, counters per drop reason and rates.
Without --socket or --node it asks the only daemon in ${SOCKET_DIR}.

options:
  --socket PATH   the daemon's status socket (its --status-socket)
  --node NAME     the daemon of node NAME: ${SOCKET_DIR}/NAME.sock
  --json          the documented JSON shape (docs/operations.md) instead of tables
  --help          this text`;

const START_HINT = 'start one with `mipsec sgw|smn|ha --config FILE` (add --status-socket PATH for another place)';

export async function run(_name: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        json: { type: 'boolean' },
        socket: { type: 'string' },
        node: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`mipsec status: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const path = v.socket ?? (v.node ? defaultSocketPath(v.node) : onlySocket());
  if (typeof path !== 'string') {
    console.error(`mipsec status: ${path.error}`);
    return 1;
  }
  let answer: unknown;
  try {
    answer = await requestStatus(path);
  } catch (err) {
    console.error(`mipsec status: ${(err as Error).message}${err instanceof NoDaemonError ? `; ${START_HINT}` : ''}`);
    return 1;
  }
  const body = answer as Status | { error: string };
  if ('error' in body) {
    console.error(`mipsec status: the daemon answered: ${body.error}`);
    return 1;
  }
  console.log(v.json ? JSON.stringify(body, null, 2) : formatStatus(body));
  return 0;
}

function onlySocket(): string | { error: string } {
  let sockets: string[] = [];
  try {
    sockets = readdirSync(SOCKET_DIR).filter((f) => f.endsWith('.sock'));
  } catch {
    // No directory: no daemon has run here.
  }
  if (sockets.length === 1) return join(SOCKET_DIR, sockets[0]);
  if (sockets.length === 0) return { error: `no mipsec daemon is listening in ${SOCKET_DIR}; ${START_HINT}` };
  return {
    error:
      `several daemons listen in ${SOCKET_DIR} (${sockets.join(', ')}); ` +
      `pick one with --node NAME or --socket PATH`,
  };
}
