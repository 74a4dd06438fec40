// The Figure 6 map, read from the example configs the lab uses.
import { loadNetworkMap } from '../../src/config/load.js';
import type { TopologyMap } from '../../src/topology/map.js';

export async function figure6(): Promise<TopologyMap> {
  const loaded = await loadNetworkMap('examples/figure6/network.yaml');
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  return loaded.map;
}
