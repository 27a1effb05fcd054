/**
 * The batch workflow's branches on Temporal's time-skipping test server, with activities the test supplies:
 * cancel against timeout, continue-as-new, lanes that settle before the batch is finalized, parts processed
 * while the body still arrives.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { waitFor } from '../../scripts/processes';
import type { BatchActivities } from '../../worker/activities';
import type { BatchManifest, BatchProgress, BatchSettings, BatchWorkflowInput, Counts, ExpiryOutcome, FinalizeInput, FinalizeOutcome, PartInput } from '../../schema/workflow';
import {
  BATCH_WORKFLOW_TYPE,
  DELETE_WORKFLOW_TYPE,
  EXPIRY_WORKFLOW_TYPE,
  PARTS_STORED_SIGNAL,
  PROGRESS_QUERY,
  type PartsStored,
  deleteWorkflowIdFor,
  webhookWorkflowIdFor,
  workflowIdFor,
} from '../../schema/workflow';
import { timeSkippingEnvironment, workflowWorker } from './support/workflowEnvironment';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
type Activities = Pick<BatchActivities, 'beginBatch' | 'processPart' | 'finalizeBatch' | 'deliverWebhook' | 'expireBatchFiles'>;

const SETTINGS: BatchSettings = { timeoutMs: 3_600_000, partConcurrency: 2, partsPerRun: 100, heartbeatTimeoutMs: 86_400_000, uploadPollMs: 5000, localPartMaxItems: 0 };

function manifest(overrides: Partial<BatchManifest> = {}, settings: Partial<BatchSettings> = {}): BatchManifest {
  return {
    total: 500,
    partCount: 5,
    partsKey: 'parts',
    owner: { userId: 'u', organizationId: 'o' },
    status: 'processing',
    ended: false,
    ...overrides,
    settings: { ...SETTINGS, ...settings },
  };
}

/** A part activity that heartbeats until the workflow cancels it, then says so and stops. */
async function runUntilCancelled(log: string[], part: number): Promise<Counts> {
  const ctx = Context.current();
  try {
    for (;;) {
      ctx.heartbeat();
      await ctx.sleep(50);
    }
  } catch (error) {
    if (!(error instanceof CancelledFailure)) throw error;
    log.push(`part ${part} stopped`);
    throw error;
  }
}

/** What the activities saw, in order: one line per part started and finished, and each finalize. */
interface Recorder {
  log: string[];
  finalized: FinalizeInput[];
  parts: number[];
}

function activities(begin: () => Promise<BatchManifest>, processPart: (input: PartInput) => Promise<Counts>, recorder: Recorder, webhook = false): Activities {
  return {
    beginBatch: begin,
    async processPart(input) {
      recorder.parts.push(input.part);
      recorder.log.push(`part ${input.part} started`);
      const counts = await processPart(input);
      recorder.log.push(`part ${input.part} done`);
      return counts;
    },
    async finalizeBatch(input): Promise<FinalizeOutcome> {
      recorder.finalized.push(input);
      recorder.log.push(`finalize ${input.status}`);
      return { processed: 0, failed: 0, webhook };
    },
    async deliverWebhook(batchId) {
      recorder.log.push(`webhook ${batchId}`);
    },
    async expireBatchFiles(): Promise<ExpiryOutcome> {
      return { batches: 0, files: 0 };
    },
  };
}

const recorder = (): Recorder => ({ log: [], finalized: [], parts: [] });
const tenEach = async (): Promise<Counts> => ({ processed: 10, failed: 1 });

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const taskQueue = `unit-${randomUUID()}`;
/** Each batch's activities, by batch id: one worker serves every test. */
const batches = new Map<string, Activities>();
const of = (batchId: string): Activities => {
  const acts = batches.get(batchId);
  if (!acts) throw new Error(`no activities for batch ${batchId}`);
  return acts;
};
let expiry: Activities['expireBatchFiles'] = async () => ({ batches: 0, files: 0 });
/** Each deletion's activities, by batch id. */
const deletions = new Map<string, Pick<BatchActivities, 'beginDelete' | 'deleteBatchData'>>();
const deletionOf = (batchId: string) => {
  const acts = deletions.get(batchId);
  if (!acts) throw new Error(`no deletion activities for batch ${batchId}`);
  return acts;
};

