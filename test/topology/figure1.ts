// Figure 1 of the draft as a network spec: nested SGWs (SGW0 behind SGW1, SGW3 behind SGW2, SGW5 behind SGW4).
import { buildTopology, type NetworkSpec, type TopologyMap } from '../../src/topology/map.js';

export const figure1Spec: NetworkSpec = {
  name: 'figure1',
  sites: [
    { name: 'home', prefixes: ['10.0.0.0/16'] },
    { name: 'other1', prefixes: ['10.1.0.0/16'] },
    { name: 'other2', prefixes: ['10.2.0.0/16'] },
  ],
  sgws: [
    { name: 'sgw1', site: 'home', inside: '10.0.0.1', outside: '198.18.1.1' },
    { name: 'sgw0', site: 'home', prefixes: ['10.0.1.0/24'], inside: '10.0.1.1', outside: '10.0.0.2', behind: 'sgw1' },
    { name: 'sgw2', site: 'other1', inside: '10.1.0.1', outside: '198.18.2.1' },
    { name: 'sgw3', site: 'other1', prefixes: ['10.1.1.0/24'], inside: '10.1.1.1', outside: '10.1.0.2', behind: 'sgw2' },
    { name: 'sgw4', site: 'other2', inside: '10.2.0.1', outside: '198.18.4.1' },
    { name: 'sgw5', site: 'other2', prefixes: ['10.2.1.0/24'], inside: '10.2.1.1', outside: '10.2.0.2', behind: 'sgw4' },
  ],
  homeAgents: [{ name: 'ha', address: '10.0.1.2', serves: ['10.0.1.100'] }],
  hosts: [{ name: 'ch', address: '10.0.1.10' }],
};

export function figure1(): TopologyMap {
  const built = buildTopology(figure1Spec);
  if (!built.ok) throw new Error(JSON.stringify(built.issues));
  return built.map;
}
