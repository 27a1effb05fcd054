/** `npm start` as a user runs it, for the tests of the local stack: its environment, its processes, its output. */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT } from '../../scripts/stack';

/** The line that ends the banner `npm start` prints once the stack is up; log lines follow it. */
export const BANNER_START = 'Batch memory stack is up.';
export const BANNER_END = 'Ctrl-C stops everything.';

/** The environment of a stack on free ports in `dataDir`, with coverage of its processes when the run collects it. */
export async function npmStartEnv(dataDir: string, overrides: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    WORKER_METRICS_PORT: String(await freePort()),
    LOG_LEVEL: 'warn',
    ...overrides,
  };
}

/** A process a test started, with everything it printed so far (stdout and stderr together). */
export interface Collected {
  child: ChildProcess;
  output(): string;
}

/** Spawns `command` with its output piped and collected (in a process group of its own when `options.detached`). */
export function spawnCollecting(command: string, args: string[], options: SpawnOptions): Collected {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

export interface NpmStart extends Collected {
  /** The lines printed after the banner. */
  linesAfterBanner(): string[];
}

/**
 * Starts the stack as the README says, `npm start` (skipping only its `prestart` build: the run already
 * built, and rebuilding would rewrite files other test processes load), or its entry directly when the
 * test needs to kill -9 the stack's own process. Its own process group, as in a terminal, so that the
 * test can press Ctrl-C (SIGINT to the group).
 */
export function spawnNpmStart(env: NodeJS.ProcessEnv, how: 'npm start' | 'entry'): NpmStart {
  const [command, args] = how === 'npm start' ? ['npm', ['start', '--ignore-scripts', '--silent']] : [process.execPath, [path.join(PROJECT_ROOT, 'dist/scripts/start.js')]];
  const started = spawnCollecting(command, args, { cwd: PROJECT_ROOT, env, detached: true });
  return {
    ...started,
    linesAfterBanner: () => {
      const output = started.output();
      const end = output.indexOf(BANNER_END);
      return end === -1
        ? []
        : output
            .slice(end + BANNER_END.length)
            .split('\n')
            .filter((line) => line !== '');
    },
  };
}

/** Resolves once the banner is out; fails with the output when the stack exits first. */
export async function untilUp(started: Collected, deadlineMs: number): Promise<void> {
  await waitFor(
    'the stack to print that it is up',
    async () => {
      if (started.child.exitCode !== null) throw new Error(`npm start exited with ${started.child.exitCode}: ${started.output().slice(-2000)}`);
      return started.output().includes(BANNER_END);
    },
    deadlineMs,
  );
}

/** All descendants of a process, from /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  const found: number[] = [];
  const visit = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      visit(child);
    }
  };
  visit(root);
  return found;
}

/** The command line of a process ('' once it is gone). */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}