beforeAll(async () => {
  env = await timeSkippingEnvironment();
  worker = await workflowWorker(env, taskQueue, {
    beginBatch: (batchId: string) => of(batchId).beginBatch(batchId),
    processPart: (input: PartInput) => of(input.batchId).processPart(input),
    finalizeBatch: (input: FinalizeInput) => of(input.batchId).finalizeBatch(input),
    deliverWebhook: (batchId: string) => of(batchId).deliverWebhook(batchId),
    expireBatchFiles: () => expiry(),
    beginDelete: (batchId: string) => deletionOf(batchId).beginDelete(batchId),
    deleteBatchData: (batchId: string) => deletionOf(batchId).deleteBatchData(batchId),
  } satisfies Activities & Pick<BatchActivities, 'beginDelete' | 'deleteBatchData'>);
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

/** Runs `body` with a new batch id whose activities are `acts`. */
async function withBatch<T>(acts: Activities, body: (batchId: string, taskQueue: string) => Promise<T>): Promise<T> {
  const batchId = randomUUID();
  batches.set(batchId, acts);
  return body(batchId, taskQueue);
}

function startBatch(batchId: string, taskQueue: string, input: Partial<BatchWorkflowInput> = {}) {
  return env.client.workflow.start(BATCH_WORKFLOW_TYPE, { taskQueue, workflowId: workflowIdFor(batchId), args: [{ batchId, ...input }] });
}

test('every part is processed once and the batch is finalized completed, with the counts the parts returned', async () => {
  const seen = recorder();
  const progress = await withBatch(
    activities(async () => manifest(), tenEach, seen),
    async (batchId, taskQueue) => {
      const handle = await startBatch(batchId, taskQueue);
      await handle.result();
      return handle.query<BatchProgress>(PROGRESS_QUERY);
    },
  );
  expect(seen.parts.sort()).toEqual([0, 1, 2, 3, 4]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'completed' }]);
  expect(progress).toMatchObject({ total: 500, partCount: 5, partsDone: 5, processed: 50, failed: 5, status: 'completed' });
});

test('continue-as-new carries the parts done, the counts and the deadline into the next run', async () => {
  const seen = recorder();
  const { progress, carried } = await withBatch(
    activities(async () => manifest({}, { partsPerRun: 2, partConcurrency: 1 }), tenEach, seen),
    async (batchId, taskQueue) => {
      const handle = await startBatch(batchId, taskQueue);
      await handle.result();
      // Each run's last history event hands the next run its input.
      const carried: BatchWorkflowInput[] = [];
      for (let runId: string | undefined = handle.firstExecutionRunId; runId;) {
        const history: History = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
        const last = history.events?.[history.events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes;
        const payload = last?.input?.payloads?.[0];
        if (!last || !payload) break;
        carried.push(defaultPayloadConverter.fromPayload(payload));
        runId = last.newExecutionRunId ?? undefined;
      }
      return { progress: await handle.query<BatchProgress>(PROGRESS_QUERY), carried };
    },
  );
  expect(carried.map(({ resume }) => resume && { nextPart: resume.nextPart, processed: resume.processed, failed: resume.failed })).toEqual([
    { nextPart: 2, processed: 20, failed: 2 },
    { nextPart: 4, processed: 40, failed: 4 },
  ]);
  expect(new Set(carried.map(({ resume }) => resume?.deadline)).size).toBe(1);
  expect(seen.parts).toEqual([0, 1, 2, 3, 4]);
  expect(seen.finalized.map(({ status }) => status)).toEqual(['completed']);
  expect(progress).toMatchObject({ partsDone: 5, processed: 50, failed: 5, status: 'completed' });
});

test('a cancel from the client stops every running part before the batch is finalized cancelled', async () => {
  const seen = recorder();
  const failure = await withBatch(
    activities(
      async () => manifest(),
      (input) => runUntilCancelled(seen.log, input.part),
      seen,
    ),
    async (batchId, taskQueue) => {
      const handle = await startBatch(batchId, taskQueue);
      // Cancel once both lanes run a part.
      await waitFor('two parts running', async () => seen.parts.length === 2, 30_000, 20);
      await handle.cancel();
      return handle.result().then(
        () => undefined,
        (error: unknown) => error,
      );
    },
  );
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'cancelled' }]);
  expect(seen.log.slice(-3).sort()).toEqual(['finalize cancelled', 'part 0 stopped', 'part 1 stopped']);
  expect(seen.log[seen.log.length - 1]).toBe('finalize cancelled');
  expect(seen.parts.sort()).toEqual([0, 1]);
});

