// The lab's TCP-phase figures: what each role node's I/O loops did between two snapshots, by node and by reason.
import { describe, expect, it } from 'vitest';
import { dataPathDelta, parseIperfMbps, tcpFigureFailure } from '../../src/lab/measure.js';
import type { DataPathStats } from '../../src/net/linux/interface-loops.js';

function stats(fastPath: number, puntReasons: DataPathStats['puntReasons']): DataPathStats {
  const punted = Object.values(puntReasons).reduce((a, b) => a + (b ?? 0), 0);
  return { counters: { punted }, fastPath, punted, puntReasons };
}

describe('dataPathDelta', () => {
  it("sums the nodes and keeps each punting node's reasons", () => {
    const before = new Map([
      ['sgw0', stats(10, { no_policy: 2 })],
      ['smn', stats(5, { not_ipsec: 1 })],
    ]);
    const after = new Map([
      ['sgw0', stats(110, { no_policy: 2 })],
      ['smn', stats(65, { not_ipsec: 4, deliver_local: 3 })],
    ]);
    expect(dataPathDelta(before, after)).toEqual({
      fastPath: 160,
      slowPath: 6,
      slowPathReasons: { not_ipsec: 3, deliver_local: 3 },
      nodes: {
        sgw0: { fastPath: 100, slowPath: 0 },
        smn: { fastPath: 60, slowPath: 6, slowPathReasons: { not_ipsec: 3, deliver_local: 3 } },
      },
    });
  });
});

describe('the TCP figure', () => {
  it('fails a case whose stream carried nothing (iperf3 reports 0 when every full-sized segment is lost)', () => {
    const report = (bps: number) => JSON.stringify({ end: { sum_received: { bits_per_second: bps } } });
    expect(parseIperfMbps(report(0))).toBe(0);
    expect(tcpFigureFailure(parseIperfMbps(report(0)))).toMatch(/^TCP stalled: 0\.000 Mbit\/s/);
    expect(tcpFigureFailure(parseIperfMbps(report(1_458_000_000)))).toBeUndefined();
    expect(tcpFigureFailure(parseIperfMbps('not json'))).toBe('iperf3: no receiver rate in its report');
  });
});
