// Loading and checking mipsec YAML files. Each file says what it is in a top-level `kind:`
// (network-map | node), so a mixed list such as a directory glob can be checked in one go.
// Every message names the file and the field: "<file>: <field path>: <what is wrong and a fix>".
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { TopologyMap } from '../topology/map.js';
import { pathText, show } from './fields.js';
import { NETWORK_MAP_KIND, networkMapFromDocument } from './network.js';
import { manualKeyCommand, readManualKey, type ManualKeyPaths } from './manual-sa.js';
import { NODE_KIND, crossCheck, nodeFromDocument, type NodeConfig } from './node.js';

/** Config files are small; anything larger is a mistake (or an attack on the parser). */
export const MAX_CONFIG_BYTES = 1 << 20;
const MAX_YAML_ALIASES = 100;
/** The CA certificate's name inside the directory `mipsec ca init --out DIR` makes. */
const CA_CERT_FILE = 'ca.crt';

export interface FileReport {
  file: string;
  kind?: typeof NETWORK_MAP_KIND | typeof NODE_KIND;
  /** One line saying what the file describes, when it is valid. */
  summary?: string;
  errors: string[];
  warnings: string[];
}

export type Loaded<T> = ({ ok: true; warnings: string[] } & T) | { ok: false; errors: string[] };

/** Reads and parses one YAML file; errors are complete "<file>: ..." lines. */
async function readYaml(file: string): Promise<{ ok: true; doc: unknown } | { ok: false; errors: string[] }> {
  let text: string;
  try {
    const info = await stat(file);
    if (!info.isFile()) return { ok: false, errors: [`${file}: not a regular file; give the path of a YAML file`] };
    if (info.size > MAX_CONFIG_BYTES)
      return {
        ok: false,
        errors: [`${file}: ${info.size} bytes is too large for a config file (limit ${MAX_CONFIG_BYTES})`],
      };
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      errors: [
        `${file}: ${code === 'ENOENT' ? 'file not found; check the path' : `cannot read: ${(err as Error).message}`}`,
      ],
    };
  }
  const doc = parseDocument(text, { schema: 'core' });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const what = e.message.split(' at line ')[0].split('\n')[0];
        return `${file}: ${at ? `line ${at.line}, column ${at.col}: ` : ''}not valid YAML: ${what}`;
      }),
    };
  }
  try {
    return { ok: true, doc: doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) };
  } catch (err) {
    return { ok: false, errors: [`${file}: not valid YAML: ${(err as Error).message}`] };
  }
}

function kindOf(doc: unknown): string | undefined {
  return doc !== null && typeof doc === 'object' && !Array.isArray(doc)
    ? ((doc as Record<string, unknown>).kind as string | undefined)
    : undefined;
}

function kindError(file: string, doc: unknown, expected: string[]): string {
  const expectation = `${expected.join(' or ')} (every mipsec YAML file starts with it, e.g. kind: ${expected[0]})`;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    return `${file}: (top level): expected a mapping starting with kind: ${expectation}, got ${show(doc)}`;
  const kind = (doc as Record<string, unknown>).kind;
  const got = kind === undefined ? '' : `, got ${show(kind)}`;
  return `${file}: kind: ${kind === undefined ? 'missing; expected' : `expected`} ${expectation}${got}`;
}

/** Loads a network map file. */
export async function loadNetworkMap(file: string): Promise<Loaded<{ map: TopologyMap }>> {
  const read = await readYaml(file);
  if (!read.ok) return read;
  if (kindOf(read.doc) !== NETWORK_MAP_KIND)
    return { ok: false, errors: [kindError(file, read.doc, [NETWORK_MAP_KIND])] };
  const built = networkMapFromDocument(read.doc);
  if (!built.ok) return { ok: false, errors: built.issues.map((i) => `${file}: ${pathText(i.path)}: ${i.message}`) };
  return { ok: true, map: built.map, warnings: [] };
}

/**
 * A node config with its network map loaded and cross-checked; identity paths resolved against the file's directory.
 */
export interface LoadedNode {
  node: NodeConfig;
  map: TopologyMap;
  /** Absolute paths of the network map and the identity files. */
  paths: {
    network: string;
    key?: string;
    cert?: string;
    ca?: string;
    manualKeys?: ManualKeyPaths[];
    bindings?: string;
  };
}

