import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DirectoryResult } from './errors.js';
import { DirectoryStore } from './store.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function must<T>(r: DirectoryResult<T>): T {
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function errorOf<T>(r: DirectoryResult<T>): { code: string; message: string } {
  if (r.ok) assert.fail('expected an error');
  return r.error;
}

/** A store with example.com, its alias example.net, and alice (two aliases). */
async function sample(t: { after(fn: () => Promise<void>): void }): Promise<{ dir: string; store: DirectoryStore }> {
  const dir = await tempDir(t);
  const store = must(await DirectoryStore.open(dir));
  must(await store.addDomain('Example.COM'));
  must(await store.addDomain('example.net', { aliasOf: 'example.com' }));
  must(await store.addUser({ address: 'Alice@Example.com', aliases: ['postmaster@example.com', 'a.smith@example.com'], password: 'wonderland' }));
  return { dir, store };
}

test('open creates an empty directory.json (mode 0600) and a second open reads it back', async (t) => {
  const dir = join(await tempDir(t), 'data');
  const store = must(await DirectoryStore.open(dir));
  assert.deepEqual(store.listDomains(), []);
  const text = await readFile(join(dir, 'directory.json'), 'utf8');
  assert.deepEqual(JSON.parse(text), { version: 1, domains: [], users: [] });
  assert.equal((await stat(join(dir, 'directory.json'))).mode & 0o777, 0o600);
  await assert.rejects(stat(join(dir, 'directory.lock')), { code: 'ENOENT' });
});

test('open with create: false leaves a missing file alone', async (t) => {
  const dir = await tempDir(t);
  const store = must(await DirectoryStore.open(dir, { create: false }));
  assert.deepEqual(store.listUsers(), []);
  await assert.rejects(stat(join(dir, 'directory.json')), { code: 'ENOENT' });
});

test('round trip: what one store writes, another reads, and the file is readable JSON', async (t) => {
  const { dir, store } = await sample(t);
  const again = must(await DirectoryStore.open(dir));
  assert.deepEqual(again.listDomains(), store.listDomains());
  assert.deepEqual(again.listUsers(), store.listUsers());
  const file = JSON.parse(await readFile(join(dir, 'directory.json'), 'utf8')) as { domains: unknown; users: { passwordHash: string }[] };
  assert.deepEqual(file.domains, [{ name: 'example.com' }, { name: 'example.net', aliasOf: 'example.com' }]);
  assert.equal(file.users.length, 1);
  assert.deepEqual({ ...file.users[0], passwordHash: 'x' }, {
    login: 'Alice@example.com',
    address: 'Alice@example.com',
    aliases: ['postmaster@example.com', 'a.smith@example.com'],
    passwordHash: 'x',
    status: 'active',
  });
  assert.match(file.users[0]?.passwordHash ?? '', /^\$argon2id\$/);
});

test('domains, logins and addresses are found case-insensitively; the local part keeps its case', async (t) => {
  const { store } = await sample(t);
  assert.equal(store.domain('EXAMPLE.com')?.name, 'example.com');
  const alice = store.userByLogin('alice@EXAMPLE.COM');
  assert.ok(alice);
  assert.equal(alice.address, 'Alice@example.com');
  assert.equal(store.userByAddress('ALICE@example.com'), alice);
  assert.equal(store.userByAddress('alice@example.org'), undefined);
  assert.equal(store.userByAddress('bob@example.com'), undefined);
  assert.equal(store.userByAddress('not-an-address'), undefined);
});

