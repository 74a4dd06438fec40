#!/usr/bin/env node
// Runs `mipsec bench e2e` from the built dist/ until the bench CLI dispatches `e2e` itself:
//   npx tsc -p tsconfig.build.json && node test/bench-e2e/run-e2e.mjs [options]
import { runE2e } from '../../dist/bench/e2e/index.js';

process.exitCode = await runE2e(process.argv.slice(2));
