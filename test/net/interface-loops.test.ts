// Which punts of a host's I/O loops carry engine context (CONTRACT.md, Host side): those go to the role's
// onEnginePunt handler, every other one takes the host's input path as it arrived.
import { describe, expect, it } from 'vitest';
import type { ReasonName } from '../../src/engine/types.js';
import { hasEngineContext } from '../../src/net/linux/interface-loops.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { probe } from '../../src/lab/traffic.js';

const OWN = ipToU32('10.1.0.1');
const isOwn = (a: number) => a === OWN;
const toUs = probe('10.9.0.9', '10.1.0.1', 1);
const elsewhere = probe('10.9.0.9', '10.2.0.7', 1);
const punt = (reason: ReasonName, sa = 0, packet = toUs) => ({ packet, reason, sa });

describe('hasEngineContext', () => {
  it('an SA authenticated it: context, whatever the reason', () => {
    for (const reason of ['no_policy', 'unknown_key', 'not_ipsec', 'ttl_exceeded'] as const)
      expect(hasEngineContext(punt(reason, 7), isOwn)).toBe(true);
  });

  it('reasons the engine gives only after opening, refusing or parsing a layer addressed to us: context', () => {
    for (const reason of [
      'nexthop_plain',
      'no_route',
      'relay_denied',
      'selector',
      'deliver_local',
      'unknown_key',
    ] as const)
      expect(hasEngineContext(punt(reason), isOwn)).toBe(true);
  });

  it('first-layer punts carry the packet as it arrived: no context', () => {
    for (const reason of ['no_policy', 'policy_punt', 'ttl_exceeded', 'fragment'] as const)
      expect(hasEngineContext(punt(reason), isOwn)).toBe(false);
  });

  it("not_ipsec: a packet to the host's own address was read as it is; one addressed elsewhere was peeled out of IP-in-IP", () => {
    expect(hasEngineContext(punt('not_ipsec'), isOwn)).toBe(false);
    expect(hasEngineContext(punt('not_ipsec', 0, elsewhere), isOwn)).toBe(true);
  });
});
