// How the benches and the lab start a daemon (src/daemon/process-env.ts): one glibc malloc arena from its first malloc,
// and Node with --optimize-for-size, which keep its RSS flat under key churn.
import { describe, expect, it } from 'vitest';
import { daemonEnv, daemonProcess } from '../../src/daemon/process-env.js';

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

describe('daemonProcess', () => {
  it('runs this Node with --optimize-for-size before the script, and the daemon environment', () => {
    const p = daemonProcess('/x/bin/mipsec.js', ['sgw', '--config', 'a.yaml'], { PATH: '/usr/bin' });
    expect(p).toEqual({
      command: process.execPath,
      args: ['--optimize-for-size', '/x/bin/mipsec.js', 'sgw', '--config', 'a.yaml'],
      env: { PATH: '/usr/bin', MALLOC_ARENA_MAX: '1' },
    });
  });
});
