export * from './sgw.js';
