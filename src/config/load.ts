// Builds a ConfigSnapshot from a configuration directory: DIR/msg.conf (options), DIR/mappings
// (the access tables) and DIR/imta.cnf (channels and rewrite rules). Every file is read and checked
// even when an earlier one has errors, so one `portcullis check` shows everything to fix. The TLS
// certificate and key named in msg.conf are loaded and checked against each other here too: a
// server must not start (or reload) into a configuration whose TLS cannot work.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SourcePos } from '../mapping/errors.js';
import { accessResult, diskReader, loadMappings, mapSync } from '../mapping/index.js';
import type { CalloutServices, MappingSet } from '../mapping/index.js';
import { parseImtaCnf } from './imta-cnf.js';
import type { ImtaConfig } from './imta-cnf.js';
import { readOptions } from './msgconf.js';
import type { ConfigProblem, ConfigSnapshot, Options, Routing } from './types.js';
import { buildChannels } from '../channels/model.js';
import type { ChannelTable } from '../channels/model.js';
import { compileRules } from '../channels/rewrite.js';
import { SERVICE_CHANNELS } from '../channels/routing.js';

/** The files of a configuration directory. */
export const CONFIG_FILES = { msgConf: 'msg.conf', mappings: 'mappings', imta: 'imta.cnf' } as const;

export interface LoadConfigOptions {
  /**
   * Routine libraries and lookup services the server offers to mapping callouts; a function when
   * they depend on msg.conf (MeterMaid tables). It gets null when msg.conf has errors, and should
   * then offer libraries that accept any argument, so that those errors are not repeated as
   * mapping errors.
   */
  readonly services?: CalloutServices | ((options: Options | null) => CalloutServices);
  /** The time to stamp on the snapshot and to check certificate validity against (default: now). */
  readonly now?: number;
}

export type LoadConfigResult =
  | { readonly ok: true; readonly snapshot: ConfigSnapshot }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

type Read = { ok: true; text: string } | { ok: false; problem: ConfigProblem };

