// The control socket's MeterMaid requests (`portcullis throttle show|reset`), answered from the
// daemon's MeterMaid. Errors carry a code so the CLI can tell a request the administrator can fix
// (an unknown table, a key that does not fit the table: exit 2) from a store that cannot answer
// (Redis down: exit 1).
//
//   throttle-show  → {"ok":true,"view":TableView}  | {"ok":false,"error":"…","code":"bad-request"|"failed"}
//   throttle-reset → {"ok":true,"removed":n}        | same errors

import type { Logger } from '../telemetry/log.js';
import type { MeterMaid } from '../throttle/service.js';
import { TableRequestError } from '../throttle/service.js';
import type { ControlReply, ControlRequest } from './control.js';

export type ThrottleRequest = Extract<ControlRequest, { readonly cmd: 'throttle-show' | 'throttle-reset' }>;

/** Why a throttle request failed: the request itself, or the store behind it. */
export type ThrottleErrorCode = 'bad-request' | 'failed';

export async function throttleControl(meter: MeterMaid, req: ThrottleRequest, log?: Logger): Promise<ControlReply> {
  try {
    if (req.cmd === 'throttle-reset') {
      const removed = await meter.reset(req.table, req.key);
      log?.log('info', 'metermaid-reset', { table: req.table, key: req.key ?? null, removed });
      return { ok: true, removed };
    }
    return { ok: true, view: await meter.show(req.table, req.key, req.limit) };
  } catch (err) {
    const code: ThrottleErrorCode = err instanceof TableRequestError ? 'bad-request' : 'failed';
    return { ok: false, error: err instanceof Error ? err.message : String(err), code };
  }
}
