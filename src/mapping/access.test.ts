import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMappingsText, mapSync, accessResult } from './index.js';

function run(template: string, probe = 'anything') {
  const r = compileMappingsText(`T\n  *  ${template}\n`);
  assert.ok(r.ok);
  return accessResult(mapSync(r.set, 'T', probe));
}

test('§4.3 arguments are read in the fixed order, wherever the flags stand (the four documented forms)', () => {
  for (const t of ['$N$D30|Relaying$ not$ allowed', '30|Relaying$ not$ allowed$D$N', '$N30|Relaying$ not$ allowed$D', '30|$N$DRelaying$ not$ allowed']) {
    const a = run(t);
    assert.deepEqual(a.args, { D: '30', N: 'Relaying not allowed' }, t);
    assert.equal(a.flags, 'DN', t);
    assert.equal(a.decision, 'reject', t);
  }
});

test('§4.3 full order U J K I < > D T A X then N takes the rest, "|" included', () => {
  const a = run('$N$X$A$T$D$>$<$I$K$J$U7|new@x|snd@x|user|id|seen|rejected|-50|[tag]|X-H:$ 1|4.7.1|text|with|bars');
  assert.deepEqual(a.args, {
    U: '7',
    J: 'new@x',
    K: 'snd@x',
    I: 'user|id',
    '<': 'seen',
    '>': 'rejected',
    D: '-50',
    T: '[tag]',
    A: 'X-H: 1',
    X: '4.7.1',
    N: 'text|with|bars',
  });
  assert.equal(a.flags, '<>ADIJKNTUX');
});

test('§4.4 decision: N/F reject and win over Y; Y allows; neither is none; lower-case y/n/f are synonyms', () => {
  assert.equal(run('$Y$N').decision, 'reject');
  assert.equal(run('$FGo$ away').args.F, 'Go away');
  assert.equal(run('$FGo$ away').decision, 'reject');
  assert.equal(run('$y').decision, 'allow');
  assert.equal(run('$n').decision, 'reject');
  assert.equal(run('$H').decision, 'none');
  assert.equal(run('$YEXTERNAL').output, 'EXTERNAL');
  assert.deepEqual(run('$YEXTERNAL').args, {});
});
