// Issue 11 item 3: the node config's dataPath settings, checked by check-config (exact messages naming the file,
// the field and the fix) and loaded with their defaults.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { checkFiles, loadNode } from '../../src/config/load.js';

const EXAMPLES = 'examples/figure6';
type Doc = Record<string, any>;

/** The loaded node's dataPath (its errors, if the file does not load). */
async function dataPathOf(file: string): Promise<unknown> {
  const loaded = await loadNode(file);
  return loaded.ok ? loaded.node.dataPath : loaded.errors;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mipsec-datapath-'));
  writeFileSync(join(dir, 'network.yaml'), readFileSync(join(EXAMPLES, 'network.yaml')));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** sgw1's example config with `dataPath` set, written under its own name. */
function sgwWith(name: string, dataPath: unknown): string {
  const doc: Doc = parse(readFileSync(join(EXAMPLES, 'sgw1.yaml'), 'utf8'));
  doc.dataPath = dataPath;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc));
  return file;
}

const REFUSED: { what: string; dataPath: unknown; message: string }[] = [
  {
    what: 'unknown transport',
    dataPath: { transport: 'tcp' },
    message: 'dataPath.transport: expected one of raw | udp, got "tcp"',
  },
  {
    what: 'no transport',
    dataPath: { workers: 2 },
    message: 'dataPath.transport: missing; expected one of raw | udp',
  },
  {
    what: 'UDP port 0',
    dataPath: { transport: 'udp', udpPort: 0 },
    message: 'dataPath.udpPort: expected a whole number from 1 to 65535 such as 4741, got 0',
  },
  {
    what: 'UDP port with the raw transport',
    dataPath: { transport: 'raw', udpPort: 4741 },
    message:
      'dataPath.udpPort: not used with transport raw; remove it, or set transport: udp to carry the packets in UDP port 4741',
  },
  {
    what: 'no workers',
    dataPath: { transport: 'raw', workers: 0 },
    message: 'dataPath.workers: expected a whole number from 1 to 64 such as 2, got 0',
  },
  {
    what: 'too many workers',
    dataPath: { transport: 'raw', workers: 65 },
    message: 'dataPath.workers: expected a whole number from 1 to 64 such as 2, got 65',
  },
  {
    what: 'poll window over 100 ms',
    dataPath: { transport: 'raw', pollMicros: 100001 },
    message: 'dataPath.pollMicros: expected a whole number from 0 to 100000 such as 50, got 100001',
  },
  {
    what: 'misspelt field',
    dataPath: { transport: 'udp', udpport: 4741 },
    message:
      'dataPath.udpport: unknown field (did you mean udpPort?); the fields of dataPath are ' +
      'transport, udpPort, workers, pollMicros',
  },
  {
    what: 'not a mapping',
    dataPath: 'udp',
    message: 'dataPath: expected dataPath: a mapping with fields transport, udpPort, workers, pollMicros, got "udp"',
  },
];

describe('check-config: dataPath', () => {
  it.each(REFUSED.map((c, i) => [c.what, i] as const))(
    'refuses %s with the file, the field and the fix',
    async (_what, i) => {
      const c = REFUSED[i];
      const file = sgwWith(`bad-${i}`, c.dataPath);
      const [report] = await checkFiles([file]);
      expect(report.errors).toEqual([`${file}: ${c.message}`]);
    },
  );

  it('accepts every setting in range, and loads them', async () => {
    const file = sgwWith('udp', { transport: 'udp', udpPort: 5000, workers: 2, pollMicros: 100000 });
    const [report] = await checkFiles([file]);
    expect(report.errors).toEqual([]);
    expect(await dataPathOf(file)).toEqual({ transport: 'udp', udpPort: 5000, workers: 2, pollMicros: 100000 });
  });

  it('defaults: raw, one worker, no polling; udp without a port takes 4741', async () => {
    const plain: Doc = parse(readFileSync(join(EXAMPLES, 'sgw1.yaml'), 'utf8'));
    writeFileSync(join(dir, 'plain.yaml'), stringify(plain));
    expect(await dataPathOf(join(dir, 'plain.yaml'))).toEqual({ transport: 'raw', workers: 1, pollMicros: 0 });
    const udp = await dataPathOf(sgwWith('udp-default', { transport: 'udp' }));
    expect(udp).toEqual({ transport: 'udp', udpPort: 4741, workers: 1, pollMicros: 0 });
  });
});
