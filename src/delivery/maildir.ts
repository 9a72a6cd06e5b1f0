// The embedded message store: local mailboxes as Maildirs under <dataDir>/mailboxes/<domain>/<local>/,
// so a fresh install delivers local mail with no external service. Each message is written to
// tmp/, fsynced, then renamed into new/ (the Maildir protocol: a reader never sees a partial
// message). A site with a real message store sets delivery.lmtp.server instead.

import { hostname } from 'node:os';
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';

let seq = 0;

/** The Maildir of a mailbox address (lower-cased; path separators refused). */
export function maildirOf(root: string, address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  const local = address.slice(0, at).toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  const safe = (s: string): boolean => s !== '' && s !== '.' && s !== '..' && !/[/\\\0]/.test(s);
  if (!safe(local) || !safe(domain)) return null;
  return join(root, domain, local, 'Maildir');
}

/** Delivers one message into a Maildir; returns the file name in new/. */
export async function deliverToMaildir(dir: string, returnPath: string, deliveredTo: string, message: Buffer): Promise<string> {
  await Promise.all(['tmp', 'new', 'cur'].map((d) => mkdir(join(dir, d), { recursive: true, mode: 0o700 })));
  const now = Date.now();
  const name = `${Math.floor(now / 1000)}.M${(now % 1000) * 1000}P${process.pid}Q${++seq}.${hostname().replace(/[/:]/g, '_')}`;
  const tmp = join(dir, 'tmp', name);
  const head = Buffer.from(`Return-Path: <${returnPath}>\r\nDelivered-To: ${deliveredTo}\r\n`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(Buffer.concat([head, message]));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, 'new', name));
  // The runner records the target as delivered once this returns: the rename must be durable too.
  const d = await open(join(dir, 'new'), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return name;
}
