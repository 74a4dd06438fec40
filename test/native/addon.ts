// The native tests' access to the addon: it must load (MIPSEC_NATIVE=1), and NativeEngine is built on it.
import { loadAddon } from '../../src/engine/addon.js';
import { NativeEngine } from '../../src/engine/native.js';
import type { SaDesc } from '../../src/engine/types.js';

process.env.MIPSEC_NATIVE = '1';

export function binding(): any {
  const { binding, error } = loadAddon();
  if (!binding) throw new Error(`native addon did not load: ${error?.message}`);
  return binding;
}

export function nativeEngine(
  sas: readonly SaDesc[] = [],
  setup: { local?: string[]; routes?: { prefix: string; sa: number }[] } = {},
): NativeEngine {
  const engine = new NativeEngine(binding());
  for (const sa of sas) engine.installSa(sa);
  if (setup.local) engine.setLocalAddresses(setup.local);
  if (setup.routes) engine.setRoutes(setup.routes);
  return engine;
}

export const fromHex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
