// The configurations of the seed-scenario tests (seeds*.test.ts): spec §14 and the §15.1 fixtures
// F1, F2, F4 and F6, moved onto loopback addresses so that the real server sees the hosts it is
// meant to see. The server listens on 127.0.0.1 (192.0.2.10's role); source addresses play:
//
//   127.0.0.5            the firewall (192.0.2.1): inside the internal network, listed $N first
//   127.0.0.6, 127.0.0.7 internal hosts (192.0.2.55): INTERNAL_IP says $Y, so tcp_intranet
//   127.0.0.20 - .59     Internet hosts (203.0.113.x, 198.51.100.x)
//   127.0.0.60 - .63     hosts the extra PORT_ACCESS entries below turn away
//
// The internal network is 127.0.0.0/29 (127.0.0.0-7), which holds 127.0.0.1, the firewall and the
// internal hosts but none of the Internet hosts, as 192.0.2.0/24 does in F2. Port numbers in the
// tables are the ports the test server really listens on (the probes carry them), not 25 and 587.

import type { Ports } from './harness.js';
import { DOMAIN } from './harness.js';

export const FIREWALL = '127.0.0.5';
export const INTERNAL = '127.0.0.6';
export const INTERNAL2 = '127.0.0.7';
/** Internet hosts: `outside(0)` is 127.0.0.20, up to `outside(39)`. */
export function outside(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 39) throw new RangeError(`outside(${n}): Internet hosts are 0-39`);
  return `127.0.0.${20 + n}`;
}

/** The hosted domain standing in for F6's sesta.com (a second hosted domain, so that F6's
 * catch-all "*|*@sesta.com|*|* $NMail Blocked" does not block every test's own users). */
export const SESTA = 'sesta.example';

/** An alias domain of DOMAIN: `$}domain,_canonical_name_{` answers DOMAIN for it. */
export const ALIAS_DOMAIN = 'alias.example';

/** The extra domains of the seed servers: F6's stand-in and an alias domain. */
export const SEED_DOMAINS = [SESTA, { name: ALIAS_DOMAIN, aliasOf: DOMAIN }] as const;

export const ALICE = { address: `alice@${DOMAIN}`, password: 'alice-secret' } as const;
export const SESTA_USER = { address: `user@${SESTA}`, password: 'user-secret' } as const;

/** F2's INTERNAL_IP: the firewall first with $N, then the internal network (§5.2, §15.4 rows 44-45). */
export const INTERNAL_IP_F2 = ['INTERNAL_IP', `  ${FIREWALL}          $N`, '  $(127.0.0.0/29)    $Y', '  127.0.0.1          $Y', '  *                  $N'];

/** F1's PORT_ACCESS (§14): internal clients accepted as they are, everyone else tagged EXTERNAL. */
const PORT_ACCESS_F1 = ['  *|*|*|*|*   $C$|INTERNAL_IP;$3|$Y$E', '  *           $YEXTERNAL'];

/** F1's ORIG_SEND_ACCESS (§14), entry for entry. */
export const ORIG_SEND_ACCESS_F1 = [
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
];

/** F4's FROM_ACCESS (§15.1), with the SMTP port of the test server in entry 1. */
function fromAccessF4(smtpPort: number): string[] {
  return [
    `  TCP|*|${smtpPort}|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E`,
    '  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y',
    '  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4',
  ];
}

/**
 * MAPPING_PARANOIA (§5.6): this entry matches a FROM_ACCESS probe only when the envelope From
 * carries a "|" of its own: a normal probe has exactly two fields after the channel.
 */
export const PARANOIA_PROBE_ENTRY = '  *|tcp_local|*|*|*                     $NFaked$ field$ boundary';

/**
 * Server A: F1 with F2's INTERNAL_IP, F4's FROM_ACCESS, F6's SEND_ACCESS (sesta.com → SESTA), plus
 * entries for single flags ($X, $H, $A) and for PORT_ACCESS's verbatim rejections and input flag A.
 */
