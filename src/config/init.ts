// `portcullis init`: writes a complete, commented configuration directory equivalent to a fresh
// Messaging Server install (spec §14, §6.5): msg.conf with every option, the default access
// tables, an imta.cnf with the standard channels, and a self-signed certificate for the demo.
// The defaults are secure: unauthenticated outsiders cannot relay, AUTH needs TLS.
// The texts are built by pure functions (tested on their own); initConfig does the file work.

import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { defaultText, describeType, isHostname, OPTION_SCHEMA } from './options.js';
import { CONFIG_FILES } from './load.js';

export interface InitOptions {
  /** The hosted mail domain, e.g. example.com. */
  readonly domain: string;
  /** This server's host name (greeting, certificate, official host of the `l` channel). */
  readonly hostname: string;
  /** Listening ports; default 25, 587, 465. */
  readonly ports?: { readonly smtp: number; readonly submit: number; readonly smtps: number };
  /** Start of the certificate's validity (default: now). */
  readonly now?: Date;
}

export type InitErrorCode = 'bad-domain' | 'bad-hostname' | 'not-empty' | 'not-a-directory' | 'write-failed';

export type InitResult =
  | { readonly ok: true; /** Paths written, relative to the directory. */ readonly files: readonly string[] }
  | { readonly ok: false; readonly code: InitErrorCode; readonly message: string };

export const STANDARD_PORTS = { smtp: 25, submit: 587, smtps: 465 } as const;
export const UNPRIVILEGED_PORTS = { smtp: 2525, submit: 2587, smtps: 2465 } as const;

export const TLS_CERT_FILE = 'tls/cert.pem';
export const TLS_KEY_FILE = 'tls/key.pem';

/** msg.conf with every option of the schema, each with its description; `values` override defaults. */
export function renderMsgConf(values: Readonly<Record<string, string>>, domain: string): string {
  const out = [
    '! msg.conf: options of the Portcullis MTA, in the style of Messaging Server\'s configutil.',
    `! Written by "portcullis init" for ${domain}.`,
    '!',
    '! One "key = value" per line. Keys are case-insensitive; a value may be wrapped in double quotes.',
    '! Lines starting with ! or # are comments. A key given twice: the later value wins (check warns).',
    '! Relative paths are relative to this directory. Durations are seconds, or a number followed',
    '! by s, m or h (30s, 5m, 1h). Check the whole directory with: portcullis check --config DIR',
    '! List every option with: portcullis check --options',
  ];
  let group = '';
  for (const def of OPTION_SCHEMA) {
    const g = def.key.slice(0, def.key.indexOf('.'));
    if (g !== group) {
      group = g;
      out.push('', `! ---- ${g}.* ----`);
    }
    const dflt = def.defaultDoc ?? (defaultText(def) === '' ? 'empty' : defaultText(def));
    const value = values[def.key] ?? defaultText(def);
    out.push('', `! ${def.description}.`, `! (${describeType(def.type)}; default: ${dflt})`);
    out.push(value === '' ? `${def.key} =` : `${def.key} = ${value !== value.trim() ? `"${value}"` : value}`);
  }
  out.push(
    '',
    '! ---- metermaid.table.NAME.* ----',
    '',
    '! MeterMaid tables (portcullis check --options lists the sub-options). This one backs the',
    '! connection throttle that is commented out in PORT_ACCESS: 15 connections a minute per address.',
    '!metermaid.table.ext_throttle.data_type = ipv4',
    '!metermaid.table.ext_throttle.quota = 15',
    '!metermaid.table.ext_throttle.quota_time = 60',
  );
  return out.join('\n') + '\n';
}

