/**
 * `npm start` in a fresh data folder: everything comes up (the time it took is
 * reported), stops cleanly, and comes up again on the same folder after a `kill -9`.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { isAlive, waitFor } from '../../scripts/processes';
import { temporaryDataDir } from '../../scripts/stack';
import { BANNER_START, descendants, npmStartEnv, spawnNpmStart, untilUp } from '../support/npmStart';

const START_DEADLINE_MS = 120_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  pids: number[];
}

/** Starts the stack (`npm start`, or its entry), and checks what it serves once it says it is up. */
async function startStack(env: NodeJS.ProcessEnv, how: 'npm start' | 'entry'): Promise<Started> {
  const startedAt = Date.now();
  const started = spawnNpmStart(env, how);
  // A deadline, not a measurement: on a loaded machine the start takes longer; the time is reported.
  await untilUp(started, START_DEADLINE_MS);
  console.log(`${how}: the stack was up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  const { child, output } = started;
  expect(output()).toContain(BANNER_START);

  const api = `http://127.0.0.1:${env.PORT}`;
  expect(await (await fetch(`${api}/parse/health`)).json()).toMatchObject({ status: 'ok' });
  const login = await fetch(`${api}/dashboard/login`);
  expect(login.status).toBe(200);
  expect(await login.text()).toMatch(/Parse Dashboard/i);
  expect((await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`)).status).toBe(200);
  const connection = await Connection.connect({ address: `127.0.0.1:${env.TEMPORAL_PORT}` });
  const { pollers } = await connection.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: env.TEMPORAL_TASK_QUEUE }, taskQueueType: 1 });
  await connection.close();
  expect(pollers?.length).toBeGreaterThan(0);
  expect(output()).toContain(`curl -s -X POST ${api}/parse/functions/addMemoryBatch`);
  return { child, output, pids: descendants(child.pid as number) };
}

async function expectAllGone(pids: number[]): Promise<void> {
  await waitFor(`processes ${pids.join(', ')} to be gone`, async () => pids.every((pid) => !isAlive(pid)), 30_000);
}

test(
  'npm start: up (time reported), clean stop, and a restart after kill -9 on the same data folder',
  async () => {
    const dataDir = temporaryDataDir('batch-memory-start-');
    const env = await npmStartEnv(dataDir, { TEMPORAL_TASK_QUEUE: 'local-stack-test' });
    try {
      const first = await startStack(env, 'npm start');
      expect(first.pids.length).toBeGreaterThanOrEqual(4); // postgres, temporal, Parse Server, worker
      process.kill(-(first.child.pid as number), 'SIGINT');
      await expectAllGone([first.child.pid as number, ...first.pids]);

      const second = await startStack(env, 'entry');
      second.child.kill('SIGKILL');
      // Parse Server and the worker notice their parent is gone; postgres and temporal are left behind.
      const leftBehind = second.pids.filter(isAlive);

      const third = await startStack(env, 'entry');
      expect(leftBehind.filter(isAlive)).toEqual([]);
      third.child.kill('SIGTERM');
      await expectAllGone([third.child.pid as number, ...third.pids, ...second.pids]);
      expect(fs.existsSync(path.join(dataDir, 'temporal.db'))).toBe(true);
      expect(fs.existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
  3 * START_DEADLINE_MS + 120_000,
);
