/**
 * `npm start` heals itself: a worker killed with SIGKILL in the middle of a batch is replaced by one that
 * polls within 10 s and the batch ends exact, a killed Parse Server serves again, and Temporal and the
 * database keep running throughout; a process that crash-loops stops the stack, which names it and says
 * why. Every line printed after the banner is one JSON object, refusals among them as warnings without a stack.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import Parse from 'parse/node';
import { isAlive, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT, temporaryDataDir } from '../../scripts/stack';
import { stackApi } from '../reliability/stackApi';
import { memories } from '../support/helpers';
import { type NpmStart, commandLine, descendants, npmStartEnv, spawnNpmStart, untilUp } from '../support/npmStart';
import type { TestStackInfo } from '../support/stackInfo';

const START_DEADLINE_MS = 120_000;
/** How soon a new worker must poll after the old one was killed (backoff 500 ms, then its start). */
const NEW_WORKER_DEADLINE_MS = 10_000;

/** The one process of the stack whose command line contains `entry`. */
function processRunning(started: NpmStart, entry: string): number {
  const [pid] = descendants(started.child.pid as number).filter((candidate) => commandLine(candidate).includes(entry));
  if (!pid) throw new Error(`no process running ${entry}`);
  return pid;
}

/** Processes whose command line names `text`. */
function processesMentioning(text: string): string[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((pid) => commandLine(Number(pid)))
    .filter((command) => command.includes(text));
}

function postmasterPid(dataDir: string): number {
  return Number(fs.readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** The process group of a process (the fifth field of /proc/<pid>/stat, after the command in parentheses). */
function processGroupOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** Every line parsed as JSON; a line that is not one fails with the line itself. */
function parsedLines(lines: string[]): Record<string, unknown>[] {
  return lines.map((line) => {
    try {
      const value: unknown = JSON.parse(line);
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
      return value as Record<string, unknown>;
    } catch {
      throw new Error(`a line of npm start is not a JSON object: ${line}`);
    }
  });
}

async function stopWithCtrlC(started: NpmStart): Promise<void> {
  const exited = new Promise((resolve) => started.child.once('exit', resolve));
  if (started.child.exitCode !== null || started.child.signalCode !== null) return;
  process.kill(-(started.child.pid as number), 'SIGINT');
  await exited;
}

test(
  'kill -9 of the worker mid-batch: a new worker polls within 10 s, the batch ends exact; kill -9 of Parse Server: it serves again; Temporal and PostgreSQL keep running; every line after the banner is JSON',
  async () => {
    const dataDir = temporaryDataDir('batch-memory-supervised-');
    const env = await npmStartEnv(dataDir, {
      TEMPORAL_TASK_QUEUE: 'supervision-test',
      LOG_LEVEL: 'info',
      MEMORY_PROCESSOR_MODULE: path.join(PROJECT_ROOT, 'dist/test/support/testProcessor.js'),
      BATCH_HEARTBEAT_TIMEOUT: '5s',
      BATCH_PART_MAX_ITEMS: '100',
      BATCH_WRITE_MAX_ITEMS: '20',
    });
    const started = spawnNpmStart(env, 'entry');
    let connection: Connection | undefined;
    try {
      await untilUp(started, START_DEADLINE_MS);
      const info = { serverURL: `http://127.0.0.1:${env.PORT}/parse`, appId: 'batch-memory', masterKey: 'local-master-key-change-me', env } as unknown as TestStackInfo;
      const api = stackApi(info);
      connection = await Connection.connect({ address: `127.0.0.1:${env.TEMPORAL_PORT}` });
      const temporal = connection;
      const temporalPid = processRunning(started, 'start-dev');
      const postgresPid = postmasterPid(dataDir);
      const killedWorker = processRunning(started, 'dist/worker/main.js');
      // Ctrl-C in the terminal reaches the stack's own process group alone: not the database, which the stack stops
      // last, after Parse Server (a database stopped at once fails the requests Parse Server still answers).
      expect(processGroupOf(postgresPid)).not.toBe(processGroupOf(started.child.pid as number));

      const user = await api.signUp('supervised');
      const count = 400;
      const accepted = await api.call('/api/v1/memory/batch?wait=false', { token: user.token, body: { memories: memories(count, 200, (index) => ({ metadata: { index, test_slow_ms: 15 } })) } });
      expect(accepted.status).toBe(202);
      const batchId = accepted.body.batch_id as string;
      await waitFor('the batch to have stored its first memories', async () => (await api.batch(batchId)).processedMemories > 0, 60_000, 100);

      process.kill(killedWorker, 'SIGKILL');
      const newPoller = await waitFor(
        'a new worker polling the task queue',
        async () => {
          const { pollers } = await temporal.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: 'supervision-test' }, taskQueueType: 1 });
          return (pollers ?? []).map((poller) => poller.identity ?? '').find((identity) => identity && !identity.startsWith(`${killedWorker}@`));
        },
        NEW_WORKER_DEADLINE_MS,
        100,
      );
      expect(newPoller).toMatch(/^\d+@/);

      const final = await waitFor(
        'the batch to finish',
        async () => {
          const batch = await api.batch(batchId);
          return ['completed', 'failed', 'cancelled'].includes(batch.status) ? batch : undefined;
        },
        150_000,
        250,
      );
      expect(final).toMatchObject({ status: 'completed', processedMemories: count, failedMemories: 0 });
      expect(await api.memoryRows(batchId)).toEqual({ rows: count, duplicates: 0 });

      const killedServer = processRunning(started, 'dist/scripts/server.js');
      process.kill(killedServer, 'SIGKILL');
      await waitFor(
        'Parse Server to serve again',
        async () => {
          const health = await fetch(`${info.serverURL}/health`).catch(() => undefined);
          return health?.ok && processRunning(started, 'dist/scripts/server.js') !== killedServer;
        },
        60_000,
        100,
      );
      expect(isAlive(temporalPid) && processRunning(started, 'start-dev')).toBe(temporalPid);
      expect(isAlive(postgresPid) && postmasterPid(dataDir)).toBe(postgresPid);

      // Expected refusals: a batch file asked for by its owner, an unknown session token, a LiveQuery subscription refused.
      const batchFile = (await api.batch(batchId)).batchFile as { url: string };
      expect((await fetch(batchFile.url.replace('localhost', '127.0.0.1'), { headers: { 'X-Parse-Session-Token': user.token } })).status).toBe(403);
      expect((await api.call('/parse/users/me', { token: 'r:00000000000000000000000000000000' })).status).toBe(400);
      Parse.initialize(info.appId);
      const liveQuery = new Parse.LiveQueryClient({
        applicationId: info.appId,
        serverURL: info.serverURL.replace(/^http/, 'ws'),
        javascriptKey: '',
        masterKey: '',
        sessionToken: '',
        installationId: '',
      });
      liveQuery.open();
      try {
        const subscription = liveQuery.subscribe(new Parse.Query('BatchMemoryChunk'), user.token);
        subscription?.on('error', () => undefined);
        await expect(subscription?.subscribePromise).rejects.toMatchObject({ code: 119 });
      } finally {
        await liveQuery.close();
      }
      await waitFor('the refusals in the log', async () => started.output().includes('beforeSubscribe on BatchMemoryChunk'), 10_000);

      await stopWithCtrlC(started);
      const lines = parsedLines(started.linesAfterBanner());
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', process: 'stack', crashed: 'worker', signal: 'SIGKILL', exitCode: null }));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'info', process: 'stack', restarted: 'worker' }));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', process: 'stack', crashed: 'server', signal: 'SIGKILL' }));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'info', process: 'stack', restarted: 'server' }));
      const refusals = lines.filter((line) => /beforeFind failed for Parse\.File|beforeSubscribe on BatchMemoryChunk|^Parse error/.test(String(line.msg)));
      expect(refusals.length).toBeGreaterThanOrEqual(3);
      for (const refusal of refusals) {
        expect(refusal).toMatchObject({ level: 'warn', process: 'server' });
        expect(JSON.stringify(refusal)).not.toMatch(/\n\s+at |"stack"/);
      }
      // The Temporal dev server's own report of an operation it cancelled as its poller went away or it stopped
      // ("context canceled") is its bookkeeping, not a failure; every other error line is.
      const cancelledByTemporal = (line: { process?: unknown; msg?: unknown }) => line.process === 'temporal' && /error="context canceled"/.test(String(line.msg));
      expect(lines.filter((line) => line.level === 'error' && !cancelledByTemporal(line))).toEqual([]);
    } finally {
      await connection?.close();
      await stopWithCtrlC(started);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
  4 * START_DEADLINE_MS,
);

