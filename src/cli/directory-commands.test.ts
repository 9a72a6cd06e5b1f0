import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { DIRECTORY_COMMANDS, readFirstLine } from './directory-commands.js';
import { EXIT } from './command.js';
import { DirectoryStore } from '../directory/store.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Run {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs one command's handler as main.ts would after commander parsed the line. Standard input gets
 * `stdin` and stays open, like a terminal, unless `end` is set: the password reader must not wait
 * for end-of-file.
 */
async function cli(words: string, args: string[], opts: Record<string, unknown>, stdin?: string, end = false): Promise<Run> {
  const spec = DIRECTORY_COMMANDS.find((c) => c.path.join(' ') === words);
  assert.ok(spec, words);
  const io = { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() };
  let out = '';
  let err = '';
  io.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  io.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  if (stdin !== undefined) io.stdin.write(stdin);
  if (end) io.stdin.end();
  const code = await spec.run(io, args, opts);
  return { code, out, err };
}

async function setup(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const data = await tempDir(t);
  assert.equal((await cli('domain add', ['example.com'], { data })).code, EXIT.ok);
  return data;
}

async function reopen(data: string): Promise<DirectoryStore> {
  const r = await DirectoryStore.open(data);
  assert.ok(r.ok);
  return r.value;
}

test('no command takes a password as an argument; the ones that need one require --password-stdin', () => {
  for (const spec of DIRECTORY_COMMANDS) {
    for (const o of spec.options) assert.doesNotMatch(o.flags, /--password(?!-stdin\b)/, `${spec.path.join(' ')} ${o.flags}`);
  }
  for (const words of ['user add', 'user passwd']) {
    const spec = DIRECTORY_COMMANDS.find((c) => c.path.join(' ') === words);
    const o = spec?.options.find((x) => x.flags === '--password-stdin');
    assert.equal(o?.required, true, words);
  }
  assert.deepEqual(
    DIRECTORY_COMMANDS.map((c) => c.path.join(' ')),
    ['domain add', 'domain list', 'user add', 'user passwd', 'user disable', 'user enable', 'user list'],
  );
});

test('domain add and list, with an alias domain, as text and JSON', async (t) => {
  const data = await setup(t);
  const alias = await cli('domain add', ['Example.NET'], { data, aliasOf: 'example.com' });
  assert.deepEqual(alias, { code: 0, out: 'example.net is an alias of example.com\n', err: '' });
  const text = await cli('domain list', [], { data });
  assert.equal(text.out, 'example.com\nexample.net  (alias of example.com)\n');
  const json = await cli('domain list', [], { data, json: true });
  assert.deepEqual(
    json.out.trim().split('\n').map((l) => JSON.parse(l) as unknown),
    [
      { name: 'example.com', canonical: 'example.com', attributes: {} },
      { name: 'example.net', canonical: 'example.com', attributes: {} },
    ],
  );
});

test('domain add errors exit 2 with a message that says what to do', async (t) => {
  const data = await setup(t);
  const r = await cli('domain add', ['example.org'], { data, aliasOf: 'example.info' });
  assert.equal(r.code, EXIT.usage);
  assert.equal(r.err, 'portcullis: domain example.info is not hosted: add it first with `portcullis domain add example.info`\n');
  assert.equal((await cli('domain add', ['example.com'], { data })).code, EXIT.usage);
});

test('user add reads the password from the first line of standard input, CR LF stripped', async (t) => {
  const data = await setup(t);
  const r = await cli('user add', ['alice@example.com'], { data, passwordStdin: true, alias: ['postmaster@example.com'] }, 'pass word \r\nnext line\n');
  assert.deepEqual(r, { code: 0, out: 'added user alice@example.com\n', err: '' });
  const store = await reopen(data);
  assert.equal((await store.authenticate('alice@example.com', 'pass word ')).ok, true);
  assert.equal(store.userByAddress('postmaster@example.com')?.login, 'alice@example.com');

  const bob = await cli('user add', ['bob@example.com'], { data, passwordStdin: true, login: 'bob' }, 'builder', true);
  assert.equal(bob.out, 'added user bob (bob@example.com)\n');
  assert.equal((await (await reopen(data)).authenticate('bob', 'builder')).ok, true);
});

test('user add without a usable password, or into a domain not hosted, exits 2 and changes nothing', async (t) => {
  const data = await setup(t);
  const cases: [Record<string, unknown>, string | undefined, boolean, RegExp][] = [
    [{ data }, 'pw\n', false, /--password-stdin/],
    [{ data, passwordStdin: true }, '', true, /standard input is empty/],
    [{ data, passwordStdin: true }, '\r\n', false, /the password is empty/],
    [{ data, passwordStdin: true }, 'x'.repeat(5000), true, /longer than 4096 bytes/],
  ];
  for (const [opts, stdin, end, message] of cases) {
    const r = await cli('user add', ['carol@example.com'], opts, stdin, end);
    assert.equal(r.code, EXIT.usage, String(message));
    assert.match(r.err, message);
  }
  const notHosted = await cli('user add', ['carol@example.org'], { data, passwordStdin: true }, 'pw\n');
  assert.equal(notHosted.code, EXIT.usage);
  assert.match(notHosted.err, /domain example\.org is not hosted: add it first with `portcullis domain add example\.org`/);
  assert.deepEqual((await reopen(data)).listUsers(), []);
});

