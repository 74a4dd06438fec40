// What a running role can change on a reload. Each role's daemon adapter (./roles.ts) declares its live fields; the
// daemon compares two config loads, hands the role the changes inside those fields, and reports every other change
// as waiting for a restart.
import type { NodeConfig } from '../config/index.js';

/** A node config field or a field of one of its sections, as a dotted path: 'manualSas', 'policy.esp'. */
type FieldPath<T> = {
  [K in keyof T & string]:
    | K
    | (NonNullable<T[K]> extends readonly unknown[]
        ? never
        : NonNullable<T[K]> extends object
          ? `${K}.${keyof NonNullable<T[K]> & string}`
          : never);
}[keyof T & string];

/** A config field a role can put in force while it runs; a change anywhere inside it counts. */
export type LiveField = FieldPath<NodeConfig>;

/** Whether the changed dotted path `path` is `field` or lies inside it. */
function inside(path: string, field: string): boolean {
  return path === field || path.startsWith(`${field}.`);
}

/** Whether a change at `path` is one the role puts in force live (else it waits for a restart). */
export function isLive(path: string, liveFields: readonly LiveField[]): boolean {
  return liveFields.some((field) => inside(path, field));
}

/** The changes a reload hands a role: the changed paths that lie inside its live fields. */
export class LiveChanges {
  readonly paths: readonly string[];

  constructor(changed: readonly string[], liveFields: readonly LiveField[]) {
    this.paths = changed.filter((path) => isLive(path, liveFields));
  }

  /** The same changes narrowed to `fields` (a role that adds fields to another's hands it only its own). */
  only(fields: readonly LiveField[]): LiveChanges {
    return new LiveChanges(this.paths, fields);
  }

  /** Whether `field` or anything inside it changed. */
  has(field: LiveField): boolean {
    return this.paths.some((path) => inside(path, field));
  }
}
