/**
 * `npm run cluster` as the README shows it, with none of the test's own ports or settings (only a data
 * folder of its own, so that the repository's `.data` is left alone): two instances behind the proxy on
 * PORT, two workers each serving its own metrics port, Redis; a batch through the documented URL
 * completes, and Ctrl-C stops it all.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Connection } from '@temporalio/client';
import { isAlive, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT, temporaryDataDir } from '../../scripts/stack';
import { loadConfig } from '../../config';
import { postgresOnlyTest } from '../support/database';
import { descendants, untilUp } from '../support/npmStart';

const START_DEADLINE_MS = 180_000;
/** The documented defaults: what a user who types the command gets. */
const defaults = loadConfig({});

// As typed, the command runs on its embedded PostgreSQL, whatever database the run uses.
postgresOnlyTest(
  'npm run cluster: up on its documented ports, both workers polling with a metrics port each, a batch completes, Ctrl-C stops all',
  async () => {
    const dataDir = temporaryDataDir('batch-memory-cluster-');
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}) };
    // `npm run cluster` without its precluster build: the run already built, and rebuilding would rewrite files other test processes load.
    const child = spawn('npm', ['run', 'cluster', '--ignore-scripts', '--silent'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const started = { child, output: () => output, linesAfterBanner: () => [] };
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
      const connection = await Connection.connect({ address: `127.0.0.1:${defaults.TEMPORAL_PORT}` });
      try {
        const { pollers } = await connection.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: defaults.TEMPORAL_TASK_QUEUE }, taskQueueType: 2 });
        expect(new Set(pollers?.map((poller) => poller.identity)).size).toBeGreaterThanOrEqual(2);
      } finally {
        await connection.close();
      }
      // The supervisor stopped nothing.
      expect(child.exitCode).toBeNull();
    } finally {
      if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGINT');
      await waitFor(`the cluster's processes to be gone`, async () => [child.pid as number, ...pids].every((pid) => !isAlive(pid)), 60_000);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
  START_DEADLINE_MS + 180_000,
);
