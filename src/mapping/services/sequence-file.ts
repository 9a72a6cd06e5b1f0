// Sequence numbers for `$#file|radix|width|mod#` (spec §3.6): each use increments the counter kept
// in an existing file and inserts it. The file holds the last value as decimal text (an empty file
// counts as 0). A missing file fails the construct, as in Messaging Server, so a typo does not
// silently create counters.

import { closeSync, fsyncSync, openSync, readSync, ftruncateSync, writeSync, fstatSync } from 'node:fs';
import { FAIL, succeed } from '../callouts.js';
import type { CalloutAnswer, SequenceStore } from '../callouts.js';

export function formatSequence(value: number, radix: number, width: number): string {
  let s = value.toString(Math.abs(radix));
  s = radix < 0 ? s.toUpperCase() : s;
  return width > 0 ? s.padStart(width, '0') : s;
}

export class FileSequenceStore implements SequenceStore {
  next(file: string, radix: number, width: number, mod: number): CalloutAnswer {
    let fd: number;
    try {
      fd = openSync(file, 'r+');
    } catch (err) {
      return { ok: false, error: `sequence file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
    }
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, 64));
      readSync(fd, buf, 0, buf.length, 0);
      const text = buf.toString('utf8').trim();
      if (text !== '' && !/^\d+$/.test(text)) return { ok: false, error: `sequence file ${file} does not hold a number` };
      let value = (text === '' ? 0 : Number(text)) + 1;
      if (mod > 0) value %= mod;
      const out = Buffer.from(String(value) + '\n');
      ftruncateSync(fd, 0);
      writeSync(fd, out, 0, out.length, 0);
      fsyncSync(fd);
      return succeed(formatSequence(value, radix, width));
    } catch {
      return FAIL;
    } finally {
      closeSync(fd);
    }
  }
}
