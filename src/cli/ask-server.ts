// One request to a running server over its control socket, for the CLI commands: the data
// directory from the configuration, the reply's warnings on standard error, and exit statuses as
// every command uses them (2 bad usage or request, 1 failure).

import type { Writable } from 'node:stream';
import { EXIT, say } from './command.js';
import { controlRequest, NoServerError } from '../daemon/control.js';
import type { ControlReply, ControlRequest } from '../daemon/control.js';
import { dataDirOf } from '../daemon/setup.js';

export interface AskOptions {
  readonly timeoutMs: number;
  /** When no server runs: answer without one (e.g. qm on the spool), or return an exit status. */
  readonly offline?: (dataDir: string) => Promise<ControlReply | number>;
}

/** The server's reply when it is ok, else the exit status after saying what went wrong. */
export async function askServer(configDir: string, req: ControlRequest, stderr: Writable, opts: AskOptions): Promise<ControlReply | number> {
  const data = dataDirOf(configDir);
  if ('error' in data) {
    say(stderr, `portcullis: ${data.error}`);
    return EXIT.usage;
  }
  let rep: ControlReply;
  try {
    rep = await controlRequest(data.dir, req, opts.timeoutMs);
  } catch (err) {
    if (!(err instanceof NoServerError) || opts.offline === undefined) {
      say(stderr, `portcullis: ${err instanceof Error ? err.message : String(err)}`);
      return EXIT.failure;
    }
    const r = await opts.offline(data.dir);
    if (typeof r === 'number') return r;
    rep = r;
  }
  for (const p of Array.isArray(rep.problems) ? (rep.problems as string[]) : []) say(stderr, `portcullis: warning: ${p}`);
  if (rep.ok) return rep;
  say(stderr, `portcullis: ${typeof rep.error === 'string' ? rep.error : 'the server refused the request'}`);
  return rep.code === 'bad-request' ? EXIT.usage : EXIT.failure;
}
