// zod field schemas whose every error reads "expected <what, with an example>, got <value>", and the
// formatter that turns zod issues into "<path>: <message>" lines.
import * as z from 'zod';
import { isIpv4 } from '../wire/addr.js';
import { parseAddressOrPrefix, type SpecIssue } from '../topology/map.js';

/** A value as a config author would recognize it in an error message. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

interface InputIssue {
  input?: unknown;
}

/** The error function for a field expecting `what`. */
export function expecting(what: string) {
  return (iss: InputIssue) =>
    iss.input === undefined ? `missing; expected ${what}` : `expected ${what}, got ${show(iss.input)}`;
}

export function ipv4(example: string) {
  const error = expecting(`an IPv4 address such as ${example}`);
  return z.string({ error }).refine(isIpv4, { error });
}

function prefixProblem(text: string, parse: (t: string) => unknown): string | undefined {
  try {
    parse(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** 'a.b.c.d/len' (or, with `allowAddress`, a bare address meaning /32). */
export function prefix(example: string, allowAddress = false) {
  const what = allowAddress ? `an IPv4 address or prefix such as ${example}` : `an IPv4 prefix such as ${example}`;
  return z.string({ error: expecting(what) }).superRefine((text, ctx) => {
    const problem = allowAddress || text.includes('/') ? prefixProblem(text, parseAddressOrPrefix) : 'no /length';
    if (problem)
      ctx.addIssue({ code: 'custom', input: text, message: `expected ${what}, got ${show(text)} (${problem})` });
  });
}

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
export function name(example: string) {
  const error = expecting(`a name of lower-case letters, digits, - or _ such as ${example}`);
  return z.string({ error }).regex(NAME, { error });
}

export function filePath(example: string) {
  const error = expecting(`a file path such as ${example}`);
  return z.string({ error }).min(1, { error });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expecting(`one of ${values.join(' | ')}`) });
}

export function flag() {
  return z.boolean({ error: expecting('true or false') });
}

export function integer(min: number, max: number, example: number) {
  const error = expecting(`a whole number from ${min} to ${max} such as ${example}`);
  return z.number({ error }).refine((n) => Number.isInteger(n) && n >= min && n <= max, { error });
}

export function list<T extends z.ZodType>(item: T, what: string, min = 0) {
  const error = expecting(`a list of ${what}${min > 0 ? ` (at least ${min})` : ''}`);
  return z.array(item, { error }).min(min, { error });
}

/** A mapping with exactly these fields; an unknown field is named, with the closest known one. */
export function mapping<S extends z.ZodRawShape>(shape: S, what: string) {
  const fields = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        // One line per unknown field, in the order of iss.keys; fromZod puts each at its field.
        return iss.keys
          .map((key) => {
            const suggestion = closest(key, fields);
            return (
              `unknown field${suggestion ? ` (did you mean ${suggestion}?)` : ''}; ` +
              `the fields of ${what} are ${fields.join(', ')}`
            );
          })
          .join('\n');
      }
      return expecting(`${what}: a mapping with fields ${fields.join(', ')}`)(iss);
    },
  });
}

/** The known word within edit distance 2 of `word`, if any. */
function closest(word: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** 'interfaces[0].address'; '(top level)' for the document itself. */
export function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(top level)';
}

/** zod issues → SpecIssues; an unknown field's issue is put at the field itself, one per field. */
export function fromZod(issues: readonly z.core.$ZodIssue[]): SpecIssue[] {
  return issues.flatMap((iss) =>
    iss.code === 'unrecognized_keys'
      ? iss.keys.map((key, i) => ({
          path: [...iss.path, key] as (string | number)[],
          message: iss.message.split('\n')[i] ?? iss.message,
        }))
      : [{ path: iss.path as (string | number)[], message: iss.message }],
  );
}
