// `portcullis init` and `portcullis check`: write a fresh configuration directory, and validate one
// (the analogue of Messaging Server's cnbuild: every problem in every file, as file:line:col).

import { hostname as osHostname } from 'node:os';
import type { CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { formatProblem } from '../mapping/index.js';
import type { CalloutServices } from '../mapping/index.js';
import { FileSequenceStore } from '../mapping/services/sequence-file.js';
import { StaticDirectory } from '../mapping/services/static-directory.js';
import { STANDARD_PORTS, UNPRIVILEGED_PORTS } from '../config/init.js';
import { initServer } from '../daemon/setup.js';
import { CONFIG_FILES, loadConfig } from '../config/load.js';
import { describeType, optionReference } from '../config/options.js';
import { tableOptionReference } from '../config/metermaid-options.js';
import type { Options } from '../config/types.js';
import { MeterMaid } from '../throttle/service.js';

/**
 * The services a running server offers to mapping callouts, as far as compiling needs to know
 * (check never evaluates an entry, so an empty directory stands for the real one).
 */
export function checkServices(options: Options | null): CalloutServices {
  const meter = new MeterMaid({}, { embeddedOnly: true });
  return { libraries: [meter.library(options?.metermaid ?? null)], directory: new StaticDirectory([]), sequence: new FileSequenceStore() };
}

interface InitCliOptions {
  domain: string;
  hostname?: string;
  unprivileged?: boolean;
}

interface CheckCliOptions {
  config?: string;
  options?: boolean;
}

/** The command table of this group; `services` says which callouts `check` may accept. */
export function configCommands(services: (options: Options | null) => CalloutServices = checkServices): readonly CommandSpec[] {
  const init: CommandSpec = {
    path: ['init'],
    summary: 'write a new, commented configuration directory (like a fresh Messaging Server install)',
    args: '<dir>',
    options: [
      { flags: '--domain <domain>', description: 'the mail domain this server hosts', required: true },
      { flags: '--hostname <name>', description: "this server's host name (default: the machine's host name)" },
      { flags: '--unprivileged', description: 'listen on 2525/2587/2465 instead of 25/587/465' },
    ],
    help: [
      'Writes DIR/msg.conf, DIR/mappings, DIR/imta.cnf and a self-signed certificate (DIR/tls/cert.pem,',
      'DIR/tls/key.pem, valid 365 days) for the demo, and makes the domain hosted in the directory store',
      '(DIR/data). DIR must not exist or be empty.',
      'Exit status: 0 when written; 2 on bad arguments or a non-empty DIR; 1 when writing failed.',
    ].join('\n'),
    async run(io, args, raw) {
      const o = raw as unknown as InitCliOptions;
      const dir = args[0];
      if (dir === undefined) {
        say(io.stderr, 'portcullis: init needs the directory to write, e.g. portcullis init ./config --domain example.com');
        return EXIT.usage;
      }
      const r = await initServer(dir, {
        domain: o.domain,
        hostname: o.hostname ?? osHostname(),
        ports: o.unprivileged ? UNPRIVILEGED_PORTS : STANDARD_PORTS,
      });
      if (!r.ok) {
        say(io.stderr, `portcullis: ${r.message}`);
        return r.code === 'write-failed' ? EXIT.failure : EXIT.usage;
      }
      say(io.stdout, `wrote ${dir}: ${r.files.join(', ')}`);
      say(io.stdout, `check it with: portcullis check --config ${dir}`);
      return EXIT.ok;
    },
  };

  const check: CommandSpec = {
    path: ['check'],
    summary: 'validate a configuration directory and report every problem as file:line:col',
    options: [
      { flags: '--config <dir>', description: 'the configuration directory (msg.conf, mappings, imta.cnf)' },
      { flags: '--options', description: 'list every msg.conf option with its type, default and meaning' },
    ],
    help: [
      'Reads msg.conf, mappings and imta.cnf as the server would, and loads the TLS certificate and key.',
      'Problems go to standard error as file:line:col: message; warnings are marked "warning:".',
      'Exit status: 0 when the configuration is usable (warnings allowed); 2 when it has errors.',
    ].join('\n'),
    run(io, _args, raw) {
      const o = raw as unknown as CheckCliOptions;
      if (o.options) {
        for (const l of [...optionReference(), ...tableOptionReference((d) => describeType(d.type))]) say(io.stdout, l);
        return Promise.resolve(EXIT.ok);
      }
      if (o.config === undefined) {
        say(io.stderr, 'portcullis: check needs --config DIR (or --options)');
        return Promise.resolve(EXIT.usage);
      }
      const r = loadConfig(o.config, { services });
      const problems = r.ok ? r.snapshot.warnings : r.problems;
      for (const p of problems) say(io.stderr, formatProblem(p));
      if (!r.ok) {
        const errors = problems.filter((p) => p.severity === 'error').length;
        say(io.stderr, `config has ${errors} error${errors === 1 ? '' : 's'}`);
        return Promise.resolve(EXIT.usage);
      }
      const s = r.snapshot;
      const warnings = problems.length > 0 ? ` (${problems.length} warning${problems.length === 1 ? '' : 's'})` : '';
      say(
        io.stdout,
        `config OK${warnings}: ${Object.keys(CONFIG_FILES).length} files, ${s.mappings.tables.size} tables, ${s.imta.channels.length} channels, ${s.imta.rewriteRules.length} rewrite rules`,
      );
      return Promise.resolve(EXIT.ok);
    },
  };

  return [init, check];
}

export const CONFIG_COMMANDS: readonly CommandSpec[] = configCommands();
