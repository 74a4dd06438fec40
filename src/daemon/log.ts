// Structured daemon logs: pino JSON lines, with a redaction layer so no key material reaches a log
// even by mistake: any field named key, secret, kp, salt or psk, at any depth, is censored.
import pino, { type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SECRET_FIELDS = new Set(['key', 'secret', 'kp', 'salt', 'psk']);
const CENSORED = '[redacted]';
/** Deeper structures than this are cut: a log line is never a full object dump. */
const MAX_DEPTH = 8;

/** A copy of `value` with every secret-named field censored, at any depth. */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  // Raw bytes are never logged: they could be anything, a key included.
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return { type: value.name, message: value.message };
  const out: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(value))
    out[field] = SECRET_FIELDS.has(field.toLowerCase()) ? CENSORED : redact(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  level: LevelWithSilent;
  role: string;
  node: string;
  /** Where JSON lines go; default stdout. */
  destination?: DestinationStream;
}

export function createLogger(o: LoggerOptions): Logger {
  return pino(
    {
      level: o.level,
      base: { role: o.role, node: o.node, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: (fields) => redact(fields) as Record<string, unknown> },
    },
    o.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
