// Node configs and network maps: what the roles and the lab load.
export { checkFiles, loadNetworkMap, loadNode, type FileReport, type Loaded, type LoadedNode } from './load.js';
export { DEFAULT_POLICY, ROLES, type NodeConfig, type PolicyKnobs, type Role } from './node.js';
export { networkMapFromDocument } from './network.js';