/** The access tables of a fresh install (spec §14), with the seed FROM_ACCESS entries commented out. */
export function renderMappings(domain: string, smtpPort: number): string {
  return [
    '! mappings: the access tables (Messaging Server mappings format; spec §1, §5, §14).',
    `! Written by "portcullis init" for ${domain}. Test an entry with:`,
    '!   portcullis test mapping --mappings mappings --table PORT_ACCESS "TCP|192.0.2.10|25|198.51.100.7|40000"',
    '! Table names start in column 1, entries are indented, a blank line ends a table.',
    '',
    '! INTERNAL_IP: client addresses treated as internal ($Y). Internal clients are switched to the',
    '! tcp_intranet channel, which may relay. Add this server\'s own address and your internal',
    '! networks above the last entry, e.g.  $(192.0.2.0/24)  $Y  . A firewall or NAT address inside',
    '! an internal network must come ABOVE that network with $N, or relayed Internet mail would look',
    '! internal.',
    'INTERNAL_IP',
    '  127.0.0.1          $Y',
    '  ${::1/128}         $Y',
    '  *                  $N',
    '',
    '! PORT_ACCESS: consulted for every connection with "TCP|server-ip|server-port|client-ip|client-port".',
    '! Internal clients are accepted as they are; everyone else is accepted and tagged EXTERNAL.',
    'PORT_ACCESS',
    '',
    '  *|*|*|*|*   $C$|INTERNAL_IP;$3|$Y$E',
    '! To refuse an outside address that opens more than 15 connections a minute (MeterMaid, seed 000),',
    '! uncomment the next line and the metermaid.table.ext_throttle lines at the end of msg.conf:',
    '!  *|*|*|*|*   $C$:A$[IMTA_LIB:check_metermaid.so,throttle,ext_throttle,$3]$N421$ Connection$ declined$ at$ this$ time$E',
    '  *           $YEXTERNAL',
    '',
    '! ORIG_SEND_ACCESS: "source-channel|sender|destination-channel|recipient" before alias expansion.',
    '! An unauthenticated outsider (tcp_local) may not relay to the Internet (tcp_local) nor use',
    '! explicit source routes; no SMTP client may address internal delivery channels directly.',
    'ORIG_SEND_ACCESS',
    '',
    '  tcp_local|*|tcp_local|*              $N$D30|Relaying$ not$ allowed',
    '  tcp_local|*|tcp_intranet|@*:*.*      $N$D30|Explicit$ routing$ not$ allowed',
    '  tcp_local|*|tcp_intranet|*$%*@*      $N$D30|Explicit$ routing$ not$ allowed',
    '  tcp_local|*|tcp_intranet|*!*@*       $N$D30|Explicit$ routing$ not$ allowed',
    '  tcp_local|*|tcp_intranet|"*@*"@*     $N$D30|Explicit$ routing$ not$ allowed',
    '  tcp_*|*|native|*                     $N$D30|Invalid$ destination',
    '  tcp_*|*|hold|*                       $N$D30|Invalid$ destination',
    '  tcp_*|*|pipe|*                       $N$D30|Invalid$ destination',
    '  tcp_*|*|ims-ms|*                     $N$D30|Invalid$ destination',
    '  tcp_*|*|tcp_lmtpcs*|*                $N$D30|Invalid$ destination',
    '',
    '! FROM_ACCESS (anti-spoofing, off by default). Uncomment the four lines below to require',
    '! AUTH from anyone using a hosted domain as envelope sender on the SMTP port, and to let',
    '! authenticated users send only as their own domain. The SMTP port in the first entry is',
    '! this configuration\'s; change it with service.smtp.port.',
    '!FROM_ACCESS',
    `!  TCP|*|${smtpPort}|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E`,
    '!  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y',
    '!  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4',
    '',
  ].join('\n');
}

