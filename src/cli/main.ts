// The mipsec command: dispatches to one module per command group, loaded only when used.

/** A command module: runs with the arguments after its name, returns the exit code. */
export interface CommandModule {
  run(name: string, args: string[]): Promise<number>;
}

interface CommandEntry {
  summary: string;
  load: () => Promise<CommandModule>;
}

const commands: Record<string, CommandEntry> = {
  keygen: { summary: 'write a new X25519 identity key pair', load: () => import('./keys.js') },
  ca: { summary: 'ca init: create an organization CA (Ed25519)', load: () => import('./keys.js') },
  cert: {
    summary: 'cert issue | show | verify: certificates binding SKIP names to keys',
    load: () => import('./keys.js'),
  },
  'check-config': { summary: 'validate node configs and the network map', load: () => import('./config.js') },
  sgw: { summary: 'run a security gateway daemon from a node config', load: () => import('./daemon.js') },
  smn: { summary: 'run a security mobile node daemon from a node config', load: () => import('./daemon.js') },
  ha: { summary: 'run a home agent daemon from a node config', load: () => import('./daemon.js') },
  status: { summary: 'SAs, bindings, counters and rates of a running daemon', load: () => import('./status.js') },
  lab: {
    summary: "run the draft's cases end to end: in network namespaces as root, else in memory",
    load: () => import('./lab.js'),
  },
  bench: {
    summary: 'bench micro | e2e: data-path micro-benchmark; end-to-end against other VPNs',
    load: () => import('./bench.js'),
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: mipsec <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'Run `mipsec <command> --help` for the options of one command.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const entry = commands[name];
  if (!entry) {
    console.error(`mipsec: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(name, rest);
}
