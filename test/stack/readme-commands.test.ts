/**
 * The README's commands as a user types them, with none of the test's own ports or settings. One file, so
 * that the two stacks on the documented ports never run at once.
 * - `npm run setup && npm start` on a fresh clone, as a user who is not root and has none of the optional
 *   packages (Redis, Chromium, Java, Maven, Go): set-up names what it skipped and goes on, the stack comes up
 *   on its documented ports, the banner's example stores its memories, `npx memory-batch worker` adds a worker
 *   that polls beside the stack's, and Ctrl-C stops it all.
 * - `npm run cluster` (only a data folder of its own, so that the repository's `.data` is left alone): two
 *   instances behind the proxy on PORT, two workers each serving its own metrics port, Redis; a batch through
 *   the documented URL completes, and Ctrl-C stops it all.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { isAlive, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT, temporaryDataDir } from '../../scripts/stack';
import { loadConfig } from '../../config';
import { postgresOnlyTest } from '../support/database';
import { BANNER_END, descendants, spawnCollecting, untilUp } from '../support/npmStart';

const START_DEADLINE_MS = 180_000;
/** The documented defaults: what a user who types the command gets. */
const defaults = loadConfig({});

/** Packages `npm run setup` may do without: the newcomer below has none of them. */
const OPTIONAL_COMMANDS = ['redis-server', 'chromium', 'java', 'mvn', 'go', 'mongod'];
const SETUP_AND_START_DEADLINE_MS = 480_000;
const runsAsRoot = process.getuid?.() === 0 && fs.existsSync('/usr/sbin/useradd') && fs.existsSync('/usr/sbin/runuser');

/**
 * A PATH of a stock machine without the optional packages: links to the system's commands (never root's own
 * tools, such as a pyenv python3) but for those.
 */
function pathWithoutOptionalPackages(): string {
  const shim = fs.mkdtempSync(path.join(os.tmpdir(), 'newcomer-path-'));
  fs.chmodSync(shim, 0o755);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', path.dirname(process.execPath)]) {
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const link = path.join(shim, name);
      if (!OPTIONAL_COMMANDS.includes(name) && !fs.existsSync(link)) fs.symlinkSync(path.join(dir, name), link);
    }
  }
  return shim;
}

/** How many workers poll the documented task queue for activities, on the documented Temporal port. */
async function activityPollers(): Promise<number> {
  const connection = await Connection.connect({ address: `127.0.0.1:${defaults.TEMPORAL_PORT}` });
  try {
    const { pollers } = await connection.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: defaults.TEMPORAL_TASK_QUEUE }, taskQueueType: 2 });
    return new Set(pollers?.map((poller) => poller.identity)).size;
  } finally {
    await connection.close();
  }
}

