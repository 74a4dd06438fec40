import { describe, expect, it } from 'vitest';
import { parseProberLines } from '../../src/bench/overload/status-prober.js';

describe('status prober output', () => {
  it('collects each daemon’s latencies and unanswered requests, ignoring the closing line and noise', () => {
    const out = 'sgw0 3.50\nsgw1 failed\nsgw1 12.25\nsgw0 0.75\nwarning: something\ndone\n';
    expect(parseProberLines(out)).toEqual({
      sgw0: { ms: [3.5, 0.75], failed: 0 },
      sgw1: { ms: [12.25], failed: 1 },
    });
  });

  it('gives nothing for a daemon that never answered a line', () => {
    expect(parseProberLines('done\n')).toEqual({});
  });
});
