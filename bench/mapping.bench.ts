// Mapping-engine speed (issue 2 §7): (a) the seed tables on realistic probes; (b) a 10,000-entry
// ORIG_SEND_ACCESS-style table, match near the end or absent, indexed and as a linear scan;
// (c) a 4 KB hostile probe against 10-star patterns. Targets on one core: (a) ≥ 1,000,000
// probes/s, (b) ≥ 100,000 probes/s, (c) ≤ 1 ms per probe.

import { compileMappingsText, mapSync, parseFlagLetters } from '../src/mapping/index.js';
import type { MappingSet } from '../src/mapping/index.js';
import { StaticDirectory } from '../src/mapping/services/static-directory.js';
import { bench, report } from './harness.js';
import type { BenchResult } from './harness.js';

const SEED = `
INTERNAL_IP
  192.0.2.1          $N
  $(192.0.2.0/24)    $Y
  127.0.0.1          $Y
  *                  $N

PORT_ACCESS
  TCP|*|25|192.0.2.1|*   $Y
  TCP|*|25|*|*           $N500$ Please$ use$ port$ 587$ to$ send$ mail
  *|*|*|*|*              $C$|INTERNAL_IP;$3|$Y$E
  *                      $YEXTERNAL

FROM_ACCESS
  TCP|*|25|*|*|SMTP*|*|tcp_local|*@*|*  $C$}$6,_canonical_name_{$N$ -$ Authentication$ required$ when$ sending$ with$ this$ envelope$ sender$ domain$E
  *|SMTP*|*|tcp_auth|*@*|*@$4*          $Y
  *|SMTP*|*|tcp_auth|*@*|*@*            $N$_Sender$ address$ rejected$ for$ $4

ORIG_SEND_ACCESS
  tcp_local|*|tcp_local|*              $N$D30|Relaying$ not$ allowed
  tcp_local|*|tcp_intranet|@*:*.*      $N$D30|Explicit$ routing$ not$ allowed
  tcp_local|*|tcp_intranet|*$%*@*      $N$D30|Explicit$ routing$ not$ allowed
  tcp_local|*|tcp_intranet|*!*@*       $N$D30|Explicit$ routing$ not$ allowed
  tcp_local|*|tcp_intranet|"*@*"@*     $N$D30|Explicit$ routing$ not$ allowed
  tcp_*|*|native|*                     $N$D30|Invalid$ destination
  tcp_*|*|hold|*                       $N$D30|Invalid$ destination
  tcp_*|*|pipe|*                       $N$D30|Invalid$ destination
  tcp_*|*|ims-ms|*                     $N$D30|Invalid$ destination
  tcp_*|*|tcp_lmtpcs*|*                $N$D30|Invalid$ destination
`;

type Probe = readonly [table: string, input: string, flags: number];

const SEED_PROBES: readonly Probe[] = [
  ['PORT_ACCESS', 'TCP|192.0.2.10|25|198.51.100.7|40000', 0],
  ['PORT_ACCESS', 'TCP|192.0.2.10|25|192.0.2.1|5000', 0],
  ['PORT_ACCESS', 'TCP|192.0.2.10|587|203.0.113.9|5000', parseFlagLetters('A') as number],
  ['PORT_ACCESS', 'TCP|192.0.2.10|587|192.0.2.55|5000', 0],
  ['FROM_ACCESS', 'TCP|192.0.2.10|25|203.0.113.5|3333|SMTP/mx.bad.example|MAIL|tcp_local|ceo@example.com|', 0],
  ['FROM_ACCESS', 'TCP|192.0.2.10|25|203.0.113.5|3333|SMTP/mx.ok.example|MAIL|tcp_local|someone@other.org|', 0],
  ['FROM_ACCESS', 'TCP|192.0.2.10|587|203.0.113.5|3333|SMTP/laptop|MAIL|tcp_auth|alice@example.com|alice@example.com', 0],
  ['FROM_ACCESS', 'TCP|192.0.2.10|587|203.0.113.5|3333|SMTP/laptop|MAIL|tcp_auth|alice@example.net|alice@example.com', 0],
  ['ORIG_SEND_ACCESS', 'tcp_local|spammer@bad.example|tcp_local|victim@elsewhere.example', 0],
  ['ORIG_SEND_ACCESS', 'tcp_local|a@remote.example|l|user@example.com', 0],
  ['ORIG_SEND_ACCESS', 'tcp_auth|user@example.com|tcp_local|friend@elsewhere.example', 0],
  ['ORIG_SEND_ACCESS', 'tcp_local|x@remote.example|tcp_intranet|user%other.example@internal.example', 0],
];

