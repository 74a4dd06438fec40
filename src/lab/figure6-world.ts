// The draft's Figure 6 (§4.2) from the example configs: home network (SGW0, HA, CH0), Site 1
// (SGW1, CH1), Site 2 (SGW2, CH2), an outside host, all Border-SGWs on the Internet.
import { fileURLToPath } from 'node:url';
import { loadNetworkMap } from '../config/load.js';
import type { MemoryNetwork } from '../net/memory.js';
import type { Network } from '../net/types.js';
import type { TopologyMap } from '../topology/map.js';
import { buildWorld, type World, type WorldOptions } from './world.js';

export const FIGURE6_MAP = fileURLToPath(new URL('../../examples/figure6/network.yaml', import.meta.url));

export async function figure6Map(): Promise<TopologyMap> {
  const loaded = await loadNetworkMap(FIGURE6_MAP);
  if (!loaded.ok) throw new Error(`Figure 6 map ${FIGURE6_MAP}: ${loaded.errors.join('; ')}`);
  return loaded.map;
}

export async function figure6World<N extends Network = MemoryNetwork>(
  options: Omit<WorldOptions, 'map'> & { network?: N },
): Promise<World<N>> {
  return buildWorld<N>({ ...options, map: await figure6Map() });
}
