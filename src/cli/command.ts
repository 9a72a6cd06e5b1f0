// The CLI is a table of commands (shared/conventions.md): each command is a value with its path,
// its help text and its options beside the handler. main.ts turns the table into a commander
// program; handlers get their I/O as parameters so tests and other front ends can drive them.

import type { Readable, Writable } from 'node:stream';

export interface CliIO {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
}

export interface OptionSpec {
  /** Commander flag syntax, e.g. "--table <name>" or "--json". */
  readonly flags: string;
  readonly description: string;
  readonly required?: boolean;
  /** The option may be given several times; the handler gets an array. */
  readonly repeatable?: boolean;
}

/** Exit statuses shared by every command. */
export const EXIT = {
  ok: 0,
  failure: 1,
  /** Bad usage or a bad configuration file: nothing was done. */
  usage: 2,
} as const;

export interface CommandSpec {
  /** Words after `portcullis`, e.g. ["test", "mapping"]. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Longer help shown by `--help`, after the options. */
  readonly help?: string;
  /** Positional arguments in commander syntax, e.g. "[probe...]". */
  readonly args?: string;
  readonly options: readonly OptionSpec[];
  run(io: CliIO, args: string[], opts: Record<string, unknown>): Promise<number>;
}

export function say(out: Writable, line: string): void {
  out.write(line + '\n');
}
