import { test } from 'node:test';
import assert from 'node:assert/strict';
import { locateJsonError } from './json-locate.js';

test('valid JSON has no error', () => {
  for (const t of ['{}', '[]', ' {"a": [1, -2.5e3, true, false, null, "x\\n\\u00e9"]} \n', '"s"', '0']) {
    assert.equal(locateJsonError(t), undefined, t);
    JSON.parse(t);
  }
});

test('errors carry the 1-based line and column of the offending character', () => {
  const cases: [string, number, number, RegExp][] = [
    ['{\n  "a": 1,\n}', 3, 1, /trailing comma/],
    ['{\n  "a": }', 2, 8, /expected a value, found "}"/],
    ['{"a" 1}', 1, 6, /expected ":"/],
    ['{"a": tru}', 1, 7, /expected a value/],
    ['[1 2]', 1, 4, /expected "," or "]"/],
    ['{"a": "x', 1, 7, /unterminated string/],
    ['{"a": "\\q"}', 1, 8, /bad escape/],
    ['{} x', 1, 4, /text after the end/],
    ['', 1, 1, /unexpected end of file/],
    ["{'a': 1}", 1, 2, /double-quoted string/],
  ];
  for (const [text, line, column, message] of cases) {
    assert.throws(() => JSON.parse(text), SyntaxError, text);
    const e = locateJsonError(text);
    assert.ok(e, text);
    assert.deepEqual([e.line, e.column], [line, column], text);
    assert.match(e.message, message, text);
  }
});

test('deep nesting is reported, not recursed into without bound', () => {
  const e = locateJsonError('['.repeat(10_000));
  assert.ok(e);
  assert.match(e.message, /nested too deeply/);
});
