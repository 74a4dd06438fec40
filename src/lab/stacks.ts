// What crossed each link, as the draft writes packet formats: describe() of every delivered frame,
// with the lab key log opening ESP so the inner headers show (test/lab only).
import type { Network } from '../net/types.js';
import type { DescribeResolver } from '../wire/describe.js';
import { describe } from '../wire/describe.js';

export interface Hop {
  link: string;
  from: string;
  to: string;
  stack: string;
  bytes: number;
  time: number;
}

/** Every delivered frame on every link since the captures were last cleared, in time order. */
export function hops(network: Network, resolver?: DescribeResolver): Hop[] {
  const out: Hop[] = [];
  for (const link of network.links()) {
    for (const f of link.captures()) {
      if (f.fate !== 'delivered') continue;
      out.push({
        link: link.name,
        from: f.from.split('/')[0],
        to: (f.to ?? '').split('/')[0],
        stack: describe(f.packet, resolver),
        bytes: f.packet.length,
        time: f.time,
      });
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

/** The distinct "from > to: stack" lines per link, in first-seen order. */
export function stacksByLink(
  network: Network,
  resolver?: DescribeResolver,
  keep: (h: Hop) => boolean = () => true,
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const h of hops(network, resolver)) {
    if (!keep(h)) continue;
    const line = `${h.from} > ${h.to}: ${h.stack}`;
    const list = (out[h.link] ??= []);
    if (!list.includes(line)) list.push(line);
  }
  return out;
}

export function clearCaptures(network: Network): void {
  for (const link of network.links()) link.clearCaptures();
}

/** The lines of `expected` missing from `seen` and the lines seen that were not expected, per link. */
export function stackDiff(expected: Record<string, string[]>, seen: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const link of new Set([...Object.keys(expected), ...Object.keys(seen)])) {
    const want = expected[link] ?? [];
    const got = seen[link] ?? [];
    for (const line of want) if (!got.some((g) => stackMatches(line, g))) out.push(`${link}: missing ${line}`);
    for (const line of got) if (!want.some((w) => stackMatches(w, line))) out.push(`${link}: unexpected ${line}`);
    const inOrder = want.length === got.length && want.every((w, i) => stackMatches(w, got[i]));
    if (out.length === 0 && !inOrder) out.push(`${link}: same packets in another order`);
  }
  return out;
}

/** An expected line may hold `*` where the value is random by design (the §3.5 NAT's port): any digits match there. */
export function stackMatches(want: string, line: string): boolean {
  if (!want.includes('*')) return want === line;
  const pattern = want
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('\\d+');
  return new RegExp(`^${pattern}$`).test(line);
}
