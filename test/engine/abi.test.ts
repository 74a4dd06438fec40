// The JS ↔ native ABI is checked here, once: every number the addon exports in binding.abi (native/node/abi.cc, from
// the lists in native/engine/abi.h and native/io) must equal its TS counterpart, which the TS reference engine uses
// without the addon. A constant changed, added or removed on one side only fails this test.
import { describe, expect, it } from 'vitest';
import {
  ICMP_QUOTE_MAX,
  INJECT_META_WORDS,
  MAX_PACKET,
  ORIGIN_CODE,
  PUNT_META_WORDS,
  VIA_CODE,
  type IoCounter,
} from '../../src/engine/io.js';
import {
  AH_ALG_CODE,
  ESP_SUITE_CODE,
  MAX_REPLAY_WINDOW,
  MIN_SPI,
  SA_FIELD_CODE,
  SA_WORD_NAMES,
  saWordLayout,
} from '../../src/engine/native.js';
import { MAX_POLICY_WRAPS, PolicyActionCode } from '../../src/engine/policy.js';
import { PUNT_REASONS } from '../../src/engine/ref/outcome.js';
import { MIN_SPI_MODE_SPI } from '../../src/engine/ref/sa.js';
import {
  COUNTER_SLOTS,
  DESC_WORDS,
  Desc,
  KEY_BYTES,
  MAX_LAYERS,
  MAX_POLICY_SRC_PREFIXES,
  MAX_SELECTOR_PREFIXES,
  Op,
  Reason,
  SkipAlg,
  VERDICT_COUNTER_BASE,
  Verdict,
  reasonName,
} from '../../src/engine/types.js';
import { SKIP_SPI } from '../../src/wire/skip.js';
import { binding } from '../native/addon.js';

// Every IoStats counter once (tsc refuses a missing or unknown name), to compare with the loop's stat names.
const ioCounters = {
  rxTun: true,
  rxGso: true,
  rxRaw: true,
  rxSkip: true,
  rxAh: true,
  rxEsp: true,
  rxIpip: true,
  rxTooBig: true,
  rxErrors: true,
  txRaw: true,
  txTun: true,
  txGro: true,
  txTooBig: true,
  txFragNeeded: true,
  txErrors: true,
  punted: true,
  puntDropped: true,
  injected: true,
  injectDropped: true,
  rxUdp: true,
  rxUdpGro: true,
  txUdp: true,
  txUdpGso: true,
  rxUnauthenticated: true,
  rxUdpMisaddressed: true,
  rxForeignInterface: true,
  fastPath: true,
  heldForKey: true,
  heldExpired: true,
  txSplit: true,
  niceRefused: true,
  txKernel: true,
} satisfies Record<IoCounter, true>;

/** binding.abi as the TS side has it. */
const tsAbi = {
  ops: Op,
  verdicts: Verdict,
  reasons: Reason,
  desc: Desc,
  policyActions: PolicyActionCode,
  counterSlots: COUNTER_SLOTS,
  verdictCounterBase: VERDICT_COUNTER_BASE,
  descWords: DESC_WORDS,
  maxLayers: MAX_LAYERS,
  maxPolicyWraps: MAX_POLICY_WRAPS,
  maxPolicySrc: MAX_POLICY_SRC_PREFIXES,
  maxSelectorPrefixes: MAX_SELECTOR_PREFIXES,
  ahAlgs: AH_ALG_CODE,
  espSuites: ESP_SUITE_CODE,
  keyBytes: KEY_BYTES,
  skipAlgs: SkipAlg,
  saFields: SA_FIELD_CODE,
  skipSpi: SKIP_SPI,
  minSpi: MIN_SPI,
  maxReplayWindow: MAX_REPLAY_WINDOW,
  ioStats: Object.keys(ioCounters),
  maxPacket: MAX_PACKET,
  icmpQuoteMax: ICMP_QUOTE_MAX,
  puntMetaWords: PUNT_META_WORDS,
  injectMetaWords: INJECT_META_WORDS,
  from: ORIGIN_CODE,
  via: VIA_CODE,
};

describe('JS ↔ native ABI', () => {
  it('binding.abi equals the TS tables, number for number and name for name', () => {
    const { puntReasonSlots, ioStats, puntReasons, saWords, saWordCount, ...native } = binding().abi;
    const { ioStats: tsIoStats, ...ts } = tsAbi;
    expect(native).toStrictEqual(ts);
    // The binding sets stats() fields by name: the order is free, the set is not.
    expect([...ioStats].sort()).toStrictEqual([...tsIoStats].sort());
    // Which reasons are punts, the rest drops (abi.h verdict_for, the reference engine's reject()).
    expect([...puntReasons].sort()).toStrictEqual([...PUNT_REASONS].sort());
    // The loop counts punts per reason code in puntReasonSlots slots; io.ts names each by reasonName.
    expect(reasonName.length).toBeLessThanOrEqual(puntReasonSlots);
    // The reference engine checks SPIs by its own constant.
    expect(MIN_SPI_MODE_SPI).toBe(MIN_SPI);
    // installSa's words: placed where the binding says (native.ts reads it), so only the names must agree, each once.
    expect(Object.keys(saWords).sort()).toStrictEqual([...SA_WORD_NAMES].sort());
    expect([...new Set(Object.values(saWords))].sort((a, b) => Number(a) - Number(b))).toStrictEqual([
      ...Array(saWordCount).keys(),
    ]);
    expect(saWordLayout(binding().abi).count).toBe(SA_WORD_NAMES.length);
  });

  it('an addon whose SA layout misses a field is refused at engine creation, naming it', () => {
    const { abi } = binding();
    const { ttl: _ttl, ...saWords } = abi.saWords;
    expect(() => saWordLayout({ saWords, saWordCount: abi.saWordCount })).toThrow(/ttl.*rebuild/);
  });

  it('the counter layout holds every reason below the verdict counters', () => {
    expect(reasonName.length).toBeLessThanOrEqual(VERDICT_COUNTER_BASE);
    expect(VERDICT_COUNTER_BASE + Math.max(...Object.values(Verdict))).toBeLessThan(COUNTER_SLOTS);
  });
});
