import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePattern } from './pattern.js';
import { charMask, Matcher } from './match.js';
import { foldAscii } from './fold.js';

function matcher(src: string): Matcher {
  const r = compilePattern(src);
  assert.ok(r.pattern, `pattern ${src} should compile: ${JSON.stringify(r.problems)}`);
  return new Matcher(r.pattern);
}

function caps(src: string, text: string): string[] | null {
  return matcher(src).match(foldAscii(text), text).captures;
}

/**
 * A textbook backtracker for `*` and literals, counting steps. It stands in for the naive
 * implementation the bounded matcher must not be: the tests below show it blows its step cap
 * on inputs the real matcher answers at once.
 */
function naiveSteps(pattern: string, text: string, cap: number): number {
  let steps = 0;
  const go = (i: number, j: number): boolean => {
    if (++steps > cap) return false;
    if (i === pattern.length) return j === text.length;
    if (pattern[i] === '*') {
      for (let L = text.length - j; L >= 0; L--) {
        if (go(i + 1, j + L)) return true;
        if (steps > cap) return false;
      }
      return false;
    }
    return j < text.length && pattern[i] === text[j] && go(i + 1, j + 1);
  };
  go(0, 0);
  return steps;
}

test('§2.8 greedy * takes the longest run; lazy $_* the shortest', () => {
  assert.deepEqual(caps('*.*', 'a.b.c'), ['a.b', 'c']);
  assert.deepEqual(caps('$_*.*', 'a.b.c'), ['a', 'b.c']);
  assert.deepEqual(caps('*|*|*|*|*', 'TCP|192.0.2.10|25|198.51.100.7|40000'), ['TCP', '192.0.2.10', '25', '198.51.100.7', '40000']);
  assert.deepEqual(caps('TCP|*|25|*|*', 'TCP|192.0.2.10|25|198.51.100.7|40000'), ['192.0.2.10', '198.51.100.7', '40000']);
  assert.deepEqual(caps('ab*', 'abab'), ['ab']);
  assert.equal(caps('a*a', 'a'), null);
  assert.deepEqual(caps('**x*', 'aaxbxc'), ['aaxb', '', 'c']);
});

test('§2.1 matching is anchored at both ends and case-blind; captures keep the probe\'s case', () => {
  assert.equal(caps('abc', 'abcd'), null);
  assert.equal(caps('bcd', 'abcd'), null);
  assert.deepEqual(caps('ABC@EXAMPLE.COM', 'abc@Example.com'), []);
  assert.deepEqual(caps('*@EXAMPLE.COM', 'JDoe@example.com'), ['JDoe']);
});

test('§2.4 globs, sets, ranges and quoting inside sets', () => {
  assert.deepEqual(caps('$D*-$A%', '2024-x'), ['2024', 'x']);
  assert.equal(caps('$D%', 'x'), null);
  assert.deepEqual(caps('$H*', 'DeadBeef'), ['DeadBeef']);
  assert.equal(caps('$O*', '08'), null);
  assert.deepEqual(caps('$S*', 'a_$9'), ['a_$9']);
  assert.deepEqual(caps('$T*x', ' \t\vx'), [' \t\v']);
  assert.deepEqual(caps('$[a\\-c]%', '-'), ['-']);
  assert.equal(caps('$[a\\-c]%', 'b'), null);
  assert.deepEqual(caps('$[a-c]%', 'B'), ['B']);
  assert.deepEqual(caps('$[\\]]%', ']'), [']']);
});

test('§2.3 $@ does not save; $^ saves; §2.7 numbering counts every saved wildcard', () => {
  assert.deepEqual(caps('$@*@*', 'user@example.com'), ['example.com']);
  assert.deepEqual(caps('$^*@*', 'user@example.com'), ['user', 'example.com']);
  assert.deepEqual(caps('%%%', 'abc'), ['a', 'b', 'c']);
});

