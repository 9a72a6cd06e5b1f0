// The disk under the benchmarks: every number they report is bounded by its fsync rate, and this
// machine's disk is shared (its rate drifts several-fold within minutes), so each run prints it.

import { mkdirSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** About a benchmark message as stored: its 5 KB body (smtp-source -l 5120) and some 300 bytes more. */
const PROBE_BYTES = 5120 + 300;

/** Files created, written and fdatasynced per second by `writers` concurrent writers for `ms`. */
async function fsyncProbe(dir: string, writers: number, ms: number): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const data = Buffer.alloc(PROBE_BYTES, 'x');
  let done = 0;
  let seq = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (performance.now() < end) {
        const fh = await open(join(dir, `f${++seq}`), 'w');
        await fh.writeFile(data);
        await fh.datasync();
        await fh.close();
        done++;
      }
    }),
  );
  const rate = done / ((performance.now() - t0) / 1000);
  rmSync(dir, { recursive: true, force: true });
  return rate;
}

/** One line for the report: the fsync rate in `work` with 1 and with 20 writers. */
export async function diskLine(work: string): Promise<string> {
  const one = await fsyncProbe(join(work, 'fsync-probe'), 1, 1000);
  const twenty = await fsyncProbe(join(work, 'fsync-probe'), 20, 1000);
  return `${one.toFixed(0)} create+write 5 KB+fdatasync/s with 1 writer, ${twenty.toFixed(0)}/s with 20`;
}
