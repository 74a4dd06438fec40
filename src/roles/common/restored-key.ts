// A receiver that restarted keeps its replay floors (src/daemon/replay-marks.ts) but not its SAs: the first packet of
// a packet key new to the process can fall under the floor its key tuple reached before, and so would every later
// packet under that Kp. The receiver refuses the key with ICMP 40 code 0 (bad SPI: the key expired for it); the
// sender moves to a fresh Kp, whose window is fresh. Both roles receive SKIP and both send it, so both do both halves.
import { Icmp40Code } from '../../wire/icmp40.js';
import type { Tally } from './counters.js';
import type { ReceivedFailure } from './failure.js';
import type { NodeKeys } from './keys.js';

/**
 * The sending half: whether `failure` retired one of our outbound keys. Only the SA's own receiver, quoting a
 * packet the SA really sealed lately (its SKIP header, SPI and a recent sequence number), may do that.
 */
export function spendRefusedKey(keys: NodeKeys, failure: ReceivedFailure, tally: Tally): boolean {
  if (failure.code !== Icmp40Code.badSpi) return false;
  const id = failure.from === failure.quotedDst ? keys.quotedOutbound(failure.quote) : undefined;
  if (id === undefined) {
    tally.add('failure_quote_not_sent');
    return false;
  }
  tally.add('rekey_peer_lost_key');
  keys.spend(id);
  return true;
}
