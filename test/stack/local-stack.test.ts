/**
 * `npm start` in a fresh data folder: everything comes up (the time it took is
 * reported), stops cleanly, and comes up again on the same folder after a `kill -9`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { freePort, isAlive, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT, temporaryDataDir } from '../../scripts/stack';

/** All descendants of a process, from /proc. */
function descendants(root: number): number[] {
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

const START_DEADLINE_MS = 120_000;

interface Started {
  child: ChildProcess;
  output: () => string;
  pids: number[];
}

/**
 * Starts the stack as the README says, `npm start` (skipping only its `prestart` build: the run already
 * built, and rebuilding would rewrite files other test processes load), or its entry directly when the
 * test needs to kill -9 the stack's own process.
 */
async function startStack(env: NodeJS.ProcessEnv, how: 'npm start' | 'entry'): Promise<Started> {
  const startedAt = Date.now();
  const [command, args] = how === 'npm start' ? ['npm', ['start', '--ignore-scripts', '--silent']] : [process.execPath, [path.join(PROJECT_ROOT, 'dist/scripts/start.js')]];
  // Its own process group, as in a terminal, so that the test can press Ctrl-C (SIGINT to the group).
  const child = spawn(command, args, { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: how === 'npm start' });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // A deadline, not a measurement: on a loaded machine the start takes longer; the time is reported.
  await waitFor('the stack to print that it is up', async () => {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}: ${output.slice(-2000)}`);
    return output.includes('Batch memory stack is up.');
  }, START_DEADLINE_MS);
  console.log(`${how}: the stack was up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);

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
  expect(output).toContain(`curl -s -X POST ${api}/parse/functions/addMemoryBatch`);
  return { child, output: () => output, pids: descendants(child.pid as number) };
}

async function expectAllGone(pids: number[]): Promise<void> {
  await waitFor(`processes ${pids.join(', ')} to be gone`, async () => pids.every((pid) => !isAlive(pid)), 30_000);
}

test('npm start: up (time reported), clean stop, and a restart after kill -9 on the same data folder', async () => {
  const dataDir = temporaryDataDir('batch-memory-start-');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    WORKER_METRICS_PORT: String(await freePort()),
    TEMPORAL_TASK_QUEUE: 'local-stack-test',
    LOG_LEVEL: 'warn',
  };
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
}, 3 * START_DEADLINE_MS + 120_000);
