// Dovecot as the message store behind LMTP (Debian's dovecot-core and dovecot-lmtpd,
// ../shared/peers.md C.7): a private configuration in a temporary directory, an LMTP listener on a
// free loopback port and on a UNIX socket (lmtpSocket), users from a passwd-file, mail stored as nobody in
// <dir>/mail/<domain>/<user>/Maildir. maildir(address) reads delivered messages back.
// Missing Dovecot is an error, not a skip: CI installs it (.ci/run).

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './daemon.js';
import { freePort } from './free-port.js';

export const DOVECOT = '/usr/sbin/dovecot';

function config(dir: string, port: number, root: boolean): string {
  return `# Written by tests/support/dovecot.ts
protocols = lmtp
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
ssl = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
lda_mailbox_autocreate = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/users
  default_fields = ${root ? 'uid=nobody gid=nogroup ' : ''}home=${dir}/mail/%d/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${port}
  }
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
`;
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    const done = (v: boolean): void => {
      c.destroy();
      resolve(v);
    };
    c.setTimeout(1000, () => done(false));
    c.on('error', () => done(false));
    c.on('data', (d: Buffer) => done(d.toString('latin1').startsWith('220')));
  });
}

export class Dovecot {
  private daemon: Daemon | null = null;

  private constructor(
    readonly dir: string,
    readonly lmtpPort: number,
  ) {}

  /** Starts Dovecot with LMTP on a free port; `users` are full addresses (user@domain). */
  static async start(opts: { users: readonly string[] }): Promise<Dovecot> {
    if (!existsSync(DOVECOT)) throw new Error(`${DOVECOT} not found: install Debian's dovecot-core and dovecot-lmtpd (see .ci/run)`);
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-dovecot-'));
    chmodSync(dir, 0o755);
    for (const d of ['run', 'state', 'mail']) mkdirSync(join(dir, d));
    const root = userInfo().uid === 0;
    if (root) chownSync(join(dir, 'mail'), 65534, 65534);
    writeFileSync(join(dir, 'users'), opts.users.map((u) => `${u}:{PLAIN}secret::::::\n`).join(''));
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const d = new Dovecot(dir, await freePort());
      writeFileSync(join(dir, 'dovecot.conf'), config(dir, d.lmtpPort, root));
      const check = spawnSync('/usr/bin/doveconf', ['-c', join(dir, 'dovecot.conf'), '-n'], { encoding: 'utf8' });
      if (check.status !== 0) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`doveconf rejected the test configuration: ${check.stderr}`);
      }
      if (await d.spawn()) return d;
      last = d.log;
      await d.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dovecot did not start: ${last}`);
  }

  private async spawn(): Promise<boolean> {
    this.daemon = Daemon.spawn(DOVECOT, ['-F', '-c', join(this.dir, 'dovecot.conf')]);
    return this.daemon.waitReady(() => answers(this.lmtpPort), 150);
  }

  /** The LMTP UNIX socket. */
  get lmtpSocket(): string {
    return join(this.dir, 'run', 'lmtp');
  }

  /** Dovecot's log so far. */
  get log(): string {
    return this.daemon?.stderr ?? '';
  }

  /** The messages in a user's INBOX (Maildir new/ and cur/), oldest first, as stored. */
  maildir(address: string): Buffer[] {
    const [user, domain] = address.split('@') as [string, string];
    const base = join(this.dir, 'mail', domain, user, 'Maildir');
    const files: string[] = [];
    for (const sub of ['new', 'cur']) {
      const d = join(base, sub);
      if (existsSync(d)) files.push(...readdirSync(d).map((n) => join(d, n)));
    }
    // Maildir names start with the delivery time in seconds, then a unique part.
    return files.sort().map((f) => readFileSync(f));
  }

  private async stop(): Promise<void> {
    await this.daemon?.stop(3000);
  }

  /** Stops Dovecot and removes its files. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