export function seedsMappings(ports: Ports): string {
  return [
    '! Seed scenarios (tests/integration/seeds-config.ts): spec §14 F1, §15.1 F2 INTERNAL_IP, F4, F6.',
    ...INTERNAL_IP_F2,
    '',
    'PORT_ACCESS',
    // §4.5: the text goes out verbatim and the connection closes; "~" separates lines.
    '  TCP|*|*|127.0.0.60|*   $N421$ Connection$ declined$ at$ this$ time',
    '  TCP|*|*|127.0.0.61|*   $N421-Connection$ declined~421$ Try$ again$ later',
    // §4.1: the Dispatcher's probe carries input flag A, the SMTP server's own probe does not.
    '  TCP|*|*|127.0.0.62|*   $C$:A$N421$ Refused$ by$ the$ Dispatcher$ probe$E',
    '  TCP|*|*|127.0.0.63|*   $C$;A$N421$ Refused$ by$ the$ SMTP$ server$ probe$E',
    ...PORT_ACCESS_F1,
    '',
    'ORIG_SEND_ACCESS',
    ...ORIG_SEND_ACCESS_F1,
    // §4.7: a class-4 $X code makes the refusal temporary (450 at RCPT).
    '  tcp_local|tempfail@remote.example|*|*   $X$N4.7.1|Try$ again$ later',
    // §4.2: $H holds an accepted message; §4.3: $A adds a header line.
    '  tcp_local|holdme@remote.example|*|*     $H',
    '  tcp_local|tagme@remote.example|*|*      $AX-Seed-Tag:$ added$ by$ ORIG_SEND_ACCESS',
    '',
    'FROM_ACCESS',
    ...fromAccessF4(ports.smtp),
    PARANOIA_PROBE_ENTRY,
    '',
    'SEND_ACCESS',
    `  *|Elvis1@${SESTA}|*|*                        $Y`,
    `  *|Nelson7@${SESTA}|*|*                       $Y`,
    `  *|AkiraK@${SESTA}|*|*                        $Y`,
    // F6's entry says "l|User@sesta.com"; SEND_ACCESS sees the mailbox after alias expansion, on
    // the store channel (§5.4), so the entry that works names ims-ms ...
    `  tcp_local|unwelcome@varrius.example|ims-ms|User@${SESTA}  $NGo$ away!`,
    // ... and the entry as F6 writes it (with l) never matches in SEND_ACCESS.
    `  tcp_local|literal@varrius.example|l|User@${SESTA}  $NGo$ away!`,
    `  *|*@${SESTA}|*|*                             $NMail$ Blocked`,
    '',
  ].join('\n');
}

/**
 * Server B: the firewall deployment of F2 — port 25 (the test's SMTP port) open only to the
 * firewall, everyone else told to use the submission port — with F1's ORIG_SEND_ACCESS and F4.
 */
export function firewallMappings(ports: Ports): string {
  return [
    '! The firewall seed (tests/integration/seeds-config.ts): spec §15.1 F2, with F1 and F4.',
    ...INTERNAL_IP_F2,
    '',
    'PORT_ACCESS',
    `  TCP|*|${ports.smtp}|${FIREWALL}|*   $Y`,
    `  TCP|*|${ports.smtp}|*|*           $N500$ Please$ use$ port$ ${ports.submit}$ to$ send$ mail`,
    ...PORT_ACCESS_F1,
    '',
    'ORIG_SEND_ACCESS',
    ...ORIG_SEND_ACCESS_F1,
    '',
    'FROM_ACCESS',
    ...fromAccessF4(ports.smtp),
    PARANOIA_PROBE_ENTRY,
    // With mta.mapping_paranoia = ! the probe carries "x!y@" where the client wrote "x|y@".
    '  *|tcp_local|x!y@remote.example|*     $NGuarded$ form$ seen',
    '',
  ].join('\n');
}

function replaceOnce(text: string, find: string | RegExp, by: string): string {
  const out = text.replace(find, by);
  if (out === text) throw new Error(`imta.cnf written by init has changed: ${String(find)} not found`);
  return out;
}

/**
 * Server A's imta.cnf: init's, plus an internal domain routed to tcp_intranet (seed 004, §15.6
 * rows 62-66) and the internal channels SMTP clients must not address (§14, rows 61 and 67), each
 * with a host name so that an address can name it.
 */
export function seedsImta(initText: string): string {
  const withRule = replaceOnce(initText, /^\[\]/m, 'internal.example   $U%$D@tcp_intranet-daemon\n[]');
  return [
    withRule.replace(/\n*$/, '\n'),
    '! Internal channels for the seed tests: a user@<host> address routes to each.',
    'native',
    'native-daemon',
    '',
    'hold',
    'hold-daemon',
    '',
    'pipe',
    'pipe-daemon',
    '',
    'tcp_lmtpcs',
    'store.example',
    '',
  ].join('\n');
}

/**
 * Server B's imta.cnf: init's, with tcp_submit as §6.5 reconstructs it — no saslswitchchannel —
 * so that an authenticated submission session stays on tcp_submit (see seeds-firewall.test.ts).
 */
export function firewallImta(initText: string): string {
  const submit = /^tcp_submit .*$/m.exec(initText);
  if (submit === null) throw new Error('imta.cnf written by init has changed: no tcp_submit block');
  return initText.replace(submit[0], submit[0].replace(/\s+saslswitchchannel\s+\S+/, ''));
}