test('aliases resolve to their owner, and cannot be taken twice', async (t) => {
  const { store } = await sample(t);
  assert.equal(store.userByAddress('PostMaster@example.com')?.login, 'Alice@example.com');
  assert.equal(store.userByAddress('a.smith@example.com')?.login, 'Alice@example.com');
  must(await store.addUser({ address: 'bob@example.com', password: 'builder' }));
  const e = errorOf(await store.addAlias('bob@example.com', 'POSTMASTER@example.com'));
  assert.equal(e.code, 'address-taken');
  assert.match(e.message, /postmaster@example\.com already belongs to the user with login Alice@example\.com/i);
  const bob = must(await store.addAlias('BOB@example.com', 'robert@example.com'));
  assert.deepEqual(bob.aliases, ['robert@example.com']);
  assert.equal(store.userByAddress('Robert@Example.com')?.login, 'bob@example.com');
  assert.equal(errorOf(await store.addUser({ address: 'Bob@example.com', login: 'other', password: 'x' })).code, 'address-taken');
  assert.equal(errorOf(await store.addUser({ address: 'carol@example.com', login: 'BOB@example.com', password: 'x' })).code, 'login-taken');
  assert.equal(errorOf(await store.addUser({ address: 'd@example.com', aliases: ['D@example.com'], password: 'x' })).code, 'address-taken');
});

test('an address in an alias domain is the same local part in the canonical domain', async (t) => {
  const { store } = await sample(t);
  assert.equal(store.userByAddress('alice@example.net')?.login, 'Alice@example.com');
  assert.equal(store.userByAddress('Postmaster@EXAMPLE.NET')?.login, 'Alice@example.com');
  assert.equal(store.userByAddress('nobody@example.net'), undefined);
  assert.deepEqual(store.domain('example.net'), { name: 'example.net', canonical: 'example.com', attributes: {} });
  // Addresses belong in the canonical domain; the alias domain receives for them anyway.
  const e = errorOf(await store.addUser({ address: 'carol@example.net', password: 'x' }));
  assert.equal(e.code, 'domain-is-alias');
  assert.match(e.message, /use carol@example\.com, which also receives mail for carol@example\.net/);
  assert.equal(errorOf(await store.addAlias('alice@example.com', 'al@example.net')).code, 'domain-is-alias');
});

test('domain rules: not hosted, already hosted, alias of an alias, in use', async (t) => {
  const { store } = await sample(t);
  const notHosted = errorOf(await store.addUser({ address: 'x@example.org', password: 'x' }));
  assert.equal(notHosted.code, 'domain-not-hosted');
  assert.equal(notHosted.message, 'domain example.org is not hosted: add it first with `portcullis domain add example.org`');
  assert.equal(errorOf(await store.addDomain('example.org', { aliasOf: 'example.info' })).code, 'domain-not-hosted');
  assert.match(errorOf(await store.addDomain('EXAMPLE.com')).message, /already hosted/);
  assert.match(errorOf(await store.addDomain('example.net')).message, /already an alias of example\.com/);
  const chain = errorOf(await store.addDomain('example.org', { aliasOf: 'example.net' }));
  assert.equal(chain.code, 'domain-is-alias');
  assert.match(chain.message, /--alias-of example\.com/);
  assert.equal(errorOf(await store.addDomain('example.org', { aliasOf: 'example.org' })).code, 'invalid-name');
  assert.equal(errorOf(await store.addDomain('bad_domain')).code, 'invalid-name');
  assert.equal(errorOf(await store.addDomain('example.com.')).code, 'invalid-name');
  assert.equal(errorOf(await store.addDomain('bücher.example')).code, 'invalid-name');
  assert.equal(errorOf(await store.removeDomain('example.com')).code, 'domain-in-use');
  must(await store.removeDomain('example.net'));
  assert.equal(store.domain('example.net'), undefined);
  assert.match(errorOf(await store.removeDomain('example.com')).message, /1 user\(s\) \(Alice@example\.com\)/);
  must(await store.removeUser('alice@example.com'));
  must(await store.removeDomain('example.com'));
  assert.deepEqual(store.listDomains(), []);
});

