// The .cases reader must refuse anything that could make a golden case assert less than it seems
// to (see cases-file.ts for the format).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CasesFormatError, parseCasesFile } from './cases-file.js';

const HEADER = 'map: F1.map\n\n';

function rejects(name: string, text: string, message: RegExp): void {
  void test(`malformed .cases: ${name}`, () => {
    assert.throws(() => parseCasesFile('x.cases', text), (err: unknown) => err instanceof CasesFormatError && message.test(err.message));
  });
}

rejects('unknown key', HEADER + 'case: 1\nref: §15.2\ntable: T\ninput: a\nexpect.outptu: b\n', /x\.cases:7: unknown key "expect\.outptu"/);
rejects('case without expectations', HEADER + 'case: 1\nref: §15.2\ntable: T\ninput: a\n', /x\.cases:3: case has no expectations/);
rejects('pattern case without expect.matched', 'case: 1\nref: §15.2\npattern: *\ntarget: a\nexpect.cap.0: a\n', /missing "expect\.matched:"/);
rejects('missing ref', HEADER + 'case: 1\ntable: T\ninput: a\nexpect.output: a\n', /missing "ref:"/);
rejects('repeated single key', HEADER + 'case: 1\nref: §15.2\ntable: T\ninput: a\nexpect.output: a\nexpect.output: b\n', /"expect\.output" given twice/);
rejects('duplicate case', HEADER + 'case: 1\nref: §1\ntable: T\ninput: a\nexpect.output: a\n\ncase: 1\nref: §1\ntable: T\ninput: b\nexpect.output: b\n', /case 1 already defined/);
rejects('flags out of order', HEADER + 'case: 1\nref: §1\ntable: T\ninput: a\nexpect.flags: ND\n', /as flagString prints them \("DN"\)/);
rejects('bad callout line', HEADER + 'case: 1\nref: §1\ntable: T\ninput: a\ncallout: check_metermaid.so throttle x\nexpect.output: a\n', /callout: write/);
rejects('unknown argument flag', HEADER + 'case: 1\nref: §1\ntable: T\ninput: a\nexpect.arg.Q: x\n', /not an argument-taking access flag/);
rejects('mapping case without map', 'case: 1\nref: §1\ntable: T\ninput: a\nexpect.output: a\n', /need a header block with "map:"/);
rejects('trailing whitespace', HEADER + 'case: 1\nref: §1\ntable: T\ninput: a \nexpect.output: a\n', /trailing whitespace/);
rejects('pending without an expectation', 'case: 50\nref: §15.4\npending: later\n', /must still say what is expected/);
rejects('captures out of order', 'case: 1\nref: §15.2\npattern: *.*\ntarget: a.b\nexpect.matched: true\nexpect.cap.1: b\n', /expected expect\.cap\.0 here/);
rejects('empty file', '# nothing\n', /no cases in file/);

void test('.cases: values, callouts and the header are read as documented', () => {
  const text = [
    'map: F4.map',
    'domain: example.com',
    'domain: Alias.Example=example.com',
    '',
    '# a comment inside the file',
    'case: 75/variant',
    'ref: §15.7',
    'table: ORIG_MAIL_ACCESS',
    'input: a|b',
    'flags: AT',
    'callout: dns_verify.so,dns_verify x|$y|$NInvalid host: $6 - %e -> ok $NInvalid host: $6 - gone',
    'callout: check_metermaid.so,throttle "" -> ok',
    'callout: check_metermaid.so,query t,k -> fail',
    'random: 0.25',
    'expect.output: ""',
    'expect.arg.<: syslog text',
    'expect.reply: 550 line one',
    'expect.reply: 550 line two',
    '',
  ].join('\n');
  const f = parseCasesFile('y.cases', text);
  assert.deepEqual(f.header, {
    map: 'F4.map',
    domains: [
      { name: 'example.com', canonical: 'example.com' },
      { name: 'alias.example', canonical: 'example.com' },
    ],
  });
  const c = f.cases[0];
  assert.ok(c?.kind === 'mapping');
  assert.equal(c.row, 75);
  assert.deepEqual(c.callouts, [
    { image: 'dns_verify.so', routine: 'dns_verify', arg: 'x|$y|$NInvalid host: $6 - %e', answer: { ok: true, value: '$NInvalid host: $6 - gone' } },
    { image: 'check_metermaid.so', routine: 'throttle', arg: '', answer: { ok: true, value: '' } },
    { image: 'check_metermaid.so', routine: 'query', arg: 't,k', answer: { ok: false } },
  ]);
  assert.deepEqual(c.random, [0.25]);
  assert.equal(c.expect.output, '');
  assert.deepEqual(c.expect.args, { '<': 'syslog text' });
  assert.deepEqual(c.expect.reply, ['550 line one', '550 line two']);
});
