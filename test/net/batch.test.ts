// runBatchSync: several ip/tc commands in one process, in a namespace this test makes (root).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, NetnsSession, randomSuffix, runBatchSync, runCommandSync } from '../../src/net/netns.js';
import { canRunNetns } from '../io/topology.js';

describe('runBatchSync arguments', () => {
  it('refuses an argument with spaces or an empty one before running anything', () => {
    expect(() => runBatchSync('ip', [['rule', 'add', 'pref 5']])).toThrow(/empty or has spaces/);
    expect(() => runBatchSync('tc', [['qdisc', '']])).toThrow(/empty or has spaces/);
    expect(runBatchSync('ip', [])).toBe('');
  });
});

describe.skipIf(!canRunNetns)('runBatchSync in a namespace', () => {
  const session = new NetnsSession(`mb-${randomSuffix()}`);
  let ns = '';
  const rulesAt = (pref: number) =>
    (JSON.parse(runCommandSync('ip', ['-n', ns, '-j', 'rule', 'show', 'pref', String(pref)]) || '[]') as unknown[])
      .length;

  beforeAll(async () => {
    ns = await session.addNamespace('a');
  });
  afterAll(() => session.close());

  it('runs every command in order, in the namespace given', () => {
    runBatchSync(
      'ip',
      [
        ['rule', 'add', 'pref', '31501', 'iif', 'lo', 'blackhole'],
        ['rule', 'add', 'pref', '31502', 'from', '10.9.9.9/32', 'lookup', 'main'],
        ['link', 'set', 'dev', 'lo', 'up'],
      ],
      { netns: ns },
    );
    expect([rulesAt(31501), rulesAt(31502)]).toEqual([1, 1]);
    expect(runCommandSync('ip', ['-j', 'rule', 'show', 'pref', '31501'])).not.toContain('31501');
  });

  it('stops at the first command that fails and names it; -force runs the rest and still fails', () => {
    let error: unknown;
    try {
      runBatchSync(
        'ip',
        [
          ['rule', 'add', 'pref', '31503', 'iif', 'lo', 'blackhole'],
          ['rule', 'add', 'pref', '31501', 'iif', 'lo', 'blackhole'], // already there
          ['rule', 'add', 'pref', '31504', 'iif', 'lo', 'blackhole'],
        ],
        { netns: ns },
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).command).toBe('ip rule add pref 31501 iif lo blackhole');
    expect([rulesAt(31503), rulesAt(31504)]).toEqual([1, 0]);

    expect(() =>
      runBatchSync(
        'ip',
        [
          ['rule', 'del', 'pref', '31599'], // none there
          ['rule', 'del', 'pref', '31503'],
          ['rule', 'del', 'pref', '31501'],
        ],
        { netns: ns, continueOnError: true },
      ),
    ).toThrow(CommandError);
    expect([rulesAt(31503), rulesAt(31501)]).toEqual([0, 0]);
  });

  it('tc: an ingress qdisc and a filter in one process', () => {
    runCommandSync('ip', ['-n', ns, 'link', 'add', 'mb0', 'type', 'veth', 'peer', 'name', 'mb1']);
    runBatchSync(
      'tc',
      [
        ['qdisc', 'add', 'dev', 'mb0', 'ingress'],
        ['filter', 'add', 'dev', 'mb0', 'ingress', 'pref', '7', 'protocol', 'ip', 'u32', 'match', 'u32', '0', '0'],
      ],
      { netns: ns },
    );
    expect(runCommandSync('tc', ['-n', ns, 'filter', 'show', 'dev', 'mb0', 'ingress'])).toContain('pref 7 ');
  });
});
