// What a case of `mipsec lab` is: what it runs with (CaseContext) and what it reports (CaseResult). The cases
// themselves are listed in cases.ts.
import type { EngineImpl } from '../engine/index.js';
import type { Network } from '../net/types.js';
import type { MoveFigure } from './handover.js';
import type { LabRuntime } from './scenario.js';
import type { World } from './world.js';

export interface CaseResult {
  id: string;
  title: string;
  /** The draft section as the draft names it. */
  section: string;
  pass: boolean;
  /** Link → the distinct "sender > receiver: stack" lines seen. */
  stacks: Record<string, string[]>;
  /** What did not hold (empty when pass). */
  failures: string[];
  /** Handover: per move. */
  moves?: MoveFigure[];
  /** Set by the real-network extras (measure.ts): ICMP echo RTT and a TCP transfer of TCP_SECONDS. */
  rttMs?: number;
  tcpMbps?: number;
  /** Set with tcpMbps: the role nodes' I/O loop counters over the TCP phase. */
  tcpDataPath?: DataPathFigures;
  /** Why a figure is missing, e.g. no applications on a path that carries UDP only. */
  notes?: string[];
  durationMs: number;
}

/**
 * What the role nodes' I/O loops did with the packets of one phase (IoStats deltas, summed over every role node):
 * carried out natively (fastPath: FORWARD, DELIVER, DROP without JS) or punted to JS (slowPath, by reason).
 */
export interface DataPathFigures {
  fastPath: number;
  slowPath: number;
  /** slowPath by punt reason (reasons punted at least once). */
  slowPathReasons: Record<string, number>;
  /** The same per role node (SGWs, SMN, HA). */
  nodes: Record<string, { fastPath: number; slowPath: number }>;
}

/** Where the SMN talks to a correspondent: the real-network extras ping and stream between the two. */
export interface AppPath {
  /** Host name and address the applications start from (the SMN and the address it uses towards the peer). */
  from: string;
  fromAddress: string;
  /** Host name of the correspondent. */
  peer: string;
  peerAddress: string;
}

export interface CaseContext<N extends Network> {
  engine: EngineImpl;
  runtime: LabRuntime<N>;
  /**
   * Called with the world while it is still up, after the case's own checks (real traffic, captures).
   * Returns true to leave the world running (`--keep`): its roles stay up until the process ends.
   */
  extras?: (network: N, result: CaseResult, path: AppPath | undefined, world?: World<Network>) => Promise<boolean>;
}

export interface LabCase {
  id: string;
  section: string;
  title: string;
  run<N extends Network>(ctx: CaseContext<N>): Promise<CaseResult>;
}
