// The Network interface and its in-memory implementation.
export * from './types.js';
export { VirtualClock } from './clock.js';
export { MemoryNetwork, MemoryHost, MemoryLink, type MemoryNetworkOptions } from './memory.js';
export { decrementTtl } from './ip.js';
