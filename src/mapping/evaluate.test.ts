import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMappingsText, mapAsync, mapSync } from './index.js';
import { flagString, parseFlagLetters } from './flags.js';
import type { CalloutLibrary, CalloutRoutine, CalloutAnswer } from './callouts.js';
import { imageBaseName, quoteTemplateText } from './callouts.js';

/** A routine library answering from a function; records every argument it saw. */
function library(name: string, routines: Record<string, (arg: string) => CalloutAnswer | Promise<CalloutAnswer>>): CalloutLibrary & { calls: string[] } {
  const calls: string[] = [];
  const made = new Map<string, CalloutRoutine>(
    Object.entries(routines).map(([r, f]) => [r, { name: r, call: (arg: string) => (calls.push(`${r}(${arg})`), f(arg)) }]),
  );
  return {
    name,
    calls,
    claims: (image) => imageBaseName(image) === name,
    routine: (r) => made.get(r),
    routineNames: () => [...made.keys()],
  };
}

function set(text: string, libraries: CalloutLibrary[] = []) {
  const r = compileMappingsText(text, { services: { libraries } });
  assert.ok(r.ok, r.ok ? '' : r.problems.map((p) => `${p.line}:${p.col} ${p.message}`).join('\n'));
  return r.set;
}

test('§3.3 $L makes one extra pass from the top when the table runs out', () => {
  const s = set('T\n  b*  $E2$0\n  a*  $Lb$0\n');
  assert.equal(mapSync(s, 'T', 'ax').output, '2x');
});

test('§3.3 loop guard: $R restarts stop once the counter exceeds 10', () => {
  const s = set('T\n  *  $R$0\n');
  const r = mapSync(s, 'T', 'abc', { trace: true });
  assert.equal(r.output, 'abc');
  assert.equal(r.trace?.length, 11, 'ten restarts are honoured, the eleventh is not');
});

test('§3.3 loop guard resets when the string gets shorter, so shrinking restarts run to the end', () => {
  const s = set('T\n  %*  $R$1\n  *  done\n');
  const r = mapSync(s, 'T', 'x'.repeat(30));
  assert.equal(r.output, 'done');
});

test('§3.3 the last control metacharacter wins: $C...$E ends', () => {
  const s = set('T\n  *  $Cfirst$E\n  *  second\n');
  assert.equal(mapSync(s, 'T', 'x').output, 'first');
});

test('§3.3 $+1E ends at once; the rest of the template is not read', () => {
  const s = set('T\n  *  a$+1Eb$N\n');
  const r = mapSync(s, 'T', 'x');
  assert.equal(r.output, 'a');
  assert.equal(flagString(r.flags), '');
});

test('§3.4 a failure after $C continues with the input unchanged; flags of the failed entry are dropped', () => {
  const s = set('T\n  *  $C$Nno$:A\n  *  $Y$0\n');
  const r = mapSync(s, 'T', 'in');
  assert.equal(r.output, 'in');
  assert.equal(flagString(r.flags), 'Y');
});

test('§3.4 a failure without a control ends the mapping: input out, no flags, even from earlier $C entries', () => {
  const s = set('T\n  *  $C$Hx$0\n  *  $N$:A\n');
  const r = mapSync(s, 'T', 'in');
  assert.equal(r.matched, true);
  assert.equal(r.output, 'xin');
  assert.equal(r.flags, 0);
});

test('§3.5 $:x and $;x test the caller\'s input flags', () => {
  const s = set('T\n  *  $C$;T$Nplain$E\n  *  $Ytls\n');
  assert.equal(mapSync(s, 'T', 'x').output, 'plain');
  assert.equal(mapSync(s, 'T', 'x', { flags: parseFlagLetters('T') ?? 0 }).output, 'tls');
});

test('§3.2 case control applies to literal and substituted text', () => {
  const s = set('T\n  *@*  $\\$0@$^$1$_!$0\n');
  assert.equal(mapSync(s, 'T', 'JDoe@Example.COM').output, 'jdoe@EXAMPLE.COM!JDoe');
});

test('$= quotes substitutions for LDAP filters until $_', () => {
  const s = set('T\n  *  (uid=$=$0$_)$0\n');
  assert.equal(mapSync(s, 'T', 'a*(b)').output, '(uid=a\\2a\\28b\\29)a*(b)');
});

test('§3.6 $?x? succeeds x percent of the time, using the caller\'s randomness', () => {
  const s = set('T\n  *  $C$?25?lucky$E\n  *  plain\n');
  assert.equal(mapSync(s, 'T', 'x', { random: () => 0.2 }).output, 'lucky');
  assert.equal(mapSync(s, 'T', 'x', { random: () => 0.3 }).output, 'plain');
});

