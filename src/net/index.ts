// The Network interface and its in-memory implementation.
export * from './types.js';
export { VirtualClock } from './clock.js';
export { MemoryNetwork, MemoryHost, MemoryLink } from './memory.js';