function readRequired(path: string, name: string): Read {
  try {
    return { ok: true, text: readFileSync(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `${name} is missing: a configuration directory needs msg.conf, mappings and imta.cnf (portcullis init writes them)`
        : code === 'EACCES'
          ? `cannot read ${name}: permission denied`
          : code === 'EISDIR'
            ? `${name} is a directory, not a file`
            : `cannot read ${name}: ${(err as Error).message}`;
    return { ok: false, problem: { file: path, line: 1, col: 1, severity: 'error', code: code === 'ENOENT' ? 'missing-file' : 'unreadable-file', message } };
  }
}

/** Loads and validates a configuration directory. Problems come file by file, in line order. */
export function loadConfig(dir: string, opts: LoadConfigOptions = {}): LoadConfigResult {
  const now = opts.now ?? Date.now();
  const absDir = resolve(dir);
  try {
    if (!statSync(absDir).isDirectory()) {
      return { ok: false, problems: [{ file: dir, line: 1, col: 1, severity: 'error', code: 'not-a-directory', message: `${dir} is not a directory` }] };
    }
  } catch {
    return {
      ok: false,
      problems: [{ file: dir, line: 1, col: 1, severity: 'error', code: 'missing-directory', message: `configuration directory ${dir} does not exist (portcullis init ${dir} --domain ... creates one)` }],
    };
  }
  const problems: ConfigProblem[] = [];

  let options: Options | null = null;
  const msgPath = join(dir, CONFIG_FILES.msgConf);
  const msg = readRequired(msgPath, CONFIG_FILES.msgConf);
  if (msg.ok) {
    const r = readOptions(msgPath, msg.text, { configDir: absDir });
    problems.push(...r.problems);
    options = r.options;
    if (options !== null) {
      const tls = checkTls(options, (key) => r.valuePos(key) ?? { file: msgPath, line: 1, col: 1 }, now);
      problems.push(...tls);
      if (tls.some((p) => p.severity === 'error')) options = null;
    }
  } else problems.push(msg.problem);

  let mappings: MappingSet | null = null;
  const mapPath = join(dir, CONFIG_FILES.mappings);
  const map = readRequired(mapPath, CONFIG_FILES.mappings);
  if (map.ok) {
    // The text is already read: hand it to the loader for the main file, and let includes
    // come from disk.
    const services = typeof opts.services === 'function' ? opts.services(options) : (opts.services ?? {});
    const r = loadMappings(mapPath, {
      services,
      read: (path) => (path === mapPath ? { ok: true, text: map.text } : diskReader(path)),
    });
    problems.push(...r.problems);
    if (r.ok) mappings = r.set;
  } else problems.push(map.problem);

  let imta: ImtaConfig | null = null;
  const imtaPath = join(dir, CONFIG_FILES.imta);
  const cnf = readRequired(imtaPath, CONFIG_FILES.imta);
  if (cnf.ok) {
    const r = parseImtaCnf(imtaPath, cnf.text);
    problems.push(...r.problems.sort((a, b) => a.line - b.line || a.col - b.col));
    if (!r.problems.some((p) => p.severity === 'error')) imta = r.config;
  } else problems.push(cnf.problem);

  let routing: Routing | null = null;
  if (imta !== null) {
    const built = buildChannels(imta);
    const set = mappings;
    const rules = compileRules(imta.rewriteRules, (t) => set === null || set.table(t) !== undefined);
    problems.push(...built.problems, ...rules.problems);
    if (options !== null) problems.push(...requiredChannels(built.table, options, imta));
    routing = { channels: built.table, rules: rules.rules };
  }
  if (mappings !== null) problems.push(...relayCheck(mappings, mapPath));

  if (options === null || mappings === null || imta === null || routing === null || problems.some((p) => p.severity === 'error')) {
    return { ok: false, problems };
  }
  return {
    ok: true,
    snapshot: { dir: absDir, options, mappings, imta, routing, warnings: problems, loadedAt: now },
  };
}

/** Each enabled service starts sessions on a channel imta.cnf must define (spec §6.6). */
function requiredChannels(table: ChannelTable, o: Options, imta: ImtaConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const need: [string, string][] = [];
  if (o.ports.smtp !== 0) need.push([SERVICE_CHANNELS.smtp, `port ${o.ports.smtp}`]);
  if (o.ports.submit !== 0 || o.ports.smtps !== 0) need.push([SERVICE_CHANNELS.submit, 'the submission ports']);
  for (const [name, what] of need) {
    if (table.get(name) === undefined) {
      out.push({ file: imta.file, line: 1, col: 1, severity: 'error', code: 'missing-channel', message: `imta.cnf defines no channel ${name}, which sessions on ${what} start on` });
    }
  }
  return out;
}

/**
 * A configuration that lets an unauthenticated outsider relay is almost always a mistake: warn
 * when ORIG_SEND_ACCESS does not refuse tcp_local → tcp_local (spec §14).
 */
function relayCheck(set: MappingSet, file: string): ConfigProblem[] {
  const probe = 'tcp_local|someone@outside.invalid|tcp_local|anyone@elsewhere.invalid';
  const t = set.table('ORIG_SEND_ACCESS');
  if (t !== undefined && t.pure && accessResult(mapSync(set, 'ORIG_SEND_ACCESS', probe)).decision === 'reject') return [];
  if (t !== undefined && !t.pure) return [];
  return [
    {
      file,
      line: t?.pos.line ?? 1,
      col: 1,
      severity: 'warning',
      code: 'open-relay',
      message: 'ORIG_SEND_ACCESS does not refuse tcp_local|*|tcp_local|*: unauthenticated outsiders can relay through this server (add "  tcp_local|*|tcp_local|*  $NRelaying$ not$ allowed")',
    },
  ];
}

/** Loads the certificate and key and checks that they belong together and are usable. */
function checkTls(options: Options, posOf: (key: string) => SourcePos, now: number): ConfigProblem[] {
  const { certFile, keyFile } = options.tls;
  if (certFile === null || keyFile === null) return [];
  const out: ConfigProblem[] = [];
  const push = (key: string, code: string, message: string, severity: 'error' | 'warning' = 'error'): void => {
    out.push({ ...posOf(key), severity, code, message });
  };
  const read = (key: string, path: string): string | null => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      push(key, 'tls-unreadable', `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
      return null;
    }
  };
  const certText = read('service.tls.certfile', certFile);
  const keyText = read('service.tls.keyfile', keyFile);
  let cert: X509Certificate | null = null;
  let key: KeyObject | null = null;
  if (certText !== null) {
    try {
      cert = new X509Certificate(certText);
    } catch {
      push('service.tls.certfile', 'tls-bad-certificate', `${certFile} does not hold a PEM certificate ("-----BEGIN CERTIFICATE-----")`);
    }
  }
  if (keyText !== null) {
    try {
      key = createPrivateKey(keyText);
    } catch (err) {
      const encrypted = /passphrase|encrypted/i.test((err as Error).message) || keyText.includes('ENCRYPTED');
      push(
        'service.tls.keyfile',
        'tls-bad-key',
        encrypted ? `${keyFile} is encrypted with a passphrase, which the server cannot enter — store the key unencrypted (mode 0600)` : `${keyFile} does not hold a PEM private key`,
      );
    }
    try {
      if ((statSync(keyFile).mode & 0o077) !== 0 && process.platform !== 'win32') {
        push('service.tls.keyfile', 'tls-key-permissions', `${keyFile} can be read by other users: chmod 600 it`, 'warning');
      }
    } catch {
      // Already reported as unreadable.
    }
  }
  if (cert !== null && key !== null && !cert.checkPrivateKey(key)) {
    push('service.tls.keyfile', 'tls-key-mismatch', `the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  }
  if (cert !== null) {
    if (Date.parse(cert.validTo) < now) push('service.tls.certfile', 'tls-expired', `the certificate in ${certFile} expired on ${cert.validTo}`, 'warning');
    else if (Date.parse(cert.validFrom) > now) push('service.tls.certfile', 'tls-not-yet-valid', `the certificate in ${certFile} is not valid before ${cert.validFrom}`, 'warning');
    if (cert.checkHost(options.hostname) === undefined) {
      push('service.tls.certfile', 'tls-hostname', `the certificate in ${certFile} does not name service.hostname ${options.hostname}`, 'warning');
    }
  }
  return out;
}
