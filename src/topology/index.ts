export * from './map.js';
export * from './position.js';
