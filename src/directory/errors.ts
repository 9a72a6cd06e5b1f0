// Errors an administrator can cause in the directory — a bad command, a hand-edited file that no
// longer parses, a lock left by a crashed process — are values with a stable code and a message
// that says what to do. Exceptions remain for faults (bugs).

export type DirectoryErrorCode =
  /** A domain, address or login that is not well formed. */
  | 'invalid-name'
  | 'invalid-password'
  | 'domain-exists'
  | 'domain-not-hosted'
  /** An alias domain where a hosted (canonical) domain is required. */
  | 'domain-is-alias'
  /** A domain that users or alias domains still refer to. */
  | 'domain-in-use'
  | 'address-taken'
  | 'login-taken'
  | 'unknown-user'
  /** directory.json does not parse or breaks the format's rules. */
  | 'file-invalid'
  | 'file-missing'
  /** Another process holds directory.lock for longer than we were willing to wait. */
  | 'locked'
  /** The file system refused (permissions, disk full, ...). */
  | 'io';

export interface DirectoryError {
  readonly code: DirectoryErrorCode;
  readonly message: string;
}

export type DirectoryResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: DirectoryError };

export function ok<T>(value: T): DirectoryResult<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: DirectoryErrorCode, message: string): DirectoryResult<T> {
  return { ok: false, error: { code, message } };
}

/**
 * True when the administrator can fix the error by changing the command or the file (the CLI exits
 * 2, "nothing was done"); false when the environment failed (file system, a lock held too long).
 */
export function isUsageError(e: DirectoryError): boolean {
  return e.code !== 'io' && e.code !== 'locked';
}

/** Turns a file-system exception into an error value naming the path and the errno code. */
export function ioError(path: string, err: unknown): DirectoryError {
  const e = err as NodeJS.ErrnoException;
  const what = e.code ?? (err instanceof Error ? err.message : String(err));
  return { code: 'io', message: `${path}: ${what}${e.code === 'EACCES' || e.code === 'EPERM' ? ' (check the permissions of the data directory)' : ''}` };
}
