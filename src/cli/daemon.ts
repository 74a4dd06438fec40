// mipsec sgw | smn | ha --config FILE: run one role as a daemon on this machine's interfaces.
import { parseArgs } from 'node:util';
import { loadNode, type LoadedNode, type Role } from '../config/index.js';
import { limitMallocArenas } from '../engine/addon.js';
import { startMemoryUpkeep } from '../daemon/memory-upkeep.js';
import { raiseControlThread, WORKER_NICE } from '../daemon/priority.js';
import { NativeEngine } from '../engine/native.js';
import type { Engine } from '../engine/types.js';
import { AttachedHost, InterfaceMismatchError, removeFailClosed } from '../net/linux/attached.js';
import { APPLICATION_PORT } from '../roles/smn/mobile-node.js';
import { DaemonConfigError, runDaemon } from '../daemon/daemon.js';
import { LOG_LEVELS } from '../daemon/log.js';
import { parseListen } from '../daemon/listen.js';
import type { LevelWithSilent } from 'pino';

const help = (role: string) => `usage: mipsec ${role} --config FILE [options]

Runs the ${role.toUpperCase()} role of node config FILE (kind: node, role: ${role}) on this machine's
interfaces (needs root): the interfaces the config names must exist with their addresses in the current
network namespace; all their IPv4 ingress then goes through the role (local services on them stop
answering), ARP stays with the kernel. Everything added (tc filters, TUNs, routes) goes on stop${
  role === 'sgw'
    ? `,
except one rule per interface ('ip rule' priority 32001 iif IFACE blackhole): a stopped gateway fails
closed and forwards nothing from its interfaces until the next start (which keeps the rule under its
redirect) or until 'mipsec sgw --uninstall --config FILE' removes it`
    : ''
}.
Logs are JSON lines on stdout. SIGTERM or SIGINT stops it gracefully${role === 'smn' ? ' (deregistering first)' : ''},
SIGHUP reloads the config. See docs/operations.md.${
  role === 'smn'
    ? `

With the native engine (the default) the SMN also carries this machine's own applications: a TUN 'mipsec-apps' ` +
      `with the home address
(MTU 1200) and policy rules 31001-31004 send what local sockets send through the SMN's layers; it
follows the interface's address (a new address and default route there is a handover). Removed on
stop; after SIGKILL the rules stay and the applications fail closed until the next start.`
    : ''
}

options:
  --config FILE            the node config (required)
  --status-socket PATH     where \`mipsec status\` reaches it (default /run/mipsec/<node>.sock)
  --metrics HOST:PORT      serve Prometheus text on http://HOST:PORT/metrics
  --state-dir DIR          durable state in DIR/<node>/ (default /var/lib/mipsec): replay high-water marks, so a restart
                           does not reopen the replay windows${
                             role === 'ha'
                               ? ', and the binding journal ' +
                                 '(bindings.journal, unless\n                           ha.bindings names a file): ' +
                                 'bindings survive restarts and crashes'
                               : ''
                           }
  --log-level LEVEL        ${LOG_LEVELS.join(' | ')} (default info)
  --engine native|ts       data path (default native; ts forces the TypeScript path)${
    role === 'sgw'
      ? `
  --uninstall              remove what a stopped or killed gateway left on the config's interfaces
                           (the fail-closed rules, a stale tc filter) and exit; forwarding reopens`
      : "\n  --mn-ha-key FILE         MN-HA keys, lines '<home address> <SPI> <key hex>' (mode 0600)"
  }
  --help                   this text

Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad usage or config.`;

/**
 * The host for the current network namespace: the node config's interfaces, attached in place
 * (src/net/linux/attached.ts).
 */
