// Password hashing for the directory: argon2id, stored as a PHC string
// ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), so the parameters travel with each hash and a
// later change of policy still verifies old hashes. @node-rs/argon2 hashes and verifies on libuv's
// thread pool: an AUTH never blocks the event loop.

import { hash, verify } from '@node-rs/argon2';
import type { Options } from '@node-rs/argon2';

/**
 * OWASP's minimum for argon2id (Password Storage Cheat Sheet): 19 MiB of memory, 2 passes,
 * 1 lane. About 10 ms to verify on a current server core; an administrator who wants more raises
 * them here, and existing hashes keep verifying with the parameters they carry.
 */
export const HASH_PARAMETERS = {
  // @node-rs/argon2 declares Algorithm as an ambient const enum, which isolatedModules cannot
  // read; 2 is Algorithm.Argon2id.
  algorithm: 2,
  memoryCost: 19 * 1024, // KiB
  timeCost: 2,
  parallelism: 1,
} as const satisfies Options;

/**
 * A hash of 32 random bytes that were thrown away: no password matches it. Logging in as an
 * unknown user verifies against it, so that an unknown login costs the same time as a known one
 * and timing does not tell an attacker which logins exist. Its parameters must equal
 * HASH_PARAMETERS (password.test.ts checks), or the timing would differ again.
 */
export const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$+nxfAUAHRoKrkMFyL9J+Vw$xEq6H8cfVedsv1U5tnzlROr/n2vM2NQNu2ybGD8k8GE';

/** Hashes a password with argon2id and a fresh random salt; returns the PHC string. */
export function hashPassword(password: string): Promise<string> {
  return hash(password, HASH_PARAMETERS);
}

/** True when the password matches the PHC string; false for a wrong password or a malformed hash. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
  } catch {
    // A malformed or non-argon2 hash (e.g. a hand-edited directory.json) never matches.
    return false;
  }
}