/** Loads a node config and the network map it names. Missing identity files are warnings. */
export async function loadNode(
  file: string,
  maps = new Map<string, Promise<Loaded<{ map: TopologyMap }>>>(),
): Promise<Loaded<LoadedNode>> {
  const read = await readYaml(file);
  if (!read.ok) return read;
  if (kindOf(read.doc) !== NODE_KIND) return { ok: false, errors: [kindError(file, read.doc, [NODE_KIND])] };
  const checked = nodeFromDocument(read.doc);
  const fail = (issues: { path: (string | number)[]; message: string }[]) => ({
    ok: false as const,
    errors: issues.map((i) => `${file}: ${pathText(i.path)}: ${i.message}`),
  });
  if (!checked.ok) return fail(checked.issues);
  const node = checked.node;

  const here = dirname(file);
  const networkPath = resolve(here, node.network);
  if (!existsSync(networkPath))
    return fail([
      {
        path: ['network'],
        message:
          `${node.network} not found (looked in ${relative('.', here) || '.'}); ` +
          `give the network map's path relative to this file`,
      },
    ]);
  if (!maps.has(networkPath)) maps.set(networkPath, loadNetworkMap(networkPath));
  const loadedMap = await maps.get(networkPath)!;
  if (!loadedMap.ok) {
    const first = withoutFile(loadedMap.errors[0], networkPath);
    return fail([
      {
        path: ['network'],
        message:
          `${node.network} is not a valid network map (${loadedMap.errors.length} ` +
          `error${loadedMap.errors.length > 1 ? 's' : ''}, first: ${first}); ` +
          `run mipsec check-config on it`,
      },
    ]);
  }
  const map = loadedMap.map;
  const cross = crossCheck(node, map, node.network);
  if (cross.length > 0) return fail(cross);

  const paths: LoadedNode['paths'] = { network: networkPath };
  if (node.ha?.bindings) paths.bindings = resolve(here, node.ha.bindings);
  const warnings: string[] = [];
  if (node.identity) {
    for (const field of ['key', 'cert', 'ca'] as const) {
      paths[field] = resolve(here, node.identity[field]);
      if (!existsSync(paths[field])) {
        warnings.push(
          `${file}: warning: identity.${field}: ${node.identity[field]} does not exist yet; create it with: ` +
            `${identityCommand(field, node, map, here)}`,
        );
      }
    }
  }
  if (node.manualSas) {
    const keyErrors: { path: (string | number)[]; message: string }[] = [];
    paths.manualKeys = node.manualSas.map((sa, i) => {
      const keys = { out: resolve(here, sa.keyOut), in: resolve(here, sa.keyIn) };
      for (const [field, path] of [
        ['keyOut', keys.out],
        ['keyIn', keys.in],
      ] as const) {
        const given = sa[field];
        if (!existsSync(path)) {
          warnings.push(
            `${file}: warning: manualSas[${i}].${field}: ${given} does not exist yet; ` +
              `create it (the peer's ${field === 'keyOut' ? 'keyIn' : 'keyOut'} is the same file) ` +
              `with: ${manualKeyCommand(relative('.', path) || given, sa.suite)}`,
          );
          continue;
        }
        try {
          readManualKey(path, sa.suite).fill(0);
        } catch (err) {
          keyErrors.push({ path: ['manualSas', i, field], message: (err as Error).message });
        }
      }
      return keys;
    });
    if (keyErrors.length > 0) return fail(keyErrors);
  }
  return { ok: true, node, map, paths, warnings };
}

/**
 * The mipsec command (src/cli/keys.ts) that creates a missing identity file, with paths as seen from the working
 * directory.
 */
function identityCommand(field: 'key' | 'cert' | 'ca', node: NodeConfig, map: TopologyMap, here: string): string {
  const identity = node.identity!;
  const at = (p: string) => relative('.', resolve(here, p)) || p;
  // `mipsec ca init --out DIR` writes DIR/ca.key and DIR/ca.crt; certificates are issued from DIR.
  const caDir = dirname(at(identity.ca));
  const caNamed = basename(identity.ca) === CA_CERT_FILE;
  // keygen and cert issue write into an existing directory only.
  const makeDir = (file: string) =>
    existsSync(dirname(resolve(here, file))) ? '' : `mkdir -p ${dirname(at(file))} && `;
  if (field === 'key') return `${makeDir(identity.key)}mipsec keygen --out ${at(identity.key)}`;
  if (field === 'ca') {
    return caNamed
      ? `mipsec ca init --out ${caDir}`
      : `mipsec ca init --out DIR, then set identity.ca to DIR/${CA_CERT_FILE}`;
  }
  const name = node.role === 'sgw' ? `sgw:${map.sgw(node.name)!.outside}` : `smn:${node.smn!.homeAddress}`;
  return (
    `${makeDir(identity.cert)}mipsec cert issue --ca ${caNamed ? caDir : 'DIR'} ` +
    `--name ${name} --pub ${at(identity.key)}.pub --out ${at(identity.cert)}`
  );
}

/** Checks each file by its kind; node files are checked against the network maps they name. */
export async function checkFiles(files: string[]): Promise<FileReport[]> {
  const maps = new Map<string, Promise<Loaded<{ map: TopologyMap }>>>();
  const reports: FileReport[] = [];
  for (const file of files) {
    const read = await readYaml(file);
    if (!read.ok) {
      reports.push({ file, errors: read.errors, warnings: [] });
      continue;
    }
    const kind = kindOf(read.doc);
    if (kind === NETWORK_MAP_KIND) {
      const networkPath = resolve(file);
      if (!maps.has(networkPath)) maps.set(networkPath, loadNetworkMap(networkPath));
      const loaded = await maps.get(networkPath)!;
      reports.push(
        loaded.ok
          ? { file, kind, errors: [], warnings: [], summary: mapSummary(loaded.map) }
          : { file, kind, errors: loaded.errors.map((e) => `${file}: ${withoutFile(e, networkPath)}`), warnings: [] },
      );
    } else if (kind === NODE_KIND) {
      const loaded = await loadNode(file, maps);
      reports.push(
        loaded.ok
          ? {
              file,
              kind,
              errors: [],
              warnings: loaded.warnings,
              summary: `node ${loaded.node.name}, role ${loaded.node.role}`,
            }
          : { file, kind, errors: loaded.errors, warnings: [] },
      );
    } else {
      reports.push({ file, errors: [kindError(file, read.doc, [NODE_KIND, NETWORK_MAP_KIND])], warnings: [] });
    }
  }
  return reports;
}

/** Maps are cached by absolute path; their messages are shown with the name the user gave. */
function withoutFile(message: string, file: string): string {
  return message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
}

function mapSummary(map: TopologyMap): string {
  const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  return `network-map ${map.name}: ${count(map.sites.length, 'site')}, ${count(map.sgws.length, 'SGW')} (Border: ${
    map
      .borderSgws()
      .map((s) => s.name)
      .join(', ') || 'none'
  }), ${count(map.homeAgents.length, 'HA')}, ${count(map.hosts.length, 'host')}`;
}
