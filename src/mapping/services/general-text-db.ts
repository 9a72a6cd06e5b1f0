// The general text database behind `${key}` (spec §3.6; Messaging Server's general.txt). One
// entry per line, "key value": the key runs to the first space or tab, the value is the rest of
// the line. Keys are case-insensitive; "!" or "#" in column 1 starts a comment.

import { FAIL, succeed } from '../callouts.js';
import type { CalloutAnswer, GeneralDatabase } from '../callouts.js';

export class GeneralTextDatabase implements GeneralDatabase {
  private constructor(private readonly entries: ReadonlyMap<string, string>) {}

  static parse(text: string): GeneralTextDatabase {
    const entries = new Map<string, string>();
    for (const raw of text.split('\n')) {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.startsWith('!') || line.startsWith('#')) continue;
      const m = /^(\S+)[ \t]*(.*)$/.exec(line);
      if (m && !entries.has((m[1] as string).toLowerCase())) entries.set((m[1] as string).toLowerCase(), m[2] as string);
    }
    return new GeneralTextDatabase(entries);
  }

  lookup(key: string): CalloutAnswer {
    const v = this.entries.get(key.toLowerCase());
    return v === undefined ? FAIL : succeed(v);
  }
}
