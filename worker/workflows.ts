/**
 * The batch workflow: deterministic, no I/O. It holds only the batch id and a
 * few counters; activities read the data from Parse. Parts run with bounded
 * parallelism and the workflow continues as new so history stays bounded.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { type RetryPolicy, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { BatchActivities } from './activities';
import {
  type BatchProgress,
  type BatchWorkflowInput,
  type BatchWorkflowResume,
  type ExpiryOutcome,
  type FinalizeInput,
  NON_RETRYABLE_ERRORS,
  PARTS_STORED_SIGNAL,
  PROGRESS_QUERY,
  type PartsStored,
  webhookWorkflowIdFor,
} from '../schema/workflow';

export const progressQuery = defineQuery<BatchProgress>(PROGRESS_QUERY);
export const partsStoredSignal = defineSignal<[PartsStored]>(PARTS_STORED_SIGNAL);

const retry: RetryPolicy = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE_ERRORS };
// Local activities: short reads and writes of the request that need no task queue round trip of their own,
// which halves the Temporal work of a small batch (10 batches of 100 at once are bound by it).
const { beginBatch, finalizeBatch } = proxyLocalActivities<BatchActivities>({ startToCloseTimeout: '5m', retry });
// The activity stops retrying itself after WEBHOOK_MAX_ATTEMPTS, recording the failure on the request.
const { deliverWebhook } = proxyActivities<BatchActivities>({ startToCloseTimeout: '2m', retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5m' } });
const { expireBatchFiles } = proxyActivities<BatchActivities>({ startToCloseTimeout: '1h', heartbeatTimeout: '2m', retry });
const { beginDelete } = proxyLocalActivities<BatchActivities>({ startToCloseTimeout: '5m', retry });
/** How long a deletion waits, at most, before it asks again whether a cancelled batch's parts have stopped. */
const DELETE_WAIT_MAX_MS = 30_000;

/**
 * Records the terminal status, then hands the webhook to a child workflow that outlives this one,
 * so that callers waiting for the batch are not held up by a slow or failing receiver.
 */
function finish(input: FinalizeInput): Promise<void> {
  return CancellationScope.nonCancellable(async () => {
    const { webhook } = await finalizeBatch(input);
    if (!webhook) return;
    await startChild(batchWebhookWorkflow, {
      workflowId: webhookWorkflowIdFor(input.batchId),
      args: [input.batchId],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    }).catch((error: unknown) => {
      // A re-run of a finished batch: its delivery already runs.
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    });
  });
}

/** Delivers a finished batch's webhook, retried with backoff by the activity's policy. */
export async function batchWebhookWorkflow(batchId: string): Promise<void> {
  await deliverWebhook(batchId);
}

function errorMessage(error: unknown): string {
  const cause = (error as { cause?: { message?: string } }).cause;
  return cause?.message ?? (error as Error).message ?? String(error);
}

