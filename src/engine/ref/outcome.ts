// What one op did to one packet: verdict, reason, deciding SA, next hop and the packet's new place in its slot.
import { Reason, Verdict, type ReasonCode, type ReasonName, type VerdictCode } from '../types.js';

/** The packet's slot: a transform may use buf[start, end) and nothing else. */
export interface Slot {
  buf: Uint8Array;
  start: number;
  end: number;
}

export interface Outcome {
  verdict: VerdictCode;
  reason: ReasonCode;
  sa: number;
  nexthop: number;
  offset: number;
  length: number;
}

/** Reasons the control plane acts on (docs/engine.md §3); every other reason is a drop. */
export const PUNT_REASONS = new Set<ReasonName>([
  'unknown_key',
  'no_route',
  'not_ipsec',
  'no_policy',
  'nexthop_plain',
  'relay_denied',
  'policy_punt',
  'ttl_exceeded',
  'deliver_local',
  'rekey',
]);

/**
 * A drop or punt. offset/length name the datagram being processed when it was decided (after any layers already
 * peeled), so a punted packet can be re-injected as it is.
 */
export function reject(reason: ReasonName, offset: number, length: number, sa = 0): Outcome {
  return {
    verdict: PUNT_REASONS.has(reason) ? Verdict.PUNT : Verdict.DROP,
    reason: Reason[reason],
    sa,
    nexthop: 0,
    offset,
    length,
  };
}

/** A PUNT with a reason that is a drop unless an SA says otherwise (`selector` under selectorMiss 'punt'). */
export function punt(reason: ReasonName, offset: number, length: number, sa = 0): Outcome {
  return { verdict: Verdict.PUNT, reason: Reason[reason], sa, nexthop: 0, offset, length };
}

export function forward(offset: number, length: number, sa: number, nexthop: number): Outcome {
  return { verdict: Verdict.FORWARD, reason: Reason.none, sa, nexthop, offset, length };
}

/** A FORWARD whose sealing brought out SA `sa` to its softPackets (docs/engine.md §4): the reason tells of it. */
export function rekeyDue(offset: number, length: number, sa: number, nexthop: number): Outcome {
  return { verdict: Verdict.FORWARD, reason: Reason.rekey_due, sa, nexthop, offset, length };
}

export function deliver(offset: number, length: number, sa: number): Outcome {
  return { verdict: Verdict.DELIVER, reason: Reason.none, sa, nexthop: 0, offset, length };
}