test(
  'a worker that cannot start (a MEMORY_PROCESSOR_MODULE that does not exist) crash-loops: the stack stops, naming it, its exit and its last lines',
  async () => {
    const dataDir = temporaryDataDir('batch-memory-crash-loop-');
    const env = await npmStartEnv(dataDir, { TEMPORAL_TASK_QUEUE: 'crash-loop-test', MEMORY_PROCESSOR_MODULE: path.join(dataDir, 'no-such-processor.js') });
    const started = spawnNpmStart(env, 'entry');
    try {
      const code = await new Promise<number | null>((resolve) => started.child.once('exit', resolve));
      expect(code).toBe(1);
      const lines = parsedLines(started.output().split('\n').filter(Boolean));
      const verdict = lines.find((line) => line.level === 'error' && line.process === 'stack');
      expect(verdict).toMatchObject({ crashed: 'worker', crashes: 5, windowMs: 60_000, exitCode: 1 });
      expect(String(verdict?.msg)).toMatch(/^worker crashed 5 times within 60 s/);
      expect((verdict?.lastLines as string[]).join('\n')).toContain('no-such-processor');
      expect(lines.filter((line) => line.crashed === 'worker' && line.level === 'warn').map((line) => line.restartInMs)).toEqual([500, 1000, 2000, 4000]);
      // PostgreSQL (-D under the data folder) and Temporal (its database there) were stopped with it.
      expect(processesMentioning(dataDir)).toEqual([]);
    } finally {
      await stopWithCtrlC(started);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  },
  2 * START_DEADLINE_MS,
);
