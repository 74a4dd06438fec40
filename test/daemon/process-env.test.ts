// A daemon's environment: one glibc malloc arena from its first malloc (src/daemon/process-env.ts), which the benches
// and the lab give every daemon they start.
import { describe, expect, it } from 'vitest';
import { daemonEnv } from '../../src/daemon/process-env.js';

describe('daemonEnv', () => {
  it('sets MALLOC_ARENA_MAX=1 and keeps the rest', () => {
    const env = daemonEnv({ PATH: '/usr/bin', NODE_OPTIONS: '--x' });
    expect(env).toEqual({ PATH: '/usr/bin', NODE_OPTIONS: '--x', MALLOC_ARENA_MAX: '1' });
  });

  it("keeps an operator's own MALLOC_ARENA_MAX", () => {
    expect(daemonEnv({ MALLOC_ARENA_MAX: '4' }).MALLOC_ARENA_MAX).toBe('4');
  });

  it('defaults to this process environment, which it does not change', () => {
    const before = process.env.MALLOC_ARENA_MAX;
    expect(daemonEnv().MALLOC_ARENA_MAX).toBe(before ?? '1');
    expect(process.env.MALLOC_ARENA_MAX).toBe(before);
  });
});
