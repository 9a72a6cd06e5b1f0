// Setting up and finding a server's files: a new configuration directory with its hosted domain
// in the directory store, and the data directory a configuration names (read leniently, so that
// `status` and `reload` still reach a running server when msg.conf has since been broken).

import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { CONFIG_FILES } from '../config/load.js';
import { parseMsgConfText } from '../config/msgconf.js';
import { initConfig } from '../config/init.js';
import type { InitOptions, InitResult } from '../config/init.js';
import { DirectoryStore } from '../directory/store.js';
import type { CalloutServices } from '../mapping/index.js';
import type { Options } from '../config/types.js';
import type { MeterMaid } from '../throttle/service.js';

/** The data directory named by DIR/msg.conf (store.datadir, default "data" inside DIR). */
export function dataDirOf(configDir: string): { dir: string } | { error: string } {
  const path = join(configDir, CONFIG_FILES.msgConf);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { error: `cannot read ${path}` };
  }
  const entry = parseMsgConfText(path, text).entries.find((e) => e.key === 'store.datadir');
  const value = entry?.value.trim() || 'data';
  return { dir: isAbsolute(value) ? value : resolve(configDir, value) };
}

/**
 * Writes a configuration directory (init.ts) and makes its domain hosted in the directory store,
 * so that the server accepts mail for it from the start.
 */
export async function initServer(configDir: string, opts: InitOptions): Promise<InitResult> {
  const r = await initConfig(configDir, opts);
  if (!r.ok) return r;
  const data = dataDirOf(configDir);
  if ('error' in data) return { ok: false, code: 'write-failed', message: data.error };
  const store = await DirectoryStore.open(data.dir);
  if (!store.ok) return { ok: false, code: 'write-failed', message: store.error.message };
  const added = await store.value.addDomain(opts.domain.toLowerCase().replace(/\.$/, ''));
  if (!added.ok && added.error.code !== 'domain-exists') return { ok: false, code: 'write-failed', message: added.error.message };
  return { ok: true, files: [...r.files, `${data.dir} (directory store with ${opts.domain})`] };
}

/**
 * The services the daemon offers to mapping callouts, built for each configuration: MeterMaid's
 * check_metermaid.so over the configuration's tables, and `$}domain,attr{` answered from the
 * directory store once it is open (it opens after the options name its place). Offline tools pass
 * a MeterMaid with its own embedded store, so a test never counts against production.
 */
export function serverCallouts(store: () => DirectoryStore | null, meter: MeterMaid): (options: Options | null) => CalloutServices {
  const directory = { domainAttribute: (d: string, a: string) => store()?.domainAttribute(d, a) ?? { ok: false as const, error: 'directory not open' } };
  return (options) => ({ libraries: [meter.library(options?.metermaid ?? null)], directory });
}
