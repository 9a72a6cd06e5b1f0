// `portcullis start`, `reload` and `status`: run the server in the foreground, and reach a running
// one over its control socket (never by touching its files).

import { existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import type { CommandSpec } from './command.js';
import { EXIT, say } from './command.js';
import { Daemon } from '../daemon/daemon.js';
import { controlRequest } from '../daemon/control.js';
import { formatProblem } from '../mapping/index.js';
import { UNPRIVILEGED_PORTS } from '../config/init.js';
import { dataDirOf, initServer } from '../daemon/setup.js';

/** Writes a demo configuration (unprivileged ports) with its hosted domain in the directory. */
async function initDemo(configDir: string, domain: string, out: NodeJS.WritableStream): Promise<string | null> {
  const r = await initServer(configDir, { domain, hostname: osHostname().includes('.') ? osHostname().toLowerCase() : 'localhost', ports: UNPRIVILEGED_PORTS });
  if (!r.ok) return r.message;
  const data = dataDirOf(configDir);
  if ('error' in data) return data.error;
  out.write(
    [
      `Created a demo configuration in ${configDir} for ${domain} (ports ${UNPRIVILEGED_PORTS.smtp}, ${UNPRIVILEGED_PORTS.submit}, ${UNPRIVILEGED_PORTS.smtps}).`,
      `Add a user:  echo 'secret' | npx portcullis user add alice@${domain} --password-stdin --data ${data.dir}`,
      '',
    ].join('\n'),
  );
  return null;
}

const start: CommandSpec = {
  path: ['start'],
  summary: 'run the server in the foreground',
  options: [
    { flags: '--config <dir>', description: 'configuration directory (msg.conf, mappings, imta.cnf)', required: true },
    { flags: '--init-domain <domain>', description: 'if the configuration directory does not exist, create a demo one for this domain first' },
  ],
  help: 'SIGHUP reloads the configuration; SIGTERM and SIGINT stop the server, letting sessions finish for up to 10 s.',
  async run(io, _args, raw) {
    const o = raw as { config: string; initDomain?: string };
    if (o.initDomain !== undefined && !existsSync(o.config)) {
      const err = await initDemo(o.config, o.initDomain, io.stdout);
      if (err !== null) {
        say(io.stderr, `portcullis: ${err}`);
        return EXIT.usage;
      }
    }
    const r = await Daemon.start({ configDir: o.config, logSink: io.stderr });
    if (!r.ok) {
      for (const p of r.problems) say(io.stderr, formatProblem(p));
      if (r.error) say(io.stderr, `portcullis: ${r.error}`);
      return r.problems.length > 0 ? EXIT.usage : EXIT.failure;
    }
    const daemon = r.daemon;
    say(io.stdout, `portcullis: listening on ${daemon.bound.map((b) => `${b.service} ${b.address}:${b.port}`).join(', ')}`);
    return await new Promise<number>((done) => {
      const stop = (): void => {
        process.off('SIGHUP', hup);
        void daemon.stop(10_000).then(() => done(EXIT.ok));
      };
      const hup = (): void => {
        const rr = daemon.reload();
        if (rr.ok) say(io.stderr, `portcullis: configuration reloaded${rr.warnings.length ? '\n' + rr.warnings.join('\n') : ''}`);
        else say(io.stderr, `portcullis: reload refused, still running the previous configuration:\n${rr.problems.join('\n')}`);
      };
      process.on('SIGHUP', hup);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  },
};

const reload: CommandSpec = {
  path: ['reload'],
  summary: 'make a running server load its configuration again (kept if the new one has errors)',
  options: [{ flags: '--config <dir>', description: 'the configuration directory the server runs from', required: true }],
  async run(io, _args, raw) {
    const o = raw as { config: string };
    const data = dataDirOf(o.config);
    if ('error' in data) {
      say(io.stderr, `portcullis: ${data.error}`);
      return EXIT.usage;
    }
    try {
      const rep = await controlRequest(data.dir, { cmd: 'reload' });
      if (rep.ok) {
        for (const w of (rep.warnings as string[] | undefined) ?? []) say(io.stderr, w);
        say(io.stdout, 'configuration reloaded');
        return EXIT.ok;
      }
      for (const p of (rep.problems as string[] | undefined) ?? []) say(io.stderr, p);
      say(io.stderr, 'portcullis: reload refused; the server keeps running its previous configuration');
      return EXIT.usage;
    } catch (err) {
      say(io.stderr, `portcullis: ${err instanceof Error ? err.message : String(err)}`);
      return EXIT.failure;
    }
  },
};

const status: CommandSpec = {
  path: ['status'],
  summary: 'show whether a server is running, its connections and its queue',
  options: [
    { flags: '--config <dir>', description: 'the configuration directory the server runs from', required: true },
    { flags: '--json', description: 'print the status as JSON' },
  ],
  async run(io, _args, raw) {
    const o = raw as { config: string; json?: boolean };
    const data = dataDirOf(o.config);
    if ('error' in data) {
      say(io.stderr, `portcullis: ${data.error}`);
      return EXIT.usage;
    }
    try {
      const rep = await controlRequest(data.dir, { cmd: 'status' }, 5000);
      if (o.json) say(io.stdout, JSON.stringify(rep));
      else {
        say(io.stdout, `running: pid ${String(rep.pid)}, ${String(rep.connections)} connection(s), configuration loaded ${String(rep.configLoadedAt)}`);
        const q = rep.queue as { messages?: number; held?: number; inFlight?: number } | undefined;
        if (q !== undefined) {
          const how = rep.delivering === false ? ' (delivery.runner = no: nothing is delivered)' : '';
          say(io.stdout, `queue: ${String(q.messages)} message(s), ${String(q.inFlight)} being delivered, ${String(q.held)} held${how}`);
        }
      }
      return EXIT.ok;
    } catch (err) {
      say(io.stderr, `portcullis: ${err instanceof Error ? err.message : String(err)}`);
      return EXIT.failure;
    }
  },
};

export const SERVER_COMMANDS: readonly CommandSpec[] = [start, reload, status];