export async function batchMemoryWorkflow(input: BatchWorkflowInput): Promise<void> {
  const { batchId } = input;
  const progress: BatchProgress = { batchId, total: 0, partCount: 0, partsDone: 0, processed: 0, failed: 0, status: 'starting' };
  setHandler(progressQuery, () => progress);
  // What is known of the body of a batch processed while uploading: parts stored so far, and whether it has ended.
  // The end is taken from the request only (a read moves a batch sealed `pending` on to `processing`); a signal of
  // it is the cue to read.
  const upload = { partCount: 0, sealed: false, endSignalled: false };
  const learn = (partCount: number, sealed: boolean) => {
    upload.partCount = Math.max(upload.partCount, partCount);
    upload.sealed ||= sealed;
    progress.partCount = upload.partCount;
  };
  setHandler(partsStoredSignal, ({ partCount, sealed }) => {
    learn(partCount, false);
    upload.endSignalled ||= sealed;
  });

  let manifest;
  try {
    manifest = await beginBatch(batchId);
  } catch (error) {
    // The batch cannot be read at all (deleted, corrupt): nothing to retry.
    await finish({ batchId, status: 'failed', error: errorMessage(error) }).catch(() => undefined);
    return;
  }
  Object.assign(progress, { total: manifest.total, status: manifest.status });
  learn(manifest.partCount, manifest.status !== 'receiving');
  if (manifest.status !== 'processing' && manifest.status !== 'receiving') {
    // Cancelled (or deleted) as this workflow began: the cancel found it running and left the end to it.
    if ((manifest.status === 'cancelled' || manifest.status === 'deleting') && !manifest.ended) await finish({ batchId, status: 'cancelled' });
    return;
  }

  const { settings } = manifest;
  const resume: BatchWorkflowResume = input.resume ?? { nextPart: 0, processed: 0, failed: 0, deadline: Date.now() + settings.timeoutMs };
  Object.assign(progress, { partsDone: resume.nextPart, processed: resume.processed, failed: resume.failed });
  // The workflow records `cancelled` only after every running part has stopped writing.
  const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;
  // A small batch's only part runs inside the workflow task, like beginBatch and finalizeBatch: the whole
  // batch takes one workflow task and no activity task (10 batches of 100 at once are bound by that work).
  const { processPart } =
    manifest.onlyPart && manifest.total <= settings.localPartMaxItems
      ? proxyLocalActivities<BatchActivities>({ startToCloseTimeout: '1h', retry, cancellationType })
      : proxyActivities<BatchActivities>({ startToCloseTimeout: '1h', heartbeatTimeout: settings.heartbeatTimeoutMs, retry, cancellationType });

  // Parts processed, and waits for the body, both add to history: a run takes at most partsPerRun of them.
  const runUntil = resume.nextPart + settings.partsPerRun;
  let waits = 0;
  // One wait for more of the body at a time, shared by the lanes: a signal of new parts, or else (and at its end) the request read again.
  let waiting: Promise<void> | undefined;
  const moreOfTheBody = (): Promise<void> =>
    (waiting ??= (async () => {
      const known = upload.partCount;
      waits++;
      const signalled = await condition(() => upload.partCount > known || upload.endSignalled, settings.uploadPollMs);
      if (!signalled || upload.endSignalled) {
        upload.endSignalled = false;
        const current = await beginBatch(batchId);
        progress.total = current.total;
        if (current.status !== 'receiving' && current.status !== 'processing') throw ApplicationFailure.nonRetryable(`batch ${batchId} is ${current.status}`, 'BatchDataError');
        learn(current.partCount, current.status !== 'receiving');
      }
    })().finally(() => {
      waiting = undefined;
    }));
  let outcome: 'done' | 'continue';
  try {
    outcome = await CancellationScope.withTimeout(Math.max(1, resume.deadline - Date.now()), async () => {
      // Each lane takes the next part only after its previous one finished, so once all
      // lanes stop, every part below `next` is done and the next run starts there.
      let next = resume.nextPart;
      let stop = false;
      const lane = async () => {
        try {
          while (!stop && next + waits < runUntil) {
            if (next >= upload.partCount) {
              if (upload.sealed) return;
              await moreOfTheBody();
              continue;
            }
            const counts = await processPart({ batchId, part: next++, partsKey: manifest.partsKey, owner: manifest.owner, onlyPart: manifest.onlyPart });
            progress.processed += counts.processed;
            progress.failed += counts.failed;
            progress.partsDone++;
            stop ||= workflowInfo().continueAsNewSuggested;
          }
        } catch (error) {
          stop = true;
          throw error;
        }
      };
      // Every lane settles before the outcome is decided: on cancellation or failure, the parts still
      // running finish their current chunk before finalizeBatch counts what was written.
      const lanes = await Promise.allSettled(Array.from({ length: settings.partConcurrency }, lane));
      const failure = lanes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failure) throw failure.reason;
      return upload.sealed && next >= upload.partCount ? 'done' : 'continue';
    });
  } catch (error) {
    const cancelledByClient = isCancellation(error) && CancellationScope.current().consideredCancelled;
    const status = cancelledByClient ? 'cancelled' : 'failed';
    const message = cancelledByClient ? undefined : isCancellation(error) ? `batch did not finish within BATCH_WORKFLOW_TIMEOUT (${settings.timeoutMs} ms)` : errorMessage(error);
    progress.status = status;
    await finish({ batchId, status, ...(message ? { error: message } : {}) });
    if (cancelledByClient) throw error;
    return;
  }
  if (outcome === 'continue') {
    await continueAsNew<typeof batchMemoryWorkflow>({
      batchId,
      resume: { nextPart: progress.partsDone, processed: progress.processed, failed: progress.failed, deadline: resume.deadline },
    });
  }
  progress.status = 'completed';
  await finish({ batchId, status: 'completed' });
}

/**
 * Undoes a batch's import, durably: once the batch's run has ended (a running batch is cancelled, and its parts stop
 * writing first), removes the memories it created, its chunk rows and its stored files, and records `deleted`.
 */
export async function deleteBatchWorkflow(batchId: string): Promise<void> {
  let readiness = await beginDelete(batchId);
  for (let wait = 1000; !readiness.ready; wait = Math.min(wait * 2, DELETE_WAIT_MAX_MS)) {
    await sleep(wait);
    readiness = await beginDelete(batchId);
  }
  // A killed worker is noticed by the heartbeat, as for a part; the retry finds only the rows left.
  const { deleteBatchData } = proxyActivities<BatchActivities>({ startToCloseTimeout: '1h', heartbeatTimeout: readiness.heartbeatTimeoutMs, retry });
  await deleteBatchData(batchId);
}

/** Run by the expiry Schedule: deletes the stored files of batches past BATCH_FILE_EXPIRY_DAYS. */
export async function expireBatchFilesWorkflow(): Promise<ExpiryOutcome> {
  return expireBatchFiles();
}
