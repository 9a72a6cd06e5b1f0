// Error goldens: every tests/golden/mapping/bad/<name>.map must fail to load with exactly the
// problems listed in <name>.err, one per line as formatProblem prints them
// ("file:line:col: message", the file named relative to the repository root), in order.
// Lines of the .err file starting with "#" are comments, except that a first line
// "# todo: <why>" marks a golden whose expected output is what the engine *should* print but does
// not yet; it runs as a todo, so it is listed without failing the suite and shows up as passing
// once the engine is fixed. Files under bad/include/ are include fragments, not goldens.
//
// The files load with the scripted callout libraries (check_metermaid.so, dns_verify.so) and no
// hosted-domain directory, so unknown images and routines and a `$}` lookup are errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diskReader, formatProblem, loadMappings } from '../../src/mapping/index.js';
import { scriptedServices } from './scripted-services.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BAD_DIR = join(HERE, 'mapping', 'bad');

interface Golden {
  readonly expected: readonly string[];
  readonly todo: string | null;
}

function readGolden(path: string): Golden {
  const lines = readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const todo = /^# todo: (.+)$/.exec(lines[0] ?? '')?.[1] ?? null;
  return { expected: lines.filter((l) => !l.startsWith('#')), todo };
}

const entries = readdirSync(BAD_DIR).sort();
const maps = entries.filter((f) => f.endsWith('.map'));

void test('every bad/*.map has a .err golden and every .err a .map', () => {
  assert.ok(maps.length > 0, `no goldens in ${BAD_DIR}`);
  const missingErr = maps.filter((f) => !entries.includes(f.replace(/\.map$/, '.err')));
  const strayErr = entries.filter((f) => f.endsWith('.err') && !entries.includes(f.replace(/\.err$/, '.map')));
  assert.deepEqual({ missingErr, strayErr }, { missingErr: [], strayErr: [] });
});

for (const f of maps) {
  const errPath = join(BAD_DIR, f.replace(/\.map$/, '.err'));
  let golden: Golden;
  try {
    golden = readGolden(errPath);
  } catch {
    continue; // reported by the test above
  }
  const mapPath = relative(ROOT, join(BAD_DIR, f));
  const options = golden.todo === null ? {} : { todo: golden.todo };
  void test(`bad/${f} reports exactly bad/${f.replace(/\.map$/, '.err')}`, options, () => {
    assert.ok(golden.expected.length > 0, `${errPath} lists no problems; a bad golden must expect at least one`);
    const r = loadMappings(mapPath, { services: scriptedServices(null), read: (p) => diskReader(resolve(ROOT, p)) });
    assert.deepEqual(r.problems.map(formatProblem), golden.expected, `${mapPath}: problems differ from the golden`);
    assert.equal(r.ok, false, `${mapPath} loaded although it has errors`);
  });
}
