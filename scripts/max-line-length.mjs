// Prints file:line:length for every line of the git-tracked src/**/*.ts longer than 120 characters
// (code points, as Prettier's printWidth counts them) and exits 1 if there is any.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX = 120;
const root = fileURLToPath(new URL('..', import.meta.url));
const files = execFileSync('git', ['ls-files', '-z', 'src/*.ts'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
let long = 0;
for (const file of files) {
  readFileSync(join(root, file), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const length = [...line].length;
      if (length > MAX) {
        long++;
        console.log(`${file}:${i + 1}:${length}`);
      }
    });
}
if (long) {
  console.error(`${long} line${long === 1 ? '' : 's'} longer than ${MAX} characters`);
  process.exit(1);
}
