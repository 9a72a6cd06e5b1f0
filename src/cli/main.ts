// The `portcullis` executable: builds a commander program from the command table and runs it.
// Exit status: 0 success, 1 failure, 2 usage or configuration error (see command.ts).

import { Command, CommanderError, Option } from 'commander';
import type { CliIO, CommandSpec } from './command.js';
import { EXIT } from './command.js';
import { TEST_COMMANDS } from './test-commands.js';
import { SERVER_COMMANDS } from './server-commands.js';
import { CONFIG_COMMANDS } from './config-commands.js';
import { DIRECTORY_COMMANDS } from './directory-commands.js';
import { THROTTLE_COMMANDS } from './throttle-commands.js';
import { QM_COMMANDS } from './qm-commands.js';
import { testRewrite } from './rewrite-command.js';
import { testSession } from './session-command.js';

export const COMMANDS: readonly CommandSpec[] = [...SERVER_COMMANDS, ...CONFIG_COMMANDS, ...DIRECTORY_COMMANDS, ...THROTTLE_COMMANDS, ...QM_COMMANDS, ...TEST_COMMANDS, testRewrite, testSession];

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command('portcullis')
    .description('Portcullis — a mail transfer agent driven by Messaging Server mapping tables')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  const groups = new Map<string, Command>();
  for (const spec of COMMANDS) {
    let parent = program;
    for (const word of spec.path.slice(0, -1)) {
      let g = groups.get(word);
      if (g === undefined) {
        g = parent.command(word).description(`${word} commands`).exitOverride();
        groups.set(word, g);
      }
      parent = g;
    }
    const cmd = parent.command(spec.path[spec.path.length - 1] as string).description(spec.summary).exitOverride();
    if (spec.args) cmd.arguments(spec.args);
    for (const o of spec.options) {
      const opt = new Option(o.flags, o.description);
      if (o.repeatable) opt.argParser(collect);
      if (o.required) opt.makeOptionMandatory();
      cmd.addOption(opt);
    }
    if (spec.help) cmd.addHelpText('after', '\n' + spec.help);
    cmd.action(async (...all: unknown[]) => {
      const opts = cmd.opts();
      const positional = all.slice(0, -2).flatMap((a) => (Array.isArray(a) ? (a as string[]) : typeof a === 'string' ? [a] : []));
      setExit(await spec.run(io, positional, opts));
    });
  }
  return program;
}

export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    io.stderr.write(`portcullis: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failure;
  }
  return code;
}
