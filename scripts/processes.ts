/** Waiting on conditions and stopping processes, without sleeps as synchronisation. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Thrown by a check of waitFor when waiting longer cannot help (the process waited for has exited). */
export class HopelessWaitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HopelessWaitError';
  }
}

/**
 * Polls `check` until it returns a value, or throws after `timeoutMs` with what was being waited for.
 * A check that throws is tried again, unless it threw HopelessWaitError.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      if (error instanceof HopelessWaitError) throw error;
      lastError = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/** True while the process runs; a zombie (exited, not yet reaped by an init that may never reap it) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/** Asks a process to stop, then kills it if it has not exited within `graceMs`. */
export async function terminate(pid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, signal);
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

/**
 * Where freePort draws from: below Linux's ephemeral range (32768–60999), from which the kernel picks the ports of
 * outgoing connections and of every bind to port 0 (the Temporal dev server takes a dozen that way for its own
 * services, between choosing and binding them), so those never land on a port handed out here.
 */
const CLAIMED_PORTS = { first: 20_000, last: 32_000, dir: path.join(os.tmpdir(), 'batch-memory-ports') };
const ownClaims: string[] = [];

/** Claims `port` for this process with a file of its own; a claim whose process has died is taken over. */
function claimPort(port: number): boolean {
  const file = path.join(CLAIMED_PORTS.dir, String(port));
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      if (ownClaims.push(file) === 1) process.once('exit', () => ownClaims.forEach((claim) => fs.rmSync(claim, { force: true })));
      return true;
    } catch {
      const owner = Number(fs.readFileSync(file, 'utf8') || 0);
      if (owner && isAlive(owner)) return false;
      fs.rmSync(file, { force: true });
    }
  }
  return false;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The first of `count` consecutive ports that nothing listens on and no other process of the project has
 * claimed: stacks that boot at once (test files, their private stacks) each get ports of their own, which stay
 * theirs until the process exits. A cluster's instances listen on PORT+1…, its workers' metrics on
 * WORKER_METRICS_PORT+1…: claim those with `count`.
 */
export async function freePort(count = 1): Promise<number> {
  fs.mkdirSync(CLAIMED_PORTS.dir, { recursive: true });
  for (;;) {
    const first = CLAIMED_PORTS.first + Math.floor(Math.random() * (CLAIMED_PORTS.last - CLAIMED_PORTS.first - count));
    const ports = Array.from({ length: count }, (_, k) => first + k);
    let claimed = 0;
    while (claimed < count && claimPort(ports[claimed])) claimed++;
    if (claimed < count) continue;
    if ((await Promise.all(ports.map(bindable))).every(Boolean)) return first;
  }
}