function linuxHost(configPath: string) {
  return (loaded: LoadedNode, engine: Engine): AttachedHost => {
    const { node } = loaded;
    try {
      return AttachedHost.attach({
        name: node.name,
        forwarding: node.role === 'sgw',
        interfaces: node.interfaces,
        dataPath: node.dataPath,
        workerNice: WORKER_NICE,
        failClosed: node.role === 'sgw',
        // The SGW compiles its decisions into its engine's tables: the interfaces' I/O loops run that engine.
        // So does the SMN, and its host's applications get a TUN (the home address) whose loop runs the SMN's table;
        // and so does the HA (a tunnel policy per binding).
        engine: engine instanceof NativeEngine ? engine : undefined,
        applications:
          node.role === 'smn' && engine instanceof NativeEngine
            ? {
                port: APPLICATION_PORT,
                address: node.smn!.homeAddress,
                homeAgent: loaded.map.homeAgent(node.smn!.homeAgent)?.address,
              }
            : undefined,
        // A role that throws on one packet must not take the gateway down: the packet is dropped, the error logged.
        onError: (error) =>
          console.error(
            JSON.stringify({
              level: 50,
              time: Date.now(),
              node: node.name,
              event: 'packet_error',
              msg: (error as Error)?.message ?? String(error),
            }),
          ),
      });
    } catch (err) {
      if (err instanceof InterfaceMismatchError) throw new DaemonConfigError([`${configPath}: ${err.message}`]);
      throw err;
    }
  };
}

/** `mipsec sgw --uninstall`: the fail-closed state of the config's interfaces goes; nothing else is touched. */
async function uninstall(configPath: string): Promise<number> {
  const loaded = await loadNode(configPath);
  if (!loaded.ok) {
    for (const line of loaded.errors) console.error(line);
    return 2;
  }
  const removed = removeFailClosed(loaded.node.interfaces.map((i) => i.name));
  console.log(removed.length ? `removed: ${removed.join('; ')}` : 'nothing to remove');
  return 0;
}

export async function run(role: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        config: { type: 'string' },
        'status-socket': { type: 'string' },
        'state-dir': { type: 'string' },
        metrics: { type: 'string' },
        'log-level': { type: 'string' },
        engine: { type: 'string' },
        'mn-ha-key': { type: 'string' },
        uninstall: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`mipsec ${role}: ${(err as Error).message}\n\n${help(role)}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(help(role));
    return 0;
  }
  const usage = (why: string) => {
    console.error(`mipsec ${role}: ${why}\n\n${help(role)}`);
    return 2;
  };
  if (!v.config) return usage('--config FILE is required');
  if (v['log-level'] && !LOG_LEVELS.includes(v['log-level'] as LevelWithSilent))
    return usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  if (v.engine && v.engine !== 'native' && v.engine !== 'ts') return usage('--engine must be native or ts');
  if (role === 'sgw' && v['mn-ha-key']) return usage('--mn-ha-key is for smn and ha only');
  if (v.uninstall) return role === 'sgw' ? uninstall(v.config) : usage('--uninstall is for sgw only');
  let metrics;
  try {
    metrics = v.metrics ? parseListen(v.metrics) : undefined;
  } catch (err) {
    return usage((err as Error).message);
  }
  // One malloc arena for the whole daemon: with one per I/O worker, RSS grew all along a 30-min soak under key churn
  // (gwB +12 % in 8 min; with one arena +6.6 %, starting 8 MiB lower, TCP unchanged). Threads Node started before
  // this keep theirs: MALLOC_ARENA_MAX=1 in the daemon's environment covers them (../daemon/process-env.ts). Then
  // once a minute the upkeep collects what key churn left in V8's old space and trims the arenas (memory-upkeep.ts).
  limitMallocArenas(1);
  const upkeep = startMemoryUpkeep();
  const raised = raiseControlThread();
  if ('error' in raised)
    console.error(
      JSON.stringify({
        level: 40,
        time: Date.now(),
        event: 'control_priority',
        msg: `control thread: ${raised.error}`,
      }),
    );
  try {
    const daemon = await runDaemon({
      configPath: v.config,
      role: role as Role,
      host: linuxHost(v.config),
      engine: v.engine as 'native' | 'ts' | undefined,
      mnHaKeyFile: v['mn-ha-key'],
      statusSocket: v['status-socket'],
      stateDir: v['state-dir'] ?? '/var/lib/mipsec',
      metrics,
      logLevel: v['log-level'] as LevelWithSilent | undefined,
      handleSignals: true,
    });
    await daemon.stopped;
    return 0;
  } catch (err) {
    if (err instanceof DaemonConfigError) {
      for (const line of err.lines) console.error(line);
      return 2;
    }
    console.error(`mipsec ${role}: ${(err as Error).message}`);
    return 1;
  } finally {
    upkeep.stop();
  }
}
