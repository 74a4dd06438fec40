// --metrics HOST:PORT: Prometheus text (prom-client) read on each scrape from the engine's counters
// array, the SA table and the role's counters: nothing is counted per packet in JavaScript.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Status } from './status.js';

export interface MetricsSource {
  /** A fresh snapshot: the same numbers `mipsec status` shows. */
  status(): Status;
}

export function metricsRegistry(source: MetricsSource, labels: { node: string; role: string }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  // One snapshot per scrape, shared by every collect callback of that scrape.
  let current: Status | undefined;
  const snapshot = () => (current ??= source.status());
  const counter = (name: string, help: string, labelName: string, read: (s: Status) => Record<string, number>) =>
    new Counter({
      name,
      help,
      labelNames: [labelName],
      registers: [registry],
      collect() {
        this.reset();
        for (const [label, n] of Object.entries(read(snapshot()))) this.inc({ [labelName]: label }, n);
      },
    });
  counter('mipsec_drops_total', 'Packets the engine dropped or punted, by reason', 'reason', (s) => s.counters.engine);
  counter('mipsec_verdicts_total', 'Engine verdicts, by verdict', 'verdict', (s) => s.counters.verdicts);
  counter('mipsec_role_events_total', 'Role decisions, drops and messages, by name', 'event', (s) => s.counters.role);
  counter('mipsec_host_drops_total', 'Packets the host dropped, by reason', 'reason', (s) => s.counters.host);
  const ioHelp =
    "The I/O loops' own counters (reads, sends, tx errors, too-big, ICMP sent, GSO/GRO, punts, injections)";
  counter('mipsec_io_total', ioHelp, 'counter', (s) => s.counters.io);
  counter(
    'mipsec_datapath_packets_total',
    'Packets the I/O loops handled, by path: native (never in JavaScript) or punted to JavaScript',
    'path',
    (s) => ({ fast: s.counters.fastPath, slow: s.counters.slowPath.total }),
  );
  counter(
    'mipsec_slow_path_total',
    'Packets the I/O loops punted to JavaScript, by engine reason',
    'reason',
    (s) => s.counters.slowPath.reasons,
  );
  counter('mipsec_sa_packets_total', 'Packets through each installed SA', 'sa', (s) =>
    Object.fromEntries(s.sas.map((sa) => [String(sa.id), sa.packets])),
  );
  counter('mipsec_sa_bytes_total', 'Bytes through each installed SA', 'sa', (s) =>
    Object.fromEntries(s.sas.map((sa) => [String(sa.id), sa.bytes])),
  );
  new Gauge({
    name: 'mipsec_sas',
    help: 'SAs installed in the engine',
    registers: [registry],
    collect() {
      this.set(snapshot().sas.length);
    },
  });
  new Gauge({
    name: 'mipsec_bindings',
    help: 'HA: mobility bindings held; SMN: 1 while registered away',
    registers: [registry],
    collect() {
      const b = snapshot().bindings;
      this.set(Array.isArray(b) ? b.length : b && b.registration === 'registered' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mipsec_uptime_seconds',
    help: 'Seconds since the daemon started',
    registers: [registry],
    collect() {
      this.set(snapshot().uptimeSeconds);
    },
  });
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    current = undefined;
    try {
      return await metrics();
    } finally {
      current = undefined;
    }
  };
  return registry;
}

export interface MetricsServer {
  /** The address actually bound (port 0 picks a free one). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serves GET /metrics on exactly the address given. */
export async function serveMetrics(listen: { host: string; port: number }, registry: Registry): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('mipsec serves GET /metrics only\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  server.requestTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`--metrics ${listen.host}:${listen.port}: cannot listen (${err.code ?? err.message})`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : listen.port;
  return {
    address: { host: listen.host, port },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
