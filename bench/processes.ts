// The processes the benchmarks start (bench/smtp.bench.ts, bench/delivery.bench.ts and their
// peers): running and tracking them, /proc (liveness, process trees), waiting for a greeting.

import { spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

// ---------------------------------------------------------------------------------------------
// Every process the benchmark starts is registered here until it is known to be gone, so that an
// exception, Ctrl-C or SIGTERM still stops it (synchronously, from the 'exit' handler).

const emergency = new Map<number, () => void>();
let emergencyKey = 0;

export function onEmergency(stop: () => void): () => void {
  const key = ++emergencyKey;
  emergency.set(key, stop);
  return () => void emergency.delete(key);
}

export function runEmergency(): void {
  for (const stop of [...emergency.values()].reverse()) {
    try {
      stop();
    } catch {
      // best effort: keep stopping the others
    }
  }
  emergency.clear();
}

let handlersInstalled = false;
export function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runEmergency);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`\nsmtp bench: ${sig}, stopping everything it started`);
      runEmergency();
      process.exit(130);
    });
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it holds no memory and no port.
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Spawns a child that is killed (SIGKILL) on emergency until it has exited. */
export function spawnTracked(cmd: string, args: readonly string[], opts: { cwd?: string; stdio?: StdioOptions; env?: NodeJS.ProcessEnv }): ChildProcess {
  const child = spawn(cmd, args as string[], { cwd: opts.cwd, stdio: opts.stdio ?? 'ignore', env: opts.env ?? process.env });
  if (child.pid !== undefined) {
    const pid = child.pid;
    const forget = onEmergency(() => killQuietly(pid, 'SIGKILL'));
    child.once('exit', forget);
  }
  return child;
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null })); // could not be spawned
  });
}

/** Runs a command to completion (tracked), with optional stdin; never throws. */
export async function run(cmd: string, args: readonly string[], opts: { input?: string; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnTracked(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('error', (e) => (stderr += e.message));
  child.stdin?.on('error', () => undefined); // EPIPE when the child does not read its input
  child.stdin?.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const { code } = await exited(child);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitGone(pids: () => number[], ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pids().every((p) => !alive(p))) return true;
    await sleep(50);
  }
  return pids().every((p) => !alive(p));
}

// ---------------------------------------------------------------------------------------------
// /proc

export function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm)"; comm may contain spaces and parentheses.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The root and all its descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f === null) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Waiting for a greeting

/** True when something on the port answers with a 220 greeting within 2 s. */
function greetingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      if (ok) sock.end('QUIT\r\n');
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (/^220 .*\r\n/m.test(buf)) done(true);
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

export async function waitForGreeting(port: number, ms: number, stillRunning: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await greetingOnce(port)) return true;
    if (!stillRunning()) return false;
    await sleep(100);
  }
  return false;
}
