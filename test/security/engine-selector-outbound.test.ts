// selectorMiss { outbound } (docs/engine.md §4) as an attacker sees it: an SMN that holds a valid End-End SA with
// SGW0 must not get arbitrary datagrams sealed toward SGW1 or sent on. Each rule has a case that breaks without it:
// the SA's src selectors bind the inner source to the peer (a spoofed Site 0 source or the SMN's care-of address is
// punted to the policy, even where the table's protect policy would admit that source), only `protect` seals, and
// nothing leaves in clear or re-enters INBOUND.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type Policy } from '../../src/engine/index.js';
import { datagram, endSaPair, engineWith, hex, nexthopSaPair, runOne, closedAfterEach } from '../engine/fixtures.js';

const track = closedAfterEach();

const SMN_COA = '198.18.7.100';
const HOME = '10.0.0.100';
const SGW0 = '198.18.0.1';
const SGW1 = '198.18.1.1';
const TABLE = 9;

describe.each(['native', 'ts'] as const)(
  '[%s] selectorMiss { outbound }: what an SMN with a valid SA cannot do',
  (impl) => {
    const smn = endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 81, src: SMN_COA, dst: SGW0 });
    const end = endSaPair({ suite: 'aes128gcm', mode: 'skip', id: 82, src: SGW0, dst: SGW1 });
    const hop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'skip', id: 83, src: SGW0, dst: SGW1 });

    function gateway(policies: Policy[]) {
      const gw = track(
        engineWith(
          impl,
          [
            { ...smn.in, selectors: { src: [`${HOME}/32`], dst: ['10.0.0.0/24'] }, selectorMiss: { outbound: TABLE } },
            end.out,
            hop.out,
          ],
          { local: [SGW0] },
        ),
      );
      gw.setPolicies(policies);
      const tx = track(engineWith('ts', [smn.out]));
      return (inner: Uint8Array) => runOne(gw, Op.INBOUND, runOne(tx, Op.ENCAP, inner, smn.out.id).packet);
    }

    it('a spoofed inner source is punted to the policy, not sealed, though the protect policy takes any source', () => {
      const send = gateway([{ table: TABLE, prefix: '10.1.0.0/16', sa: end.out.id, wrap: [hop.out.id] }]);
      for (const src of ['10.0.0.55', SMN_COA, '10.1.0.10', '0.0.0.0']) {
        const inner = datagram(100, { src, dst: '10.1.0.10' });
        const r = send(inner);
        expect([src, r.verdict, r.reason, r.sa, hex(r.packet)]).toEqual([
          src,
          Verdict.PUNT,
          Reason.selector,
          smn.in.id,
          hex(inner),
        ]);
      }
      expect(send(datagram(100, { src: HOME, dst: '10.1.0.10' })).verdict, 'its own source is sealed').toBe(
        Verdict.FORWARD,
      );
    });

    it("the SA's src selectors bind even where a policy's src list admits the whole site", () => {
      const send = gateway([
        { table: TABLE, prefix: '10.1.0.0/16', src: ['10.0.0.0/24'], sa: end.out.id, wrap: [hop.out.id] },
      ]);
      expect(send(datagram(100, { src: '10.0.0.55', dst: '10.1.0.10' })).reason).toBe(Reason.selector);
      expect(send(datagram(100, { src: HOME, dst: '10.1.0.10' })).verdict).toBe(Verdict.FORWARD);
    });

    it('a destination no protect policy covers is punted: not sealed, not passed, not sent to SGW0 itself', () => {
      const send = gateway([
        { table: TABLE, prefix: '10.1.0.0/16', sa: end.out.id, wrap: [hop.out.id] },
        { table: TABLE, prefix: '0.0.0.0/0', sa: 0, action: 'pass' },
        { table: TABLE, prefix: '10.7.0.0/16', sa: 0, action: 'bypass' },
        { table: TABLE, prefix: `${SGW0}/32`, sa: 0, action: 'inbound' },
      ]);
      for (const dst of ['8.8.8.8', '10.7.0.1', SGW0, '10.2.0.1']) {
        const inner = datagram(100, { src: HOME, dst });
        const r = send(inner);
        expect([dst, r.verdict, r.reason, hex(r.packet)]).toEqual([dst, Verdict.PUNT, Reason.selector, hex(inner)]);
      }
    });

    it("another table's policies never decide (only the SA's own table)", () => {
      const send = gateway([{ table: TABLE + 1, prefix: '10.1.0.0/16', sa: end.out.id, wrap: [hop.out.id] }]);
      expect(send(datagram(100, { src: HOME, dst: '10.1.0.10' })).reason).toBe(Reason.selector);
    });
  },
);
