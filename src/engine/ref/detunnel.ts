// OUTBOUND `detunnel`: a home agent's end of its mobile nodes' reverse tunnels (RFC 3024; docs/engine.md §4.2). The
// bindings are already in the table as `tunnel` policies (home address → care-of address), so they decide both
// directions: a reverse tunnel is opened only when the tunnel a reply would take ends exactly where it came from.
import { parseIpip } from '../../wire/ipip.js';
import type { Ipv4Header } from '../../wire/ipv4.js';
import type { PolicyIndex } from '../policy.js';
import { policyTunnel } from './ipip.js';
import { forward, reject, type Outcome, type Slot } from './outcome.js';

export function policyDetunnel(
  policies: PolicyIndex,
  table: number,
  slot: Slot,
  offset: number,
  length: number,
  outer: Ipv4Header,
): Outcome {
  // IPIP_DECAP's checks (a fragment was punted before); the datagram inside from here.
  const opened = parseIpip(slot.buf, offset, offset + length);
  if (!opened.ok) return reject(opened.reason, offset, length);
  const { inner, innerOffset: at } = opened;
  // Only a registered mobile node, from its own care-of address, with its home address as the source inside: anyone
  // else could have the home agent emit datagrams with a home address as their source.
  const reply = policies.find(table, inner.dst, inner.src, inner.protocol);
  if (reply?.action !== 'tunnel' || reply.tunnel!.src !== outer.dst || reply.tunnel!.dst !== outer.src)
    return reject('untrusted_tunnel', at, inner.totalLength);
  // For another away mobile node: into its tunnel, as if it had arrived plain; else the home agent sends it on as it
  // came out of the tunnel, next hop its destination.
  const onward = policies.find(table, inner.src, inner.dst, inner.protocol);
  if (onward?.action === 'tunnel') return policyTunnel(slot, at, inner.totalLength, inner, onward);
  return forward(at, inner.totalLength, 0, inner.dst);
}
