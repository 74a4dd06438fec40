// The environment a `mipsec sgw|ha|smn` daemon process is started with, by whatever starts it (the benches, the lab's
// fault runs; operators as docs/deploy.md and docs/operations.md show): MALLOC_ARENA_MAX=1 unless it is set already.
// glibc reads it at the process's first malloc, so it holds for every thread, also those Node starts before the
// daemon can call limitMallocArenas(1) (V8's platform workers, which run the GC). Each of those kept a malloc arena of
// its own that grew all along a soak under key churn: in 7 min gwB's arenas went 3.7 → 8.2 MiB, the HA's 3.1 → 5.6,
// while with the variable set the one heap they share grew 0.6 and 0.2 MiB (bench soak, 8 min, side by side).

/** `env` with MALLOC_ARENA_MAX=1 unless it sets one (an operator's own value stands). */
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.MALLOC_ARENA_MAX === undefined ? { ...env, MALLOC_ARENA_MAX: '1' } : env;
}