function compile(text: string, indexThreshold?: number): MappingSet {
  const r = compileMappingsText(text, {
    services: { directory: new StaticDirectory([{ name: 'example.com', canonical: 'example.com' }, { name: 'example.net', canonical: 'example.net' }]) },
    ...(indexThreshold !== undefined ? { indexThreshold } : {}),
  });
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('\n'));
  return r.set;
}

/** A blocklist shaped like a real one: recipients per source channel, senders with a leading wildcard. */
function bigTable(n: number): string {
  const lines = ['ORIG_SEND_ACCESS'];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) lines.push(`  tcp_local|*|tcp_local|user${i}@victim${i % 97}.example  $NRecipient$ blocked`);
    else lines.push(`  *|spammer${i}@bad${i % 89}.example|*|*  $NSender$ blocked`);
  }
  lines.push('  tcp_local|*|tcp_local|*  $N$D30|Relaying$ not$ allowed');
  return lines.join('\n') + '\n';
}

export function runMappingBench(): void {
  const results: BenchResult[] = [];
  const seed = compile(SEED);
  results.push(
    bench('(a) seed tables, 12 realistic probes round-robin', (i) => {
      const p = SEED_PROBES[i % SEED_PROBES.length] as Probe;
      mapSync(seed, p[0], p[1], { flags: p[2] });
    }),
  );
  for (const table of ['PORT_ACCESS', 'FROM_ACCESS', 'ORIG_SEND_ACCESS']) {
    const mine = SEED_PROBES.filter((p) => p[0] === table);
    results.push(
      bench(`(a) ${table} only, ${mine.length} probes round-robin`, (i) => {
        const p = mine[i % mine.length] as Probe;
        mapSync(seed, p[0], p[1], { flags: p[2] });
      }),
    );
  }

  const N = 10_000;
  const text = bigTable(N);
  const indexed = compile(text);
  const linear = compile(text, Number.MAX_SAFE_INTEGER);
  const nearEnd = `tcp_local|someone@remote.example|tcp_local|user${N - 10}@victim${(N - 10) % 97}.example`;
  const senderNearEnd = `tcp_local|spammer${N - 11}@bad${(N - 11) % 89}.example|l|u@example.com`;
  const absent = 'tcp_intranet|someone@example.com|l|user@example.com';
  for (const [label, set] of [
    ['indexed', indexed],
    ['linear ', linear],
  ] as const) {
    results.push(bench(`(b) 10k entries ${label}: recipient near the end`, () => void mapSync(set, 'ORIG_SEND_ACCESS', nearEnd), { batch: label === 'linear ' ? 10 : 1000 }));
    results.push(bench(`(b) 10k entries ${label}: sender near the end`, () => void mapSync(set, 'ORIG_SEND_ACCESS', senderNearEnd), { batch: label === 'linear ' ? 10 : 1000 }));
    results.push(bench(`(b) 10k entries ${label}: no match`, () => void mapSync(set, 'ORIG_SEND_ACCESS', absent), { batch: label === 'linear ' ? 10 : 1000 }));
  }

  // Hostile: 4 KB probes that pass every quick check, against 10-star patterns. The first takes
  // the linear literal-and-star path; `%` sends the others through the budgeted backtracker and
  // then the DP matcher. The last has a back-match (bounded by its step budget, see compatibility.md).
  const hostile = compile(
    [
      'GLOB\n  *a*a*a*a*a*a*a*a*a*a*b*  $Nx\n',
      'DP\n  *a*a*a*a*a*a*a*a*a*a$D%b  $Nx\n',
      'FIELDS\n  *|*|*|*|*|*|*|*|*|*|x%  $Nx\n',
      'BACKREF\n  *|*|*|*|*|*|*|*@$7*  $Nx\n',
    ].join('\n'),
  );
  const as = 'a'.repeat(4096);
  const asb = 'a'.repeat(4095) + 'b';
  const bars = '|'.repeat(4094) + 'xy';
  const mixed = '|'.repeat(2000) + '@' + 'x'.repeat(2095);
  const slow = { batch: 5, seconds: 1 };
  results.push(bench('(c) 4 KB "a" vs *a*a*a*a*a*a*a*a*a*a*b* (no match)', () => void mapSync(hostile, 'GLOB', as), slow));
  results.push(bench('(c) 4 KB "a…b" vs *a*a*a*a*a*a*a*a*a*a$D%b (no match, DP)', () => void mapSync(hostile, 'DP', asb), slow));
  results.push(bench('(c) 4 KB "|" vs *|*|*|*|*|*|*|*|*|*|x% (no match, DP)', () => void mapSync(hostile, 'FIELDS', bars), slow));
  results.push(bench('(c) 4 KB "|@x" vs back-match *|*|*|*|*|*|*|*@$7* (gives up)', () => void mapSync(hostile, 'BACKREF', mixed), slow));
  report(results);
}
