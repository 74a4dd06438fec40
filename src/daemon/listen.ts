// `--metrics HOST:PORT`, parsed apart from the endpoint itself: the CLI checks it before anything starts, and a
// daemon without metrics never loads prom-client (src/daemon/endpoints.ts imports it when asked).

/** 'HOST:PORT' → parts; an error names the expected form. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535)
    throw new Error(`--metrics expects HOST:PORT such as 127.0.0.1:9571, got ${JSON.stringify(text)}`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}