test('a batch past its deadline stops its parts and is finalized failed with the timeout named, not cancelled', async () => {
  const seen = recorder();
  // The test server skips no time while an activity runs, so the deadline is one the parts outlive.
  await withBatch(
    activities(
      async () => manifest({}, { timeoutMs: 1000 }),
      (input) => runUntilCancelled(seen.log, input.part),
      seen,
    ),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'failed', error: 'batch did not finish within BATCH_WORKFLOW_TIMEOUT (1000 ms)' }]);
  expect(seen.log.slice(-3).sort()).toEqual(['finalize failed', 'part 0 stopped', 'part 1 stopped']);
  expect(seen.log[seen.log.length - 1]).toBe('finalize failed');
});

test('a part that fails for good fails the batch only after the other lane has finished its part', async () => {
  const seen = recorder();
  let partOneFailed!: () => void;
  const failedOnce = new Promise<void>((resolve) => (partOneFailed = resolve));
  const processPart = async ({ part }: PartInput): Promise<Counts> => {
    if (part === 1) {
      partOneFailed();
      throw ApplicationFailure.create({ type: 'BatchDataError', message: 'part 1 is corrupt', nonRetryable: true });
    }
    // Part 0 is still writing its last chunk when part 1's failure reaches the workflow.
    await failedOnce;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { processed: 100, failed: 0 };
  };
  await withBatch(
    activities(async () => manifest(), processPart, seen),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'failed', error: 'part 1 is corrupt' }]);
  expect(seen.log.slice(-2)).toEqual(['part 0 done', 'finalize failed']);
  // No lane took another part once one had failed.
  expect(seen.parts.sort()).toEqual([0, 1]);
});

test('a batch that cannot be read is finalized failed with the reason, and runs no part', async () => {
  const seen = recorder();
  const begin = async (): Promise<BatchManifest> => {
    throw ApplicationFailure.create({ type: 'BatchDataError', message: 'batch gone does not exist', nonRetryable: true });
  };
  await withBatch(activities(begin, tenEach, seen), async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result());
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'failed', error: 'batch gone does not exist' }]);
  expect(seen.parts).toEqual([]);
});

test('a batch no longer processing (cancelled before it began, its end recorded) runs no part and is not finalized again', async () => {
  const seen = recorder();
  await withBatch(
    activities(async () => manifest({ status: 'cancelled', ended: true }), tenEach, seen),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(seen.parts).toEqual([]);
  expect(seen.finalized).toEqual([]);
});

test.each(['cancelled', 'deleting'] as const)('a batch %s as its workflow began (the cancel found the workflow running, its end not recorded) runs no part and is finalized', async (status) => {
  const seen = recorder();
  await withBatch(
    activities(async () => manifest({ status, ended: false }), tenEach, seen),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(seen.parts).toEqual([]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'cancelled' }]);
});