test('malformed addresses, logins and passwords are refused before anything is written', async (t) => {
  const { store } = await sample(t);
  for (const address of ['alice', '@example.com', 'alice@', 'a b@example.com', '"quoted"@example.com', 'a..b@example.com', `${'x'.repeat(65)}@example.com`]) {
    assert.equal(errorOf(await store.addUser({ address, password: 'x' })).code, 'invalid-name', address);
  }
  assert.equal(errorOf(await store.addUser({ address: 'ok@example.com', login: 'two words', password: 'x' })).code, 'invalid-name');
  assert.equal(errorOf(await store.addUser({ address: 'ok@example.com', password: '' })).code, 'invalid-password');
  assert.equal(errorOf(await store.setPassword('alice@example.com', 'a\0b')).code, 'invalid-password');
  assert.equal(errorOf(await store.setPassword('nobody', 'x')).code, 'unknown-user');
  assert.equal(store.userByAddress('ok@example.com'), undefined);
  // Non-ASCII local parts (RFC 6531) are accepted.
  must(await store.addUser({ address: 'jürgen@example.com', password: 'x' }));
});

test('authenticate: ok, unknown user, bad password, inactive', async (t) => {
  const { store } = await sample(t);
  const good = await store.authenticate('ALICE@example.com', 'wonderland');
  assert.equal(good.ok, true);
  assert.equal(good.ok && good.user.address, 'Alice@example.com');
  assert.deepEqual(await store.authenticate('nobody@example.com', 'wonderland'), { ok: false, reason: 'unknown-user' });
  assert.deepEqual(await store.authenticate('alice@example.com', 'Wonderland'), { ok: false, reason: 'bad-password' });
  const disabled = must(await store.setStatus('alice@example.com', 'inactive'));
  assert.equal(disabled.status, 'inactive');
  assert.deepEqual(await store.authenticate('alice@example.com', 'wonderland'), { ok: false, reason: 'inactive' });
  // A wrong password tells nothing about the account, not even that it is disabled.
  assert.deepEqual(await store.authenticate('alice@example.com', 'guess'), { ok: false, reason: 'bad-password' });
  // Mail to an inactive user is still theirs: only AUTH is refused.
  assert.equal(store.userByAddress('alice@example.com')?.status, 'inactive');
  must(await store.setStatus('alice@example.com', 'active'));
  must(await store.setPassword('alice@example.com', 'looking-glass'));
  assert.deepEqual(await store.authenticate('alice@example.com', 'wonderland'), { ok: false, reason: 'bad-password' });
  assert.equal((await store.authenticate('alice@example.com', 'looking-glass')).ok, true);
});

test('domainAttribute answers $}domain,attribute{ like the mapping engine expects', async (t) => {
  const { dir, store } = await sample(t);
  const path = join(dir, 'directory.json');
  const file = JSON.parse(await readFile(path, 'utf8')) as { domains: { name: string; attributes?: Record<string, string> }[] };
  file.domains = file.domains.map((d) => (d.name === 'example.com' ? { ...d, attributes: { mailRoutingHosts: 'mx.example.com' } } : d));
  await writeFile(path, JSON.stringify(file));
  must(await store.reload());
  assert.deepEqual(store.domainAttribute('EXAMPLE.COM', '_domain_name_'), { ok: true, value: 'example.com' });
  assert.deepEqual(store.domainAttribute('example.net', '_domain_name_'), { ok: true, value: 'example.com' });
  assert.deepEqual(store.domainAttribute('example.net', '_canonical_name_'), { ok: true, value: 'example.com' });
  assert.deepEqual(store.domainAttribute('example.com', 'mailRoutingHosts'), { ok: true, value: 'mx.example.com' });
  // An alias domain answers with its canonical domain's attributes.
  assert.deepEqual(store.domainAttribute('example.net', 'mailRoutingHosts'), { ok: true, value: 'mx.example.com' });
  assert.deepEqual(store.domainAttribute('example.com', 'noSuchAttribute'), { ok: false });
  assert.deepEqual(store.domainAttribute('example.org', '_domain_name_'), { ok: false });
});

