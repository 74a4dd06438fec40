// Handover figures: a continuous flow from the SMN while it moves; per move, the probes lost and
// the virtual time until echoes come back again.
import type { Flow } from './traffic.js';

export interface MoveFigure {
  move: string;
  /** Probes sent from shortly before the move until the next one that never got an echo. */
  lost: number;
  sent: number;
  /** Virtual ms from the move to the first echo of a probe sent after it; undefined if none came. */
  resumeMs?: number;
}

/** Probes in flight when the interface moves belong to that move: the window starts `inFlightMs` before it. */
export function moveFigures(
  flow: Flow,
  moves: { name: string; at: number }[],
  end: number,
  inFlightMs = 20,
): MoveFigure[] {
  const echoed = new Set(flow.echoes.map((e) => e.seq));
  return moves.map((m, i) => {
    const from = m.at - inFlightMs;
    const to = (moves[i + 1]?.at ?? end) - inFlightMs;
    const inWindow = [...flow.sentAt].filter(([, at]) => at >= from && at < to).map(([seq]) => seq);
    const after = new Set([...flow.sentAt].filter(([, at]) => at >= m.at && at < to).map(([seq]) => seq));
    const first = flow.echoes.find((e) => after.has(e.seq));
    return {
      move: m.name,
      sent: inWindow.length,
      lost: inWindow.filter((s) => !echoed.has(s)).length,
      resumeMs: first && first.at - m.at,
    };
  });
}
