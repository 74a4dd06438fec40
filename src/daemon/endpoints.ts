// The operator endpoints of one running role: the status socket (`mipsec status`) and, when asked,
// the Prometheus endpoint, both answering from the same status snapshot. Used by the daemons and by
// `mipsec lab --keep` (one set per kept role).
import { existsSync, unlinkSync } from 'node:fs';
import type { MetricsServer } from './metrics.js';
import { serveStatus, type StatusServer } from './socket.js';
import type { Status } from './status.js';

export interface EndpointOptions {
  /** Unix socket path; none without it. */
  socketPath?: string;
  /** HOST:PORT parsed; no metrics endpoint without it. */
  metrics?: { host: string; port: number };
  /** Labels on every metric series. */
  labels: { node: string; role: string };
  /** A fresh snapshot (may throw while the role is still starting: the client gets the message). */
  status: () => Status;
}

export interface OperatorEndpoints {
  readonly socketPath?: string;
  /** The address actually bound (port 0 picks a free one). */
  readonly metricsAddress?: { host: string; port: number };
  close(): Promise<void>;
  /** Best effort while the process exits: removes the socket file. */
  closeSync(): void;
}

/** Claims both endpoints, or neither: a socket claimed before a metrics failure is closed again. */
export async function serveEndpoints(o: EndpointOptions): Promise<OperatorEndpoints> {
  let socket: StatusServer | undefined;
  let metrics: MetricsServer | undefined;
  const close = async () => {
    await socket?.close();
    await metrics?.close();
  };
  try {
    if (o.socketPath)
      socket = await serveStatus(o.socketPath, (request) => {
        if (request.request !== 'status')
          throw new Error(
            `unknown request ${JSON.stringify(request.request)}; the daemon answers {"request":"status"}`,
          );
        return o.status();
      });
    if (o.metrics) {
      // Loaded only when asked: prom-client is a tenth of a daemon's start-up imports.
      const { metricsRegistry, serveMetrics } = await import('./metrics.js');
      metrics = await serveMetrics(o.metrics, metricsRegistry({ status: o.status }, o.labels));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    socketPath: socket?.path,
    metricsAddress: metrics?.address,
    close,
    closeSync: () => {
      if (socket && existsSync(socket.path)) unlinkSync(socket.path);
    },
  };
}