/** The pids of a user's processes. */
function processesOf(user: string): string[] {
  return spawnSync('pgrep', ['-u', user], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

(runsAsRoot ? test : test.skip)(
  'npm run setup && npm start, as a user who is not root and lacks the optional packages, on a fresh clone: the banner example stores its memories [needs root to add that user]',
  async () => {
    const user = `newcomer${process.pid}`;
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', user]);
    const home = `/home/${user}`;
    const shim = pathWithoutOptionalPackages();
    const asUser = (command: string) => ['-u', user, '--', 'env', '-i', `HOME=${home}`, `PATH=${shim}`, 'bash', '-c', command];
    try {
      execFileSync('git', ['clone', '--quiet', PROJECT_ROOT, `${home}/app`]);
      execFileSync('chown', ['-R', `${user}:`, `${home}/app`]);
      const started = spawnCollecting('runuser', asUser('cd ~/app && npm run setup && npm start'), { detached: true });
      const { child } = started;
      try {
        await untilUp(started, SETUP_AND_START_DEADLINE_MS);
        const output = started.output();
        // Set-up named each optional package it went without, and did not stop for them.
        expect(output).toMatch(/optional, not installed: redis-server chromium default-jre-headless maven/);
        expect(output).toMatch(/optional, skipped: the unit tier's time-skipping test server/);
        // The banner's example, exactly as printed, run by the same user.
        const example = output.slice(output.indexOf('Try it'), output.indexOf(BANNER_END)).split('\n').slice(1, -1).join('\n');
        expect(example).toContain(`http://127.0.0.1:${defaults.PORT}/parse/functions/addMemoryBatch`);
        const answer = JSON.parse(execFileSync('runuser', asUser(example), { encoding: 'utf8' })) as { result: Record<string, unknown> };
        expect(answer.result).toMatchObject({ success: true, status: 'completed', processed: 2, failed: 0 });
        expect(descendants(child.pid as number).length).toBeGreaterThanOrEqual(4);

        // One more worker, as the README says (`npx memory-batch worker`, same environment): it polls beside the
        // stack's own, and stops on SIGTERM.
        const { child: worker, output: workerOutput } = spawnCollecting('runuser', asUser('cd ~/app && exec npx memory-batch worker'), { detached: true });
        try {
          await waitFor('the extra worker to poll', async () => {
            if (worker.exitCode !== null) throw new Error(`npx memory-batch worker exited with ${worker.exitCode}: ${workerOutput().slice(-2000)}`);
            return workerOutput().includes('"worker polling"');
          });
          expect(await activityPollers()).toBeGreaterThanOrEqual(2);
        } finally {
          if (worker.exitCode === null) process.kill(-(worker.pid as number), 'SIGTERM');
          await waitFor('the extra worker to stop', async () => worker.exitCode !== null || worker.signalCode !== null, 60_000);
        }
      } finally {
        if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGINT');
        // Ctrl-C stops everything the user's stack started.
        await waitFor(`the processes of ${user} to be gone`, async () => processesOf(user).length === 0, 60_000).catch((error: unknown) => {
          spawnSync('pkill', ['-KILL', '-u', user]);
          throw error;
        });
      }
    } finally {
      execFileSync('userdel', ['--remove', user], { stdio: 'ignore' });
      fs.rmSync(shim, { recursive: true, force: true });
    }
  },
  SETUP_AND_START_DEADLINE_MS + 120_000,
);

// As typed, the command runs on its embedded PostgreSQL, whatever database the run uses.
postgresOnlyTest(
  'npm run cluster: up on its documented ports, both workers polling with a metrics port each, a batch completes, serving for a minute, Ctrl-C stops all',
  async () => {
    const dataDir = temporaryDataDir('batch-memory-cluster-');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}) };
    // `npm run cluster` without its precluster build: the run already built, and rebuilding would rewrite files other test processes load.
    const started = spawnCollecting('npm', ['run', 'cluster', '--ignore-scripts', '--silent'], { cwd: PROJECT_ROOT, env, detached: true });
    const { child } = started;
    let pids: number[] = [];
    try {
      await untilUp(started, START_DEADLINE_MS);
      pids = descendants(child.pid as number);
      const api = `http://127.0.0.1:${defaults.PORT}`;
      const signUp = await fetch(`${api}/parse/users`, {
        method: 'POST',
        headers: { 'X-Parse-Application-Id': defaults.PARSE_APP_ID, 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: `cluster-${process.pid}`, password: 'cluster-password' }),
      });
      expect(signUp.status).toBe(201);
      const { sessionToken } = (await signUp.json()) as { sessionToken: string };
      const submitted = await fetch(`${api}/api/v1/memory/batch`, {
        method: 'POST',
        headers: { 'X-Parse-Session-Token': sessionToken, 'Content-Type': 'application/json' },
        body: JSON.stringify({ memories: Array.from({ length: 50 }, (_, index) => ({ content: `cluster memory ${index}` })) }),
      });
      expect(submitted.status).toBe(200);
      expect(await submitted.json()).toMatchObject({ status: 'completed', processed: 50, failed: 0 });

      // Both workers are up, each on its own metrics port (9464 and the next), and both poll the task queue.
      const metricsPorts = [9464, 9465];
      const metrics = await Promise.all(metricsPorts.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).status));
      expect(metrics).toEqual([200, 200]);
      expect(await activityPollers()).toBeGreaterThanOrEqual(2);
      // It keeps serving: for a minute, the public port and both workers' metrics answer every second, and the
      // supervisor stops nothing (a worker crash-looping on a shared port stopped it within 20 s).
      const servedUntil = Date.now() + 60_000;
      let rounds = 0;
      while (Date.now() < servedUntil) {
        const answers = await Promise.all([`${api}/parse/health`, ...metricsPorts.map((port) => `http://127.0.0.1:${port}/metrics`)].map(async (url) => (await fetch(url)).status));
        expect(answers).toEqual([200, 200, 200]);
        expect(child.exitCode).toBeNull();
        rounds++;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      expect(rounds).toBeGreaterThanOrEqual(30);
      expect(await activityPollers()).toBeGreaterThanOrEqual(2);
    } finally {
      if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGINT');
      await waitFor(`the cluster's processes to be gone`, async () => [child.pid as number, ...pids].every((pid) => !isAlive(pid)), 60_000);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
  START_DEADLINE_MS + 180_000,
);
