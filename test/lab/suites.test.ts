// `mipsec lab --suites`, CI-sized (root, its own namespaces): three real `mipsec sgw` daemons in a chain (sgw3 nested
// behind sgw0, sgw1 across the Internet) carry ping and 2 MB of TCP with every ESP suite, both Next-hop MACs and
// both AH coverages on the raw transport; the Internet link's capture, read by tshark with the project's SKIP
// dissector, shows SKIP on every packet, the configured Crypt and MAC algorithms, and nothing in clear.
// One combination rides the UDP transport, through the nested SGW too.
import { describe, expect, it } from 'vitest';
import { formatSuite, runSuites, type SuiteCombo } from '../../src/lab/suites.js';
import { ensureDist } from '../daemon/netns.js';
import { canRunNetns } from '../io/topology.js';

const RAW: SuiteCombo[] = [
  { esp: 'aes128gcm', nextHopMac: 'gmac-aes128', coverage: 'full', transport: 'raw' },
  { esp: 'aes256gcm', nextHopMac: 'hmac-sha256-128', coverage: 'headers', transport: 'raw' },
  { esp: 'chacha20poly1305', nextHopMac: 'gmac-aes128', coverage: 'headers', transport: 'raw' },
];

describe.skipIf(!canRunNetns)('mipsec lab --suites (root, its own namespaces)', () => {
  it('every ESP suite, both Next-hop MACs and both coverages on the wire (raw transport)', async () => {
    await ensureDist();
    const { suites } = await runSuites({ combos: RAW });
    for (const r of suites) console.log(formatSuite(r).join('\n'));
    for (const r of suites) {
      expect(r.failures, r.id).toEqual([]);
      expect(r.wire.clear).toBe(0);
      expect(Object.keys(r.wire.stacks)).toEqual(['eth:ethertype:ip:skip:ah:ip:skip:esp']);
    }
  }, 240_000);

  it("the UDP transport through the nested SGW (sgw0 takes sgw3's layers, sent to its outside address, on its inside)", async () => {
    const { suites } = await runSuites({
      combos: [{ esp: 'chacha20poly1305', nextHopMac: 'hmac-sha256-128', coverage: 'full', transport: 'udp' }],
    });
    console.log(formatSuite(suites[0]).join('\n'));
    expect(suites[0].failures).toEqual([]);
    expect(suites[0].wire.clear).toBe(0);
    expect(Object.keys(suites[0].wire.stacks)).toEqual(['eth:ethertype:ip:udp:mipsec_udp:ip:skip:ah:ip:skip:esp']);
  }, 120_000);
});
