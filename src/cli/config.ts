// mipsec check-config FILE...: validates node configs and network maps (one line per file).
import { parseArgs } from 'node:util';
import { checkFiles } from '../config/load.js';

const HELP = `usage: mipsec check-config [--json] FILE...

Checks mipsec YAML files: network maps (kind: network-map) and node configs
(kind: node, checked against the network map they name). Files of both kinds
may be mixed, e.g. mipsec check-config examples/figure6/*

Prints one line per file: "FILE: ok (...)" or one "FILE: FIELD: problem" line
per error; missing identity files are warnings with the command that makes
them. Exits 1 when any file has an error, 2 on bad usage.

options:
  --json   print the reports as JSON instead
  --help   this text`;

export async function run(_name: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (err) {
    console.error(`mipsec check-config: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  // A shell glob also expands to the README and other non-YAML files next to the configs.
  const isYaml = (f: string) => /\.ya?ml$/i.test(f);
  const files = parsed.positionals.filter(isYaml);
  if (!parsed.values.json)
    for (const f of parsed.positionals.filter((f) => !isYaml(f)))
      console.log(`${f}: skipped (not a .yaml or .yml file)`);
  if (files.length === 0) {
    console.error(`mipsec check-config: no .yaml or .yml files given\n\n${HELP}`);
    return 2;
  }
  const reports = await checkFiles(files);
  if (parsed.values.json) {
    console.log(JSON.stringify(reports, null, 2));
  } else {
    for (const r of reports) {
      if (r.errors.length === 0) console.log(`${r.file}: ok (${r.summary})`);
      for (const w of r.warnings) console.log(w);
      for (const e of r.errors) console.error(e);
    }
    const bad = reports.filter((r) => r.errors.length > 0).length;
    const warned = reports.reduce((n, r) => n + r.warnings.length, 0);
    console.log(
      `${reports.length} file${reports.length === 1 ? '' : 's'} checked: ` +
        `${reports.length - bad} ok, ${bad} with errors, ${warned} warning${warned === 1 ? '' : 's'}`,
    );
  }
  return reports.some((r) => r.errors.length > 0) ? 1 : 0;
}
