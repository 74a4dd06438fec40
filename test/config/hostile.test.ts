// Hostile config files: random damage to the examples never crashes the checker, and every
// error still names the file and a field.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { checkFiles } from '../../src/config/load.js';

const FILES = ['network.yaml', 'sgw0.yaml', 'sgw1.yaml', 'sgw2.yaml', 'ha.yaml', 'smn.yaml'];

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JUNK: unknown[] = [
  null,
  0,
  -1,
  1e300,
  4294967296,
  '',
  ' ',
  '10.0.0',
  '10.0.0.0/33',
  '256.1.1.1',
  '10.0.0.1/8',
  'sgw0',
  'x'.repeat(500),
  [],
  [[]],
  {},
  { a: 1 },
  true,
  '☃',
  '../../../etc/passwd',
];

/** Replaces, deletes or adds one value somewhere in the document. */
function damage(doc: any, random: () => number): void {
  let node = doc;
  for (let depth = 0; depth < 6; depth++) {
    const keys = Array.isArray(node) ? node.map((_: unknown, i: number) => i) : Object.keys(node);
    if (keys.length === 0) break;
    const key = keys[Math.floor(random() * keys.length)];
    const child = node[key];
    if (child !== null && typeof child === 'object' && random() < 0.7) {
      node = child;
      continue;
    }
    const roll = random();
    if (roll < 0.6) node[key] = JUNK[Math.floor(random() * JUNK.length)];
    else if (roll < 0.8 && !Array.isArray(node)) delete node[key];
    else if (Array.isArray(node)) node.push(structuredClone(node[0]));
    else node[`extra${Math.floor(random() * 3)}`] = JUNK[Math.floor(random() * JUNK.length)];
    return;
  }
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mipsec-hostile-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('damaged configs', () => {
  it('never crash the checker, and every error names the file and a field', async () => {
    const random = rng(0x5eed);
    const originals = Object.fromEntries(
      FILES.map((f) => [f, parse(readFileSync(join('examples/figure6', f), 'utf8'))]),
    );
    let failures = 0;
    for (let round = 0; round < 150; round++) {
      // Each round damages the network map and one node file, side by side as the lab has them.
      const nodeFile = FILES[1 + (round % (FILES.length - 1))];
      const network = structuredClone(originals['network.yaml']);
      const node = structuredClone(originals[nodeFile]);
      if (random() < 0.5) damage(network, random);
      for (let n = 0; n < 1 + Math.floor(random() * 3); n++) damage(node, random);
      writeFileSync(join(dir, 'network.yaml'), stringify(network));
      writeFileSync(join(dir, nodeFile), stringify(node));
      const reports = await checkFiles([join(dir, 'network.yaml'), join(dir, nodeFile)]);
      for (const report of reports) {
        for (const error of report.errors) {
          expect(error.startsWith(`${report.file}: `)).toBe(true);
          expect(error.slice(report.file.length + 2)).toMatch(
            /^(\(top level\)|[A-Za-z][\w.[\]]*|line \d+, column \d+): /,
          );
          failures++;
        }
      }
    }
    // The damage is real: most rounds produce errors.
    expect(failures).toBeGreaterThan(100);
  });

  it('refuse binary junk and oversized files with a reason', async () => {
    const binary = join(dir, 'binary.yaml');
    writeFileSync(binary, Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x02, 0x5b, 0x7b]));
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `kind: node\n# ${'x'.repeat(1 << 20)}\n`);
    const [b, g] = await checkFiles([binary, big]);
    expect(b.errors.length).toBeGreaterThan(0);
    expect(b.errors[0].startsWith(`${binary}: `)).toBe(true);
    expect(g.errors).toEqual([`${big}: 1048590 bytes is too large for a config file (limit 1048576)`]);
  });
});
