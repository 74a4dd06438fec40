// The core (native/wire, crypto, sa, xform, io, engine/abi.h) apart from the binding (native/node): it includes no
// Node header, builds as a static library without one (native/Makefile), and its C++ test drives the engine and the
// I/O loop with no Node at all (native/test/core_test.cc: TUN and loopback in a namespace of its own, as root).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canRunNetns } from '../io/topology.js';

const root = path.resolve(import.meta.dirname, '../..');
const CORE_DIRS = ['wire', 'crypto', 'sa', 'xform', 'io', 'engine'];
const NODE_INCLUDE = /^\s*#\s*include\s*[<"](napi\.h|node_api\.h|node\.h|uv\.h|node\/[^>"]+)[>"]/m;

describe('the native core without Node', () => {
  it('no file of the core includes a Node or binding header', () => {
    const offenders = CORE_DIRS.flatMap((dir) =>
      readdirSync(path.join(root, 'native', dir))
        .map((file) => `native/${dir}/${file}`)
        .filter((file) => NODE_INCLUDE.test(readFileSync(path.join(root, file), 'utf8'))),
    );
    expect(offenders).toEqual([]);
  });

  it('builds as a static library with the C++ test, with no Node include path', { timeout: 600_000 }, () => {
    const make = spawnSync('make', ['-C', 'native', '-j2', 'lib', 'core_test'], { cwd: root, encoding: 'utf8' });
    expect(make.status, make.stdout + make.stderr).toBe(0);
    expect(make.stdout).not.toMatch(/include\/node|node-addon-api/);
  });

  it.skipIf(!canRunNetns)('the C++ test drives the engine and the I/O loop (TUN, raw sockets, punts) and passes', () => {
    const run = spawnSync(path.join(root, 'build/core/core_test'), { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^PASS: 0 failure\(s\)$/m);
  });
});
