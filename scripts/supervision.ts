/**
 * When a crashed process of the local stack is started again, and when the stack gives up on it: each
 * crash doubles the wait before the next start, and a process that crashes too often within a window
 * (it will not come up, whatever the wait) ends the stack instead of restarting for ever.
 */

export interface RestartPolicy {
  /** Crashes of one process within `windowMs` that end the stack. */
  maxCrashes: number;
  windowMs: number;
  /** Wait before the first restart; doubled for each further crash in the window, up to `maxDelayMs`. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { maxCrashes: 5, windowMs: 60_000, initialDelayMs: 500, maxDelayMs: 30_000 };

/** How a process ended: its exit code, or the signal that killed it. */
export interface ProcessExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit({ exitCode, signal }: ProcessExit): string {
  return signal ? `killed by ${signal}` : `exit code ${exitCode}`;
}

export type CrashVerdict = { restartInMs: number; crashes: number } | { giveUp: true; crashes: number };

/** Crashes of each process within the policy's window. */
export class CrashHistory {
  private readonly crashes = new Map<string, number[]>();

  constructor(private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY) {}

  /** Records a crash of `name` at `now` and says whether to restart it (after how long) or give up. */
  record(name: string, now = Date.now()): CrashVerdict {
    const recent = (this.crashes.get(name) ?? []).filter((at) => now - at < this.policy.windowMs);
    recent.push(now);
    this.crashes.set(name, recent);
    const crashes = recent.length;
    if (crashes >= this.policy.maxCrashes) return { giveUp: true, crashes };
    return { restartInMs: Math.min(this.policy.initialDelayMs * 2 ** (crashes - 1), this.policy.maxDelayMs), crashes };
  }
}

/** A process crashed `maxCrashes` times within the window: the stack stops, saying which one and why. */
export class CrashLoopError extends Error {
  constructor(
    readonly process: string,
    readonly crashes: number,
    readonly windowMs: number,
    readonly lastExit: ProcessExit,
    readonly lastLines: string[],
    readonly reason?: string,
  ) {
    super(
      `${process} crashed ${crashes} times within ${windowMs / 1000} s (last: ${describeExit(lastExit)}${reason ? `; ${reason}` : ''}); stopping the stack` +
        (lastLines.length ? `. Its last lines:\n${lastLines.join('\n')}` : ''),
    );
    this.name = 'CrashLoopError';
  }
}
