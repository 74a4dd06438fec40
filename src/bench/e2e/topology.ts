// The benchmark topology: client — gwA — gwB — server, four namespaces joined by three veth pairs,
// addressed from 198.18.0.0/15 (RFC 2544 benchmarking range) so nothing here can collide with a
// real network. The gateways forward; which way gwA reaches the server's subnet (plain route,
// a tunnel device, mipsec's TUN) is what each path sets up and takes down again.
import { NetnsSession } from '../../net/netns.js';

/** The largest inner MTU whose encapsulation by every path fits the 1500-byte link (see bench/e2e.md). */
export const TUNNEL_MTU = 1436;
/**
 * SKIP mode carries a 52-byte SKIP header (NSID 0, 40-byte wrapped key) in every packet:
 * 20 (IPv4) + 52 + 16 (ESP header, IV) + 1392 + 2 (padding) + 2 (pad length, next header) + 16 (ICV) = 1500.
 */
export const SKIP_TUNNEL_MTU = 1392;
export const LINK_MTU = 1500;

export const PLAN = {
  client: { addr: '198.18.1.1', net: '198.18.1.0/24' },
  gwA: { inside: '198.18.1.2', outside: '198.18.2.1' },
  gwB: { outside: '198.18.2.2', inside: '198.18.3.1' },
  server: { addr: '198.18.3.2', net: '198.18.3.0/24' },
  transitNet: '198.18.2.0/24',
  /** Point-to-point addresses inside tunnels that want them (WireGuard, OpenVPN). */
  tunnelA: '198.19.0.1',
  tunnelB: '198.19.0.2',
} as const;

export interface Topology {
  session: NetnsSession;
  client: string;
  gwA: string;
  gwB: string;
  server: string;
  /** Interface names, per namespace. */
  dev: {
    clientToA: string;
    aToClient: string;
    aToB: string;
    bToA: string;
    bToServer: string;
    serverToB: string;
  };
}

/** A device name unique to this run: `${prefix}-${tag}` (≤ 15 characters for a 4-hex suffix). */
export function devName(session: NetnsSession, tag: string): string {
  return `${session.prefix}-${tag}`;
}

/** Builds the four namespaces, links, addresses and the routes every path shares. */
export async function buildTopology(session: NetnsSession): Promise<Topology> {
  const client = await session.addNamespace('client');
  const gwA = await session.addNamespace('gwa');
  const gwB = await session.addNamespace('gwb');
  const server = await session.addNamespace('server');
  const dev = {
    clientToA: devName(session, 'ca'),
    aToClient: devName(session, 'ac'),
    aToB: devName(session, 'ab'),
    bToA: devName(session, 'ba'),
    bToServer: devName(session, 'bs'),
    serverToB: devName(session, 'sb'),
  };
  await session.addVeth(client, dev.clientToA, gwA, dev.aToClient, LINK_MTU);
  await session.addVeth(gwA, dev.aToB, gwB, dev.bToA, LINK_MTU);
  await session.addVeth(gwB, dev.bToServer, server, dev.serverToB, LINK_MTU);

  await session.addAddress(client, dev.clientToA, `${PLAN.client.addr}/24`);
  await session.addAddress(gwA, dev.aToClient, `${PLAN.gwA.inside}/24`);
  await session.addAddress(gwA, dev.aToB, `${PLAN.gwA.outside}/24`);
  await session.addAddress(gwB, dev.bToA, `${PLAN.gwB.outside}/24`);
  await session.addAddress(gwB, dev.bToServer, `${PLAN.gwB.inside}/24`);
  await session.addAddress(server, dev.serverToB, `${PLAN.server.addr}/24`);

  await session.replaceRoute(client, { prefix: 'default', via: PLAN.gwA.inside });
  await session.replaceRoute(server, { prefix: 'default', via: PLAN.gwB.inside });
  for (const gw of [gwA, gwB]) await session.sysctl(gw, 'net.ipv4.ip_forward', '1');
  return { session, client, gwA, gwB, server, dev };
}

/** Removes both gateways' routes toward the far subnet (each path installs its own). */
export async function clearGatewayRoutes(topo: Topology): Promise<void> {
  await topo.session.deleteRoute(topo.gwA, { prefix: PLAN.server.net });
  await topo.session.deleteRoute(topo.gwB, { prefix: PLAN.client.net });
}