test('§2.5 IPv4 prefix and ignore-bits matches, IPv6 prefix match', () => {
  assert.notEqual(caps('$(192.168.10.0/24)', '192.168.10.77'), null);
  assert.equal(caps('$(192.168.10.0/24)', '192.168.11.1'), null);
  assert.notEqual(caps('$<123.45.67.4/2>', '123.45.67.6'), null);
  assert.equal(caps('$<123.45.67.4/2>', '123.45.67.8'), null);
  assert.notEqual(caps('$(0.0.0.0/0)', '8.8.8.8'), null);
  assert.equal(caps('$(10.0.0.1)', '10.0.0.10'), null, 'the whole run of address characters is the address');
  assert.deepEqual(caps('TCP|*|*|$(192.0.2.0/24)|*', 'TCP|192.0.2.10|25|192.0.2.55|5000'), ['192.0.2.10', '25', '192.0.2.55', '5000']);
  assert.notEqual(caps('${2001:db8::/32}', '2001:DB8:0:1::25'), null);
  assert.equal(caps('${2001:db8::/32}', '2001:db9::1'), null);
  assert.notEqual(caps('${::ffff:192.0.2.0/120}', '::ffff:192.0.2.77'), null);
  assert.equal(caps('$(192.0.2.0/24)', '192.0.2'), null);
  assert.equal(caps('$(192.0.2.0/24)', '192.0.2.256'), null);
});

test('§2.6 back-matches compare case-blind against an earlier capture', () => {
  assert.deepEqual(caps('*|$0*', 'Foo|FOO'), ['Foo']);
  assert.equal(caps('*|$0*', 'Foo|Bar'), null);
  assert.deepEqual(caps('*|SMTP*|*|tcp_auth|*@*|*@$4*', 'TCP|192.0.2.10|587|203.0.113.5|3333|SMTP/laptop|MAIL|tcp_auth|alice@example.com|alice@example.com'), [
    'TCP|192.0.2.10|587|203.0.113.5|3333',
    '/laptop',
    'MAIL',
    'alice',
    'example.com',
    'alice',
  ]);
});

test('charMask gate: a pattern whose literals need a character the probe lacks cannot match', () => {
  const m = matcher('*|native|*');
  const probe = 'tcp_local|a@remote.example|l|user@example.com';
  assert.notEqual(m.needMask & ~charMask(probe), 0);
  assert.equal(m.match(probe, probe).captures, null);
});

test('bounded time: 10 stars against 4 KB that a naive backtracker cannot finish', () => {
  const text = 'a'.repeat(4096);
  const pattern = '*a*a*a*a*a*a*a*a*a*a*b*';
  // The naive matcher burns through 10 million steps without an answer.
  assert.equal(naiveSteps(pattern, text.slice(0, 200), 10_000_000), 10_000_001);
  const started = process.hrtime.bigint();
  assert.equal(caps(pattern, text), null);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(ms < 1000, `took ${ms} ms`); // a hang guard, not a benchmark (npm run bench measures)
});

test('bounded time: the DP fallback returns the captures greedy backtracking would', () => {
  // `%` keeps this off the linear literal-and-star path, so the budgeted backtracker gives up and
  // the dynamic-programming matcher answers.
  const pattern = '*a*a*a*a*a*a*a*a*a*a%b';
  assert.equal(caps(pattern, 'a'.repeat(4096)), null);
  const text = 'a'.repeat(4000) + 'xb';
  const got = caps(pattern, text);
  assert.deepEqual(got, ['a'.repeat(3990), '', '', '', '', '', '', '', '', '', 'x']);
  // Lazy stars give the opposite split.
  assert.deepEqual(caps('$_*a$_*a%b', 'aaaaxb'), ['', 'aa', 'x']);
});

test('bounded time: glob classes against 4 KB', () => {
  const pattern = '$A*1$A*1$A*1$A*1$A*1$A*1$A*1$A*1$A*1$A*2';
  const text = 'a1'.repeat(2048);
  const started = process.hrtime.bigint();
  assert.equal(caps(pattern, text), null);
  assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 1000);
});

test('bounded time: back-match patterns give up cleanly on hostile probes', () => {
  const pattern = '*|*|*|*|*|*|*|*@$7*';
  const text = '|'.repeat(2000) + '@' + 'x'.repeat(2000);
  const started = process.hrtime.bigint();
  const m = matcher(pattern).match(foldAscii(text), text);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.equal(m.captures, null);
});