test('a small batch of one part runs it as a local activity and hands its webhook to a child workflow', async () => {
  const seen = recorder();
  const onlyPart = { name: 'part-0', first: 0, count: 50 };
  const acts = activities(async () => manifest({ total: 50, partCount: 1, onlyPart }, { localPartMaxItems: 100 }), tenEach, seen, true);
  let info: { isLocal: boolean; onlyPart?: PartInput['onlyPart'] } | undefined;
  const processPart = acts.processPart;
  acts.processPart = async (input) => {
    info = { isLocal: Context.current().info.isLocal, onlyPart: input.onlyPart };
    return processPart(input);
  };
  const batchId = await withBatch(acts, async (batchId, taskQueue) => {
    await (await startBatch(batchId, taskQueue)).result();
    await env.client.workflow.getHandle(webhookWorkflowIdFor(batchId)).result();
    return batchId;
  });
  expect(info).toEqual({ isLocal: true, onlyPart });
  expect(seen.log).toEqual(['part 0 started', 'part 0 done', 'finalize completed', `webhook ${batchId}`]);
});

/** Runs of a workflow, first to last, by following each run's continue-as-new event. */
async function runsOf(handle: { workflowId: string; firstExecutionRunId: string }): Promise<number> {
  let runs = 0;
  for (let runId: string | undefined = handle.firstExecutionRunId; runId; runs++) {
    const history: History = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    runId = history.events?.[history.events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

test('while the body arrives, each part is processed once it is signalled as stored, and the batch ends when the body does', async () => {
  const seen = recorder();
  // The request as Parse Server records it, before it signals.
  let request = manifest({ status: 'receiving', partCount: 1, total: 100 });
  const progress = await withBatch(
    activities(async () => request, tenEach, seen),
    async (batchId, taskQueue) => {
      const handle = await startBatch(batchId, taskQueue);
      await waitFor('part 0 processed', async () => seen.log.includes('part 0 done'), 30_000, 20);
      // Nothing past the stored parts was taken.
      expect(seen.parts).toEqual([0]);
      await handle.signal<[PartsStored]>(PARTS_STORED_SIGNAL, { partCount: 3, sealed: false });
      await waitFor('parts 1 and 2 processed', async () => seen.log.includes('part 1 done') && seen.log.includes('part 2 done'), 30_000, 20);
      expect(seen.finalized).toEqual([]);
      request = manifest({ status: 'processing', partCount: 4, total: 400 });
      await handle.signal<[PartsStored]>(PARTS_STORED_SIGNAL, { partCount: 4, sealed: true });
      await handle.result();
      return handle.query<BatchProgress>(PROGRESS_QUERY);
    },
  );
  expect(seen.parts.sort()).toEqual([0, 1, 2, 3]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'completed' }]);
  expect(progress).toMatchObject({ partCount: 4, partsDone: 4, processed: 40, status: 'completed' });
});

test('a signal of the end is confirmed by reading the request: a batch the read finds still receiving is not finalized', async () => {
  const seen = recorder();
  let reads = 0;
  // No poll within the test: only the signals make the workflow read the request.
  const poll = { uploadPollMs: 3_600_000 };
  let request = manifest({ status: 'receiving', partCount: 1 }, poll);
  await withBatch(
    activities(
      async () => {
        reads++;
        return request;
      },
      tenEach,
      seen,
    ),
    async (batchId, taskQueue) => {
      const handle = await startBatch(batchId, taskQueue);
      await waitFor('part 0 processed', async () => seen.log.includes('part 0 done'), 30_000, 20);
      const before = reads;
      await handle.signal<[PartsStored]>(PARTS_STORED_SIGNAL, { partCount: 1, sealed: true });
      await waitFor('the request read again', async () => reads > before, 30_000, 20);
      expect(seen.finalized).toEqual([]);
      // The body really ends: the request says so, and the next signal's read finds it.
      request = manifest({ status: 'processing', partCount: 2 }, poll);
      await handle.signal<[PartsStored]>(PARTS_STORED_SIGNAL, { partCount: 2, sealed: true });
      await handle.result();
    },
  );
  expect(seen.parts).toEqual([0, 1]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'completed' }]);
});

