// How a `mipsec sgw|ha|smn` daemon process is started, by whatever starts it (the benches, the lab's fault runs;
// operators as docs/deploy.md and docs/operations.md show): with MALLOC_ARENA_MAX=1 in its environment unless it is
// set already, and Node run with --optimize-for-size. Both act only from the process's start, so the daemon cannot
// set them itself.
//
// MALLOC_ARENA_MAX: glibc reads it at the first malloc, so it holds for every thread, also those Node starts before
// the daemon can call limitMallocArenas(1) (V8's platform workers, which run the GC). Each of those kept a malloc arena
// of its own that grew all along a soak under key churn: in 7 min gwB's arenas went 3.7 → 8.2 MiB, the HA's 3.1 → 5.6,
// while with the variable set the one heap they share grew 0.6 and 0.2 MiB (bench soak, 8 min, side by side).
//
// --optimize-for-size: every new packet key leaves objects that live as long as its SA (SaDesc, metadata, a replay
// mark), so they reach V8's old space and die there. With Node's defaults the old space then grows by the minimum
// step V8 allows before its first full collection (gwA 12 → 22 MiB over 15 min at ~3 new keys a second) and keeps the
// pages after it: RSS +11 % from minute 2. With the flag the limit stays near what is live (a full collection at
// ~13 MiB, the old space 14 MiB), and RSS followed. Set at run time (v8.setFlagsFromString) it does not change the
// limits; Node does not take it from NODE_OPTIONS.

/** V8 flags for the Node process that runs a daemon (before the script: `node FLAGS bin/mipsec.js sgw …`). */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--optimize-for-size'];

/** `env` with MALLOC_ARENA_MAX=1 unless it sets one (an operator's own value stands). */
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.MALLOC_ARENA_MAX === undefined ? { ...env, MALLOC_ARENA_MAX: '1' } : env;
}

/** The command, arguments and environment that start `bin` (bin/mipsec.js) with `args` (`sgw …`) as a daemon. */
export function daemonProcess(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  return { command: process.execPath, args: [...DAEMON_NODE_FLAGS, bin, ...args], env: daemonEnv(env) };
}
