// The addon is optional: without it the library warns once and runs the TS path; MIPSEC_NATIVE=1 makes that an error.
import { afterEach, describe, expect, it, vi } from 'vitest';

async function freshEngineModule(env: Record<string, string | undefined>) {
  vi.resetModules();
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) vi.stubEnv(name, undefined as unknown as string);
    else vi.stubEnv(name, value);
  }
  return import('../../src/engine/index.js');
}

describe('addon fallback', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  // node-gyp-build loads from $MIPSEC_PREBUILD when it is set: an empty directory means no addon.
  const noAddon = { MIPSEC_PREBUILD: '/nonexistent/mipsec-no-addon' };

  it('uses the TS path with exactly one warning when the addon cannot load', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { createEngine } = await freshEngineModule({ ...noAddon, MIPSEC_NATIVE: undefined });
      const first = createEngine();
      const second = createEngine();
      expect(first.impl).toBe('ts');
      expect(second.impl).toBe('ts');
      await new Promise((resolve) => setImmediate(resolve));
      const ours = warnings.filter((w) => (w as NodeJS.ErrnoException).code === 'MIPSEC_NO_NATIVE');
      expect(ours).toHaveLength(1);
      expect(ours[0].message).toMatch(/native addon unavailable .*using the TypeScript data path/);
      first.close();
      second.close();
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('throws with the rebuild hint when MIPSEC_NATIVE=1 and the addon cannot load', async () => {
    const { createEngine } = await freshEngineModule({ ...noAddon, MIPSEC_NATIVE: '1' });
    expect(() => createEngine()).toThrow(
      /native engine required but the addon did not load: [\s\S]*npm rebuild mipsec/,
    );
  });

  it("createEngine('native') throws too, and createEngine('ts') never needs the addon", async () => {
    const { createEngine } = await freshEngineModule({ ...noAddon, MIPSEC_NATIVE: undefined });
    expect(() => createEngine('native')).toThrow(/native engine required/);
    const ts = createEngine('ts');
    expect(ts.impl).toBe('ts');
    ts.close();
  });

  it('loads the native path when the addon is there', async () => {
    const { createEngine } = await freshEngineModule({ MIPSEC_PREBUILD: undefined, MIPSEC_NATIVE: '1' });
    const engine = createEngine();
    expect(engine.impl).toBe('native');
    engine.close();
  });
});
