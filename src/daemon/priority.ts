// A daemon's control thread (its JavaScript: `mipsec status`, registrations, the first packet of a new key) runs
// CONTROL_LEAD nice steps above its data-path workers: at full load the workers take every CPU they are given, and
// the control thread must still be scheduled within milliseconds (`bench overload`, status at 2× the carry rate:
// up to 93–98 ms in runs at equal nice, up to 36–44 ms with the lead). Linux keeps a nice value per thread;
// os.setPriority() without a pid sets the calling thread's, and threads it starts later inherit it, so the workers are
// given the daemon's base value explicitly (IoLoopOptions.workerNice). Lowering a nice value needs CAP_SYS_NICE.
import { getPriority, setPriority } from 'node:os';

export const CONTROL_LEAD = 5;

/** The nice value the daemon was started with: its workers'. Read once, before the control thread is raised. */
export const WORKER_NICE = getPriority();

/**
 * Raises the calling (control) thread CONTROL_LEAD steps above WORKER_NICE. Returns the nice value it now has, or
 * why it could not (the daemon then runs at equal priority, as before).
 */
export function raiseControlThread(): { nice: number } | { error: string } {
  const nice = Math.max(-20, WORKER_NICE - CONTROL_LEAD);
  try {
    setPriority(nice);
    return { nice };
  } catch (err) {
    return { error: `${(err as Error).message} (raising the control thread needs CAP_SYS_NICE)` };
  }
}