/** imta.cnf in the shape of a fresh install (spec §6.5), with `domain` hosted on this server. */
export function renderImtaCnf(domain: string, hostname: string): string {
  const local = [hostname, ...(domain === hostname ? [] : [domain])];
  return [
    '! imta.cnf: rewrite rules and channels (Messaging Server format; spec §6).',
    `! Written by "portcullis init" for ${domain}.`,
    '!',
    '! Part I: rewrite rules, one per line: pattern template. The first blank line ends Part I,',
    '! so keep comment lines (starting with !) but no blank lines in it.',
    '! Hosted domains rewrite to the official host of the local channel "l".',
    ...local.map((d) => `${d.padEnd(18)} $U%$D@${hostname}`),
    '! Domain literals: internal clients (INTERNAL_IP says $Y) to tcp_intranet, all others to tcp_local.',
    '[]                 $E$R${INTERNAL_IP,$L}$U%[$L]@tcp_intranet-daemon',
    '[]                 $U%[$L]@tcp-daemon',
    'ims-ms             $E$U@ims-ms-daemon',
    '! Everything else goes to the Internet.',
    '.                  $U%$H$D@tcp-daemon',
    '',
    '! Part II: channel blocks separated by blank lines. Line 1: channel name and keywords;',
    '! line 2: the official host name. "defaults" sets keywords for the blocks after it.',
    '! Only keywords Portcullis acts on are written here. The delivery keywords backoff (retry',
    '! waits, e.g. backoff "pt5m" "pt30m" "pt1h"), notices (days; the last is when undelivered mail',
    '! goes back to its sender) and maxjobs (deliveries at once) override msg.conf\'s delivery.backoff,',
    '! delivery.maxage and delivery.concurrency for their channel. Other Messaging Server keywords',
    '! (pool, subdirs, ...) are accepted and reported by "portcullis check" as not implemented yet.',
    'defaults noswitchchannel',
    '',
    '! Local delivery after alias expansion.',
    'l',
    hostname,
    '',
    '! The message store.',
    'ims-ms',
    'ims-ms-daemon',
    '',
    '! SMTP from and to the Internet (the SMTP port). Internal clients switch to tcp_intranet,',
    '! authenticated ones to tcp_auth.',
    'tcp_local smtp mx single_sys switchchannel maytlsserver maysaslserver saslswitchchannel tcp_auth',
    'tcp-daemon',
    '',
    '! SMTP from and to internal hosts. (No SASL keyword: AUTH follows tcp_local, where the session began.)',
    'tcp_intranet smtp mx single_sys maytlsserver allowswitchchannel saslswitchchannel tcp_auth',
    'tcp_intranet-daemon',
    '',
    '! Message submission (the submission ports): AUTH is required, and authenticated sessions',
    '! move to tcp_auth, so the FROM_ACCESS entries for tcp_auth apply on every port.',
    'tcp_submit submit smtp mx single_sys mustsaslserver maytlsserver saslswitchchannel tcp_auth',
    'tcp_submit-daemon',
    '',
    '! Sessions that authenticated on the SMTP port.',
    'tcp_auth smtp mx single_sys mustsaslserver',
    'tcp_auth-daemon',
    '',
  ].join('\n');
}

/** A self-signed certificate naming `hostname` (CN and subjectAltName), valid for 365 days. */
export async function selfSignedCertificate(hostname: string, now: Date): Promise<{ cert: string; key: string }> {
  const notAfter = new Date(now.getTime() + 365 * 24 * 3600 * 1000);
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Writes a fresh configuration into `dir`, which must not exist or be empty. */
export async function initConfig(dir: string, opts: InitOptions): Promise<InitResult> {
  const domain = opts.domain.toLowerCase().replace(/\.$/, '');
  const hostname = opts.hostname.toLowerCase().replace(/\.$/, '');
  if (!isHostname(domain) || domain.includes('_')) return { ok: false, code: 'bad-domain', message: `"${opts.domain}" is not a domain name` };
  if (!isHostname(hostname) || hostname.includes('_')) {
    return { ok: false, code: 'bad-hostname', message: `"${opts.hostname}" is not a host name: give one with --hostname, e.g. mail.${domain}` };
  }
  const ports = opts.ports ?? STANDARD_PORTS;
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) return { ok: false, code: 'not-a-directory', message: `${dir} exists and is not a directory` };
    if (readdirSync(dir).length > 0) {
      return { ok: false, code: 'not-empty', message: `${dir} is not empty: init writes a new configuration only into a new or empty directory, and never overwrites one` };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, code: 'write-failed', message: `${dir}: ${(err as Error).message}` };
  }

  const { cert, key } = await selfSignedCertificate(hostname, opts.now ?? new Date());
  const values: Record<string, string> = {
    'service.hostname': hostname,
    'service.smtp.port': String(ports.smtp),
    'service.submit.port': String(ports.submit),
    'service.smtps.port': String(ports.smtps),
    'service.tls.certfile': TLS_CERT_FILE,
    'service.tls.keyfile': TLS_KEY_FILE,
  };
  const files: [string, string, number][] = [
    [CONFIG_FILES.msgConf, renderMsgConf(values, domain), 0o644],
    [CONFIG_FILES.mappings, renderMappings(domain, ports.smtp), 0o644],
    [CONFIG_FILES.imta, renderImtaCnf(domain, hostname), 0o644],
    [TLS_CERT_FILE, cert, 0o644],
    [TLS_KEY_FILE, key, 0o600],
  ];
  try {
    mkdirSync(join(dir, 'tls'), { recursive: true });
    for (const [name, text, mode] of files) {
      const path = join(dir, name);
      // "wx": never overwrite, even if something appeared since the emptiness check.
      writeFileSync(path, text, { flag: 'wx', mode });
      chmodSync(path, mode);
    }
  } catch (err) {
    return { ok: false, code: 'write-failed', message: `cannot write the configuration into ${dir}: ${(err as Error).message}` };
  }
  return { ok: true, files: files.map(([name]) => name) };
}
