// Properties of the configuration parsers on arbitrary administrator input: msg.conf and imta.cnf
// never throw, and every problem points at a real line and column of the text. Fixed seeds, so a
// failure reproduces.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCidr } from './cidr.js';
import { parseImtaCnf } from './imta-cnf.js';
import { readOptions } from './msgconf.js';
import type { ConfigProblem } from './types.js';

function assertLocated(text: string, problems: readonly ConfigProblem[]): void {
  const lines = text.split('\n');
  for (const p of problems) {
    assert.ok(p.line >= 1 && p.line <= Math.max(1, lines.length), `line ${p.line} of ${lines.length}: ${p.message}`);
    const length = (lines[p.line - 1] ?? '').replace(/\r$/, '').length;
    assert.ok(p.col >= 1 && p.col <= length + 1, `col ${p.col} of ${length} on line ${p.line}: ${p.message}`);
  }
}

/** Lines built from the characters and words that matter to both formats. */
const line = fc
  .array(
    fc.constantFrom(
      ' ', '\t', '=', '"', '!', '#', '\\', '$', '<', ',', '/', ':', '.', 'x', '7', '0',
      'service.smtp.port', 'smtp.proxyhosts', 'smtp.commandtimeout', 'smtp.authwithouttls', 'service.tls.certfile',
      'maxjobs', 'notices', 'backoff', 'defaulthost', 'pool', 'defaults', 'tcp_local', '"pt5m"', '10.0.0.0/8', '::1', '5m',
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join(''));
const file = fc.array(line, { maxLength: 14 }).map((lines) => lines.join('\n'));

test('msg.conf: any text gives options or located problems, never an exception', () => {
  fc.assert(
    fc.property(file, (text) => {
      const r = readOptions('msg.conf', text, { configDir: '/etc/portcullis' });
      assertLocated(text, r.problems);
      assert.equal(r.options === null, r.problems.some((p) => p.severity === 'error'));
    }),
    { seed: 20240603, numRuns: 2000 },
  );
});

test('imta.cnf: any text gives a config and located problems, never an exception', () => {
  fc.assert(
    fc.property(file, (text) => {
      const r = parseImtaCnf('imta.cnf', text);
      assertLocated(text, r.problems);
    }),
    { seed: 20240604, numRuns: 2000 },
  );
});

test('parseCidr never throws and round-trips the prefix of what it accepts', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 128 }), (ip, bits) => {
      const r = parseCidr(`${ip}/${bits}`);
      const max = ip.includes(':') ? 128 : 32;
      assert.equal(r.ok, bits <= max);
      if (r.ok) assert.equal(r.cidr.prefix, bits);
    }),
    { seed: 20240605, numRuns: 2000 },
  );
});
