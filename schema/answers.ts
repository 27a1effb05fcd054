/**
 * Every answer about a batch, built from its record in one place: the BatchMemoryResponse of the Cloud
 * Functions, the REST route and the MCP door, the status of GET …/:id, list pages and event streams, the
 * webhook event, and the HTTP status of a batch answer. `success` has one rule, `batchSucceeded`.
 */
import { type BatchListResponse, type BatchMemoryResponse, type BatchStatus, type BatchStatusResponse, ENDED_STATUSES, type MemoryProcessingResult, TERMINAL_STATUSES } from './memory';
import type { BatchRecord } from './records';
import type { WebhookEvent } from './webhook';

/** The REST route; a batch's results are at `${BATCH_ROUTE}/:id/results`. */
export const BATCH_ROUTE = '/api/v1/memory/batch';

/** Nothing more happens to the batch: a wait for it ends. */
export function isTerminal(status: unknown): boolean {
  return TERMINAL_STATUSES.includes(status as BatchStatus);
}

export type EndedStatus = Extract<BatchStatus, 'completed' | 'failed' | 'cancelled'>;

/** The batch's run has ended and its results are kept (it was not deleted). */
export function hasEnded(status: unknown): status is EndedStatus {
  return ENDED_STATUSES.includes(status as BatchStatus);
}

/** A batch succeeded when no item failed and it was neither failed nor cancelled (a running batch, so far). */
export function batchSucceeded(batch: Pick<BatchRecord, 'status' | 'failedMemories'>): boolean {
  return batch.failedMemories === 0 && batch.status !== 'failed' && batch.status !== 'cancelled';
}

/** Why a batch's stored memories and results cannot be read: the expiry job deleted them (its counts stay). */
export function filesExpiredMessage(batch: Pick<BatchRecord, 'id' | 'filesExpiredAt'>): string {
  return `the stored memories and per-item results of batch ${batch.id} were deleted on ${batch.filesExpiredAt?.toISOString()} (BATCH_FILE_EXPIRY_DAYS); its counts remain`;
}

/** A batch its owner deleted: what it created and stored is removed, or being removed. */
export function isDeleted(batch: Pick<BatchRecord, 'status'>): boolean {
  return batch.status === 'deleting' || batch.status === 'deleted';
}

export function batchDeletedMessage(batch: Pick<BatchRecord, 'id'>): string {
  return `batch ${batch.id} was deleted: the memories it created, its stored memories and its per-item results are removed; its counts remain`;
}

/**
 * BatchMemoryResponse (docs/requirements.md §3); `results` are the per-item results read from the results file (none
 * before the end), `more` when the file holds others past them (the answer then points to the download).
 */
export function batchMemoryResponse(batch: BatchRecord, results: MemoryProcessingResult[], more = false): BatchMemoryResponse {
  const errors = [
    ...(batch.error ? [batch.error] : []),
    ...(isDeleted(batch) ? [batchDeletedMessage(batch)] : batch.filesExpiredAt ? [filesExpiredMessage(batch)] : []),
    ...results.filter((r) => !r.success).map((r) => `memories[${r.index}]: ${r.error}`),
  ];
  return {
    success: batchSucceeded(batch),
    batch_id: batch.id,
    status: batch.status,
    total: batch.totalMemories,
    processed: batch.processedMemories,
    failed: batch.failedMemories,
    results,
    errors: errors.length ? errors : null,
    ...(more ? { results_url: `${BATCH_ROUTE}/${batch.id}/results` } : {}),
    ...(batch.metadata ? { metadata: batch.metadata } : {}),
  };
}

/** HTTP status of a batch answer: 200 all done and well, 207 finished with problems, 202 still running. */
export function httpStatusOf(response: BatchMemoryResponse): number {
  if (!isTerminal(response.status)) return 202;
  return response.status === 'completed' && response.failed === 0 ? 200 : 207;
}

/** A batch's status as the REST route, its event stream and the MCP door answer it; `base` is the REST route's path, for `results_url`. */
export function statusResponse(batch: BatchRecord, base = BATCH_ROUTE): BatchStatusResponse {
  const iso = (value: Date | undefined) => value?.toISOString();
  return {
    batch_id: batch.id,
    status: batch.status,
    total: batch.totalMemories,
    processed: batch.processedMemories,
    failed: batch.failedMemories,
    ...(batch.error ? { error: batch.error } : {}),
    created_at: batch.createdAt.toISOString(),
    updated_at: batch.updatedAt.toISOString(),
    ...(batch.startedAt ? { started_at: iso(batch.startedAt) } : {}),
    ...(batch.completedAt ? { completed_at: iso(batch.completedAt) } : {}),
    ...(batch.resultsFileName ? { results_url: `${base}/${batch.id}/results` } : {}),
    ...(batch.filesExpiredAt ? { files_expired_at: iso(batch.filesExpiredAt) } : {}),
    ...(batch.deletedMemories !== undefined ? { deleted_memories: batch.deletedMemories } : {}),
    ...(batch.deletedAt ? { deleted_at: iso(batch.deletedAt) } : {}),
    ...(batch.retryOfId ? { retry_of: batch.retryOfId } : {}),
    ...(batch.metadata ? { metadata: batch.metadata } : {}),
    ...(batch.webhookUrl
      ? {
          webhook: {
            status: batch.webhookStatus ?? 'pending',
            attempts: batch.webhookAttempts ?? 0,
            ...(batch.webhookDeliveredAt ? { delivered_at: iso(batch.webhookDeliveredAt) } : {}),
            ...(batch.webhookError ? { error: batch.webhookError } : {}),
          },
        }
      : {}),
  };
}

/** A page of batches as listing found them (their owner's: metadata included). */
export interface BatchPage {
  batches: BatchRecord[];
  nextOffset?: number;
  nextCursor?: string;
}

/** The answer of every listing door; `base` as for statusResponse. */
export function listResponse(page: BatchPage, base = BATCH_ROUTE): BatchListResponse {
  return {
    batches: page.batches.map((batch) => statusResponse(batch, base)),
    ...(page.nextOffset === undefined ? {} : { next_offset: page.nextOffset }),
    ...(page.nextCursor === undefined ? {} : { next_cursor: page.nextCursor }),
  };
}

/** The event a webhook receiver gets for a finished batch; its id is stable across attempts. */
export function webhookEvent(batch: BatchRecord, publicServerURL: string): WebhookEvent {
  const { status } = batch;
  if (!hasEnded(status)) throw new Error(`batch ${batch.id} is ${status}: a webhook event is sent once it has finished`);
  return {
    id: `${batch.id}:${status}`,
    type: `batch.${status}`,
    created_at: (batch.completedAt ?? new Date()).toISOString(),
    batch: {
      batch_id: batch.id,
      status,
      success: batchSucceeded(batch),
      total: batch.totalMemories,
      processed: batch.processedMemories,
      failed: batch.failedMemories,
      ...(batch.error ? { error: batch.error } : {}),
      results_url: new URL(`${BATCH_ROUTE}/${batch.id}/results`, publicServerURL).toString(),
      ...(batch.metadata ? { metadata: batch.metadata } : {}),
    },
  };
}
