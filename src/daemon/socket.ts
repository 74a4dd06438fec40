// The status socket: a local unix socket (mode 0600) where each connection carries one JSON request
// line and gets one JSON answer. It is bound inside a fresh 0700 directory, made 0600, and only then
// renamed onto its path, so it is never reachable with a looser mode; a symlinked path is refused.
// The daemon never waits on a client: requests are small and bounded,
// answers are written without waiting for them to drain, and an idle connection is cut.
import { existsSync, mkdirSync, mkdtempSync, chmodSync, unlinkSync, lstatSync, renameSync, rmdirSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';

export const SOCKET_DIR = '/run/mipsec';
const MAX_REQUEST_BYTES = 4096;
const CLIENT_IDLE_MS = 2000;
const MAX_CLIENTS = 32;

export function defaultSocketPath(node: string): string {
  return `${SOCKET_DIR}/${node}.sock`;
}

export type Answer = (request: { request?: unknown }) => unknown;

export interface StatusServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Listens on `path`; a stale socket file left by a crash is replaced, a live daemon's is not. */
export async function serveStatus(path: string, answer: Answer): Promise<StatusServer> {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  refuseSymlinks(path);
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket())
      throw new Error(`${path} exists and is not a socket; remove it or give another --status-socket`);
    if (await isListening(path))
      throw new Error(`another daemon is already listening on ${path}; stop it first or give another --status-socket`);
    unlinkSync(path);
  }
  const server = createServer({ allowHalfOpen: false }, (socket) => handle(socket, answer));
  server.maxConnections = MAX_CLIENTS;
  const privateDir = mkdtempSync(join(dir, '.mipsec-'));
  try {
    chmodSync(privateDir, 0o700);
    const bound = join(privateDir, 'status.sock');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(bound, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(bound, 0o600);
    renameSync(bound, path);
  } finally {
    rmdirSync(privateDir);
  }
  return { path, close: () => closeServer(server, path) };
}

/** Neither the socket path nor its directory may be a symlink: the daemon would create or replace a file elsewhere. */
function refuseSymlinks(path: string): void {
  for (const at of [path, dirname(path)]) {
    if (isSymlink(at))
      throw new Error(`${at} is a symlink; give the status socket a path without one (--status-socket)`);
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function handle(socket: Socket, answer: Answer): void {
  let text = '';
  socket.setTimeout(CLIENT_IDLE_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const reply = (body: unknown) => {
    socket.removeAllListeners('data');
    socket.end(`${JSON.stringify(body)}\n`);
  };
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    if (text.length > MAX_REQUEST_BYTES) return reply({ error: `request longer than ${MAX_REQUEST_BYTES} bytes` });
    const end = text.indexOf('\n');
    if (end < 0) return;
    let request: unknown;
    try {
      request = JSON.parse(text.slice(0, end));
    } catch {
      return reply({ error: 'the request is not JSON; send {"request":"status"} and a newline' });
    }
    if (request === null || typeof request !== 'object' || Array.isArray(request))
      return reply({ error: 'the request must be a JSON object such as {"request":"status"}' });
    try {
      reply(answer(request as { request?: unknown }));
    } catch (err) {
      reply({ error: (err as Error).message });
    }
  });
}

function closeServer(server: Server, path: string): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // A server that is closing removes its socket file itself; make sure a copy left behind goes too.
    if (existsSync(path)) unlinkSync(path);
  });
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

export class NoDaemonError extends Error {
  override name = 'NoDaemonError';
}

/** Sends one request to the daemon on `path` and returns its JSON answer. */
export function requestStatus(
  path: string,
  request: object = { request: 'status' },
  timeoutMs = 3000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`the daemon on ${path} did not answer within ${timeoutMs} ms`));
    });
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
        reject(new NoDaemonError(`no mipsec daemon is listening on ${path}`));
      else if (err.code === 'EACCES')
        reject(
          new Error(
            `no permission to open ${path} (the socket is mode 0600: run as the daemon's user, e.g. with sudo)`,
          ),
        );
      else reject(new Error(`cannot talk to ${path}: ${err.message}`));
    });
    socket.once('end', () => {
      socket.destroy();
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`the answer from ${path} is not JSON`));
      }
    });
  });
}
