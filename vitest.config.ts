import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    pool: 'forks',
    // One test file at a time: the namespace suites (lab, I/O loop, daemons, e2e bench) check
    // machine-wide state such as `ip netns list`, and on 2 cores timing-sensitive cases (handover,
    // iperf3) must not compete with each other.
    fileParallelism: false,
  },
});