test('user passwd, disable, enable and list', async (t) => {
  const data = await setup(t);
  await cli('user add', ['alice@example.com'], { data, passwordStdin: true, alias: ['a@example.com'] }, 'one\n');
  await cli('user add', ['bob@example.com'], { data, passwordStdin: true, login: 'bob' }, 'two\n');

  assert.equal((await cli('user passwd', ['ALICE@example.com'], { data, passwordStdin: true }, 'three\n')).out, 'changed the password of alice@example.com\n');
  assert.equal((await (await reopen(data)).authenticate('alice@example.com', 'three')).ok, true);

  assert.equal((await cli('user disable', ['bob'], { data })).out, 'bob is inactive\n');
  assert.deepEqual(await (await reopen(data)).authenticate('bob', 'two'), { ok: false, reason: 'inactive' });
  const text = await cli('user list', [], { data });
  assert.equal(text.out, 'alice@example.com  active  aliases a@example.com\nbob@example.com  inactive  login bob\n');
  assert.equal((await cli('user enable', ['bob'], { data })).out, 'bob is active\n');
  assert.equal((await (await reopen(data)).authenticate('bob', 'two')).ok, true);

  const json = await cli('user list', [], { data, json: true });
  assert.deepEqual(
    json.out.trim().split('\n').map((l) => JSON.parse(l) as unknown),
    [
      { login: 'alice@example.com', address: 'alice@example.com', aliases: ['a@example.com'], status: 'active' },
      { login: 'bob', address: 'bob@example.com', aliases: [], status: 'active' },
    ],
  );
  assert.doesNotMatch(json.out + text.out, /argon2/);

  const unknown = await cli('user disable', ['carol'], { data });
  assert.equal(unknown.code, EXIT.usage);
  assert.match(unknown.err, /no user with login carol/);
});

test('listing a data directory that does not exist is a usage error, and creates nothing', async (t) => {
  const data = join(await tempDir(t), 'typo');
  const r = await cli('user list', [], { data });
  assert.equal(r.code, EXIT.usage);
  assert.match(r.err, /is not a directory: give the server's data directory with --data/);
  await assert.rejects(readFile(join(data, 'directory.json')), { code: 'ENOENT' });
});

test('a broken directory.json is reported with its position and exits 2', async (t) => {
  const data = await setup(t);
  const path = join(data, 'directory.json');
  await writeFile(path, '{\n  "version": 1,\n  "domains": [}\n');
  const r = await cli('domain list', [], { data });
  assert.equal(r.code, EXIT.usage);
  assert.equal(r.err, `portcullis: ${path}:3:15: not valid JSON: expected a value, found "}"\n`);
});

/** A running server's control socket that reloads its own store when asked, as the daemon will. */
async function runningServer(t: { after(fn: () => Promise<void>): void }, data: string, fail?: string): Promise<{ store: DirectoryStore; requests: string[] }> {
  const store = await reopen(data);
  const requests: string[] = [];
  const server = createServer((socket) => {
    socket.setEncoding('utf8');
    socket.once('data', (line: string) => {
      requests.push(line);
      void store.reload().then((r) => {
        socket.end(JSON.stringify(fail !== undefined ? { ok: false, error: fail } : r.ok ? { ok: true } : { ok: false, error: r.error.message }) + '\n');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(join(data, 'control.sock'), resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { store, requests };
}

test('after a change, a running server is told and reloads: no restart needed', async (t) => {
  const data = await setup(t);
  const server = await runningServer(t, data);
  assert.equal(server.store.userByAddress('alice@example.com'), undefined);
  const r = await cli('user add', ['alice@example.com'], { data, passwordStdin: true }, 'pw\n');
  assert.deepEqual(r, { code: 0, out: 'added user alice@example.com\nthe running server has reloaded the directory\n', err: '' });
  assert.deepEqual(server.requests, ['{"cmd":"directory-reload"}\n']);
  assert.equal((await server.store.authenticate('alice@example.com', 'pw')).ok, true);
  await cli('user disable', ['alice@example.com'], { data });
  assert.deepEqual(await server.store.authenticate('alice@example.com', 'pw'), { ok: false, reason: 'inactive' });
});

test('a server that fails to reload makes the command fail (exit 1), though the change is saved', async (t) => {
  const data = await setup(t);
  await runningServer(t, data, 'out of memory');
  const r = await cli('domain add', ['example.org'], { data });
  assert.equal(r.code, EXIT.failure);
  assert.equal(r.err, `portcullis: the change is saved in ${join(data, 'directory.json')}, but the running server did not reload it: out of memory\n`);
  assert.ok((await reopen(data)).domain('example.org'));
});

test('readFirstLine returns at the first newline without waiting for end-of-file, and joins pieces', async () => {
  const input = new PassThrough();
  input.write('first\nsecond\n');
  assert.deepEqual(await readFirstLine(input), { line: 'first' });
  const split = new PassThrough();
  const pending = readFirstLine(split);
  split.write('pa');
  split.write('ss\r');
  split.write('\n');
  assert.deepEqual(await pending, { line: 'pass' });
});