test('a broken file: open reports where, reload keeps the old data, a change does not overwrite it', async (t) => {
  const { dir, store } = await sample(t);
  const path = join(dir, 'directory.json');
  const good = await readFile(path, 'utf8');
  const broken = good.replace('"example.net",', '"example.net"');
  await writeFile(path, broken);

  const opened = await DirectoryStore.open(dir);
  const e = errorOf(opened);
  assert.equal(e.code, 'file-invalid');
  assert.match(e.message, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: not valid JSON: expected "," or "}", found "\\\\""`));
  assert.doesNotMatch(e.message, /argon2/);

  const r = errorOf(await store.reload());
  assert.equal(r.code, 'file-invalid');
  assert.equal(store.userByAddress('alice@example.net')?.login, 'Alice@example.com');
  assert.equal((await store.authenticate('alice@example.com', 'wonderland')).ok, true);

  assert.equal(errorOf(await store.addDomain('example.org')).code, 'file-invalid');
  assert.equal(await readFile(path, 'utf8'), broken);

  await writeFile(path, good);
  assert.deepEqual(must(await store.reload()), { domains: 2, users: 1 });
});

test('a file that parses but breaks the rules is reported with the entry at fault', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'directory.json');
  const cases: [unknown, RegExp][] = [
    [{ version: 2, domains: [], users: [] }, /version: must be 1/],
    [{ version: 1, domains: [{ name: 'example.com', alias: 'x' }], users: [] }, /domains\[0\]\.alias: unknown field/],
    [{ version: 1, domains: [{ name: 'a.example' }, { name: 'A.example' }], users: [] }, /domains\[1\]\.name: a\.example is also domains\[0\]/],
    [{ version: 1, domains: [{ name: 'b.example', aliasOf: 'c.example' }], users: [] }, /domains\[0\]\.aliasOf: c\.example is not a hosted domain/],
    [
      { version: 1, domains: [{ name: 'a.example' }], users: [{ login: 'x', address: 'x@b.example', aliases: [], passwordHash: 'h', status: 'active' }] },
      /users\[0\]\.address: b\.example is not a hosted domain/,
    ],
    [
      { version: 1, domains: [{ name: 'a.example' }], users: [{ login: 'x', address: 'x@a.example', aliases: [], passwordHash: 'h', status: 'disabled' }] },
      /users\[0\]\.status: must be "active" or "inactive"/,
    ],
    [
      {
        version: 1,
        domains: [{ name: 'a.example' }],
        users: [
          { login: 'x', address: 'x@a.example', aliases: [], passwordHash: 'h', status: 'active' },
          { login: 'y', address: 'y@a.example', aliases: ['X@a.example'], passwordHash: 'h', status: 'active' },
        ],
      },
      /users\[1\]\.aliases\[0\]: X@a\.example also belongs to users\[0\] \(x\)/,
    ],
  ];
  for (const [content, message] of cases) {
    await writeFile(path, JSON.stringify(content));
    const e = errorOf(await DirectoryStore.open(dir));
    assert.equal(e.code, 'file-invalid');
    assert.match(e.message, message);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
  }
});

test('a user with a malformed hash in a hand-edited file cannot log in, and nothing throws', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'directory.json'),
    JSON.stringify({ version: 1, domains: [{ name: 'a.example' }], users: [{ login: 'x', address: 'x@a.example', passwordHash: 'secret', status: 'active' }] }),
  );
  const store = must(await DirectoryStore.open(dir));
  assert.deepEqual(await store.authenticate('x', 'secret'), { ok: false, reason: 'bad-password' });
});

test('changes from one process run in order and all reach the file', async (t) => {
  const dir = await tempDir(t);
  const store = must(await DirectoryStore.open(dir));
  must(await store.addDomain('example.com'));
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => store.addUser({ address: `u${i}@example.com`, password: 'x' })));
  results.forEach(must);
  const other = must(await DirectoryStore.open(dir));
  assert.equal(other.listUsers().length, 5);
});
