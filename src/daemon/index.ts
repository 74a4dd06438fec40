// Role daemons: run one node config as a long-lived process with its operator interfaces.
export { runDaemon, DaemonConfigError, type Daemon, type DaemonOptions, type ReloadResult } from './daemon.js';
export { requestStatus, defaultSocketPath, NoDaemonError } from './socket.js';
export { formatStatus, type Status } from './status.js';
export { parseListen } from './listen.js';
