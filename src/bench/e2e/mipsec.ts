// mipsec's own paths: each gateway runs the native I/O loop (src/engine/io.ts) with manually keyed SAs.
import type { PathDriver, PathName } from './paths.js';

const IOLOOP_MISSING = 'the native I/O loop (src/engine/io.ts, native/io) is not in this build yet';

function unavailable(name: PathName, mode: string): PathDriver {
  return {
    name,
    mode,
    async version() {
      throw new Error(IOLOOP_MISSING);
    },
    async setup() {
      throw new Error(IOLOOP_MISSING);
    },
  };
}

export const mipsecDrivers: Record<'mipsec-skip' | 'mipsec-spi' | 'mipsec-ts', PathDriver> = {
  'mipsec-skip': unavailable('mipsec-skip', 'SKIP header + ESP AES-128-GCM (SPI 1), native I/O loop'),
  'mipsec-spi': unavailable('mipsec-spi', 'RFC 4303 ESP AES-128-GCM tunnel, manual keys, native I/O loop'),
  'mipsec-ts': unavailable('mipsec-ts', 'TS reference engine on the same I/O'),
};
