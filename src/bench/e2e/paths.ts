// What every measured path provides: how to read its version, how to bring it up between gwA and
// gwB, which processes carry its data plane (their CPU time is counted), and how to take it down.
import type { ManagedProcess } from '../../net/netns.js';
import type { Topology } from './topology.js';

export const PATH_NAMES = [
  'veth',
  'mipsec-skip',
  'mipsec-spi',
  'mipsec-sgwd',
  'mipsec-ts',
  'wireguard-go',
  'openvpn',
  'strongswan',
] as const;
export type PathName = (typeof PATH_NAMES)[number];

/** The userspace VPNs mipsec is compared against. */
export const PEER_NAMES: readonly PathName[] = ['wireguard-go', 'openvpn', 'strongswan'];

export interface PathContext {
  topo: Topology;
  /** A private directory for this path's keys and configs (mode 0700, removed at the end). */
  workdir: string;
}

export interface ActivePath {
  /** The processes whose utime+stime is this path's CPU cost (none for plain forwarding). */
  processes: readonly ManagedProcess[];
  /** Stops the processes and removes the routes and devices the path added. */
  teardown(): Promise<void>;
  /**
   * mipsec daemons: packets their I/O loops carried without JS and packets punted to JS so far, summed over the nodes.
   */
  dataPathCounts?: () => Promise<DataPathCounts>;
}

export interface DataPathCounts {
  fastPath: number;
  slowPath: number;
}

export interface PathDriver {
  name: PathName;
  /** What exactly runs, for the table: protocol, cipher, mode. */
  mode: string;
  /** The version of what runs; rejects with the reason when it is not installed. */
  version(): Promise<string>;
  setup(ctx: PathContext): Promise<ActivePath>;
  /** What the first packet of a new key costs on this path (ms, median), measured once per run. */
  firstPacket?: (ctx: PathContext) => Promise<FirstPacket>;
}

/**
 * The first packet of a new key: at the receiving gateway (arrival to delivery) and at the sending one (to sealed); and
 * a packet whose key is in place, as the receiving gateway's figure is measured.
 */
export interface FirstPacket {
  median_ms: number;
  samples: number;
  /** null when the sender's capture paired no packet. */
  send_median_ms: number | null;
  send_samples: number;
  /** A packet under a key in place, arrival to delivery, at the other gateway in the same run; null as above. */
  established_median_ms: number | null;
  established_samples: number;
  /** How many new keys the receiving gateway's engine keyed itself (successor keys, docs/engine.md §4.3). */
  engine_keyed: number;
}

/**
 * Polls `check` every 100 ms until it returns true; fails with `what` (and the daemons' output) on timeout or a
 * daemon's exit.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  daemons: readonly ManagedProcess[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = daemons.find((d) => !d.running);
    if (dead)
      throw new Error(
        `${dead.label} exited (${describeExit(dead)}) while waiting for ${what}: ${tail(dead.recentOutput())}`,
      );
    if (await check()) return;
    if (Date.now() > deadline) {
      const logs = daemons.map((d) => `${d.label}: ${tail(d.recentOutput())}`).join(' / ');
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${logs ? ` (${logs})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function describeExit(p: ManagedProcess): string {
  const s = p.exitStatus;
  if (!s) return 'not started';
  return s.signal ? `signal ${s.signal}` : `exit ${s.code}`;
}

/** The last few lines of a daemon's output, for an error message. */
export function tail(text: string, lines = 4): string {
  const kept = text.trim().split('\n').slice(-lines).join(' | ');
  return kept || '(no output)';
}
