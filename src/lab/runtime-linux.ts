// The lab's real runtime: a LinuxNetwork (namespaces, veths, bridges, TUNs) per case, wall-clock
// waits that end early once the awaited thing happened, and captures started before any traffic.
import { LinuxNetwork, type LinuxNetworkOptions } from '../net/linux/network.js';
import type { LabRuntime } from './scenario.js';

/** How often a real wait looks at its condition. */
const POLL_MS = 25;
/** After the condition holds: time for the last frames of the exchange to cross and reach the capture. */
const GRACE_MS = 400;
/** How much longer than virtual time a conditional wait may last on real links. */
const LOADED_MACHINE_FACTOR = 3;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function linuxRuntime(
  options: LinuxNetworkOptions = {},
  track?: (network: LinuxNetwork) => void,
): LabRuntime<LinuxNetwork> {
  return {
    real: true,
    network: () => {
      const network = new LinuxNetwork(options);
      track?.(network);
      return network;
    },
    ready: (network) => network.ready(),
    wait: async (_network, ms, done) => {
      // A wait with a condition ends as soon as it holds, so a loaded machine may take longer at no cost otherwise.
      const end = Date.now() + (done ? ms * LOADED_MACHINE_FACTOR : ms);
      while (Date.now() < end) {
        if (done?.()) {
          await sleep(GRACE_MS);
          return;
        }
        await sleep(POLL_MS);
      }
    },
  };
}