test('§3.6 sub-mappings: only a $Y result counts; its flags are not merged', () => {
  const s = set('SUB\n  a  $Yin$N\n  b  out\n\nT\n  *  $C[$|SUB;$0|]$E\n  *  none\n');
  const r = mapSync(s, 'T', 'a');
  assert.equal(r.output, '[in]');
  assert.equal(flagString(r.flags), '');
  assert.equal(mapSync(s, 'T', 'b').output, 'none');
});

test('§3.6 sub-mappings recurse at most 8 deep', () => {
  const s = set('T\n  *  $C$|T;$0|$Y$E\n  *  $Ybottom\n');
  const r = mapSync(s, 'T', 'x');
  assert.equal(r.output, 'bottom');
  assert.ok(r.diagnostics.some((d) => d.code === 'depth-limit'));
});

test('§3.6 callout results are re-expanded: "$N..." becomes a flag and "$6" a substitution (row 75 shape)', () => {
  const lib = library('dns_verify.so', {
    dns_verify: (arg) => {
      const [, ok = '', fail = ''] = arg.split('|');
      void ok;
      return { ok: true, value: fail.replace('%e', 'no such domain') };
    },
  });
  const s = set('T\n  *@*  $[/lib/dns_verify.so,dns_verify,$1|$$y|$$NInvalid$ host:$ $$1$ -$ %e]\n', [lib]);
  const r = mapSync(s, 'T', 'x@nonexistent.invalid');
  assert.deepEqual(lib.calls, ['dns_verify(nonexistent.invalid|$y|$NInvalid host: $1 - %e)']);
  assert.equal(flagString(r.flags), 'N');
  assert.equal(r.output, 'Invalid host: nonexistent.invalid - no such domain');
});

test('§3.6 a failing callout after $C falls through; routines may answer asynchronously', async () => {
  const lib = library('check_metermaid.so', { throttle: (arg) => Promise.resolve<CalloutAnswer>(arg.endsWith('bad') ? { ok: true, value: '' } : { ok: false }) });
  const s = set('T\n  *  $C$[IMTA_LIB:check_metermaid.so,throttle,t,$0]$NOver$E\n  *  $YOK\n', [lib]);
  assert.equal((await mapAsync(s, 'T', 'good')).output, 'OK');
  const bad = await mapAsync(s, 'T', 'bad');
  assert.equal(bad.output, 'Over');
  assert.equal(flagString(bad.flags), 'N');
  assert.throws(() => mapSync(s, 'T', 'x'), /asynchronously/);
});

test('callout errors and rejected promises fail the callout and are reported', async () => {
  const lib = library('x.so', {
    boom: () => {
      throw new Error('store unreachable');
    },
    reject: () => Promise.reject(new Error('timeout')),
  });
  const s = set('T\n  *  $C$[x.so,boom,$0]$N$E\n  *  $C$[x.so,reject,$0]$N$E\n  *  $Yopen\n', [lib]);
  const r = await mapAsync(s, 'T', 'k');
  assert.equal(r.output, 'open');
  assert.deepEqual(
    r.diagnostics.map((d) => d.message),
    ['x.so,boom: store unreachable', 'x.so,reject: timeout'],
  );
});

test('a routine that echoes data must quote it, or the data could set flags', () => {
  const echo = library('echo.so', { raw: (arg) => ({ ok: true, value: arg }), quoted: (arg) => ({ ok: true, value: quoteTemplateText(arg) }) });
  const s = set('RAW\n  *  $[echo.so,raw,$0]\n\nQUOTED\n  *  $[echo.so,quoted,$0]\n', [echo]);
  assert.equal(flagString(mapSync(s, 'RAW', 'x$Y').flags), 'Y');
  const q = mapSync(s, 'QUOTED', 'x$Y');
  assert.equal(q.flags, 0);
  assert.equal(q.output, 'x$Y');
});

test('template output is capped; an entry that would exceed the cap fails', () => {
  const s = set('T\n  *  $R$0$0\n');
  const r = mapSync(s, 'T', 'x'.repeat(1000));
  assert.ok(r.output.length <= 16384);
  assert.ok(r.diagnostics.some((d) => d.code === 'output-too-long'));
});

test('a missing table is reported as not found, with the input unchanged', () => {
  const s = set('T\n  *  x\n');
  const r = mapSync(s, 'NOPE', 'in');
  assert.equal(r.tableFound, false);
  assert.equal(r.output, 'in');
});

test('table names are case-insensitive (§1.2)', () => {
  const s = set('FILTER_limitauthspam\n  *  $Yok\n');
  assert.equal(mapSync(s, 'filter_LIMITAUTHSPAM', 'x').output, 'ok');
});
