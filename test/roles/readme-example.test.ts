// Runs the README's "Embed the library" example exactly as written (with 'mipsec' pointing at
// src/index.ts), so the example cannot rot; its printed lines must be the ones the README shows.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it, vi } from 'vitest';

process.env.MIPSEC_NATIVE = '1';
const root = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');
const section = readme.slice(readme.indexOf('## Embed the library'));
const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)];
const code = blocks.find((b) => b[1] === 'ts')?.[2];
const printed = blocks.find((b) => b[1] === '')?.[2];
const file = `${root}test/roles/.readme-example.generated.ts`;

afterAll(() => rmSync(file, { force: true }));

it('README "Embed the library": the example runs and prints what the README says', async () => {
  expect(code).toBeDefined();
  expect(printed).toBeDefined();
  writeFileSync(file, code!.replace("from 'mipsec'", `from '${root}src/index.ts'`));
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    await import(file);
  } finally {
    log.mockRestore();
  }
  expect(lines).toEqual(printed!.trim().split('\n'));
});