test('with no signal (lost, or Temporal was unreachable), the workflow reads the request again and learns of new parts and of the end', async () => {
  const seen = recorder();
  // The test server skips no time while local activities run: a short poll keeps the test fast.
  const poll = { uploadPollMs: 50 };
  const reads: BatchManifest[] = [manifest({ status: 'receiving', partCount: 1 }, poll), manifest({ status: 'receiving', partCount: 2 }, poll), manifest({ status: 'processing', partCount: 3 }, poll)];
  let read = 0;
  await withBatch(
    activities(async () => reads[Math.min(read++, reads.length - 1)], tenEach, seen),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(read).toBeGreaterThanOrEqual(3);
  expect(seen.parts.sort()).toEqual([0, 1, 2]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'completed' }]);
});

test('waiting for the body counts toward the parts of a run: a long upload continues as new instead of growing one history', async () => {
  const seen = recorder();
  let read = 0;
  const runs = await withBatch(
    activities(async () => manifest(read++ < 8 ? { status: 'receiving', partCount: 0 } : { status: 'processing', partCount: 1 }, { partsPerRun: 3, uploadPollMs: 50 }), tenEach, seen),
    async (batchId, taskQueue) => {
      const handle = await env.client.workflow.start(BATCH_WORKFLOW_TYPE, { taskQueue, workflowId: workflowIdFor(batchId), args: [{ batchId }] });
      await handle.result();
      return runsOf(handle);
    },
  );
  expect(runs).toBeGreaterThan(1);
  expect(seen.parts).toEqual([0]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'completed' }]);
});

test('a batch that stopped while its body arrived (found ended on a read) is finalized failed, naming its status', async () => {
  const seen = recorder();
  let read = 0;
  await withBatch(
    activities(async () => manifest({ status: read++ === 0 ? 'receiving' : 'failed', partCount: 0 }, { uploadPollMs: 50 }), tenEach, seen),
    async (batchId, taskQueue) => (await startBatch(batchId, taskQueue)).result(),
  );
  expect(seen.parts).toEqual([]);
  expect(seen.finalized).toEqual([{ batchId: expect.any(String), status: 'failed', error: expect.stringMatching(/is failed$/) }]);
});

test('the expiry workflow answers what its activity removed', async () => {
  expiry = async () => ({ batches: 2, files: 7 });
  const outcome = await env.client.workflow.execute(EXPIRY_WORKFLOW_TYPE, { taskQueue, workflowId: `expiry-${randomUUID()}` });
  expect(outcome).toEqual({ batches: 2, files: 7 });
});

test('a deletion waits, backing off, until the batch is ready (its cancelled run has ended), then removes its data once; a failed removal is retried', async () => {
  const batchId = randomUUID();
  const log: string[] = [];
  let asked = 0;
  let removals = 0;
  deletions.set(batchId, {
    async beginDelete() {
      asked++;
      log.push(`asked ${asked}`);
      return { ready: asked >= 4, heartbeatTimeoutMs: 60_000 };
    },
    async deleteBatchData() {
      removals++;
      log.push(`removal ${removals}`);
      // The first attempt dies in the middle (a killed worker): the retry goes on.
      if (removals === 1) throw ApplicationFailure.retryable('worker lost', 'Error');
    },
  });
  const handle = await env.client.workflow.start(DELETE_WORKFLOW_TYPE, { taskQueue, workflowId: deleteWorkflowIdFor(batchId), args: [batchId] });
  await handle.result();
  expect(log).toEqual(['asked 1', 'asked 2', 'asked 3', 'asked 4', 'removal 1', 'removal 2']);
  // Waits of 1, 2 and 4 s between the asks: timers in the history, not a busy loop.
  const timers = ((await handle.fetchHistory()).events ?? [])
    .filter((event) => event.timerStartedEventAttributes)
    .map((event) => Number(event.timerStartedEventAttributes?.startToFireTimeout?.seconds));
  expect(timers).toEqual([1, 2, 4]);
});
