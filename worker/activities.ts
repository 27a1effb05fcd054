/**
 * Activities of the batch workflow. Each reads what it needs from Parse by batch
 * id, so that only ids and counts cross Temporal. Every write is idempotent:
 * a memory has a unique `batchItem` key and a finished chunk a unique `key`,
 * so a retried or re-delivered activity finds what it already wrote.
 */
import { randomUUID } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailureCategory } from '@temporalio/common';
import Parse from '../schema/parseSdk';
import { type Config, publicServerURL } from '../config';
import type { Logger } from '../config/log';
import { CorruptFileError, type ParseEndpoint, STORED_FILE_PREFIX, STORE_REFUSED_CODE, fileField } from '../schema/batchFile';
import { hasEnded, webhookEvent } from '../schema/answers';
import { CLASS } from '../schema/classes';
import { ENDED_STATUSES, type MemoryItem, type MemoryProcessingResult, RUNNING_STATUSES, type StoredMemory, isStatusRefusal } from '../schema/memory';
import { type ChunkResult, batchRecordOf, memoryKeyOf, partRecordOf, resultsFileNames } from '../schema/records';
import {
  type BatchManifest,
  type Counts,
  type DeleteReadiness,
  type ExpiryOutcome,
  type FinalizeInput,
  type FinalizeOutcome,
  type PartInput,
  deleteWorkflowIdFor,
  workflowIdFor,
} from '../schema/workflow';
import { WEBHOOK_HEADERS, signWebhook } from '../schema/webhook';
import { BatchStorage } from '../storage/batchStorage';
import { HttpStorage } from '../storage/http';
import { type MemoryContext, type MemoryProcessor, MemoryRejectedError } from './processor';
import { type Chunk, PartProgress, countsOf } from './partProgress';
import { postWebhook } from './webhookDelivery';
import { resultsFileMaxText, storeInFiles } from './resultsFiles';

const master = { useMasterKey: true };
const COUNTS_FLUSH_MS = 1000;
/** While a batch's body still arrives, how long its workflow waits for a signal of new parts before it reads the request again. */
const UPLOAD_POLL_MS = 5000;
/** Per-item results finalizeBatch reads (whole chunk rows) before writing them on into the results file. */
const RESULTS_PER_PAGE = 2000;
/** The only webhook error a batch records, whatever the cause (a refused address, a status, a connection error). */
const WEBHOOK_FAILED = 'webhook delivery failed';

/** A memory refused as a duplicate while no memory of its batch item exists: a unique index of the host's own refused it. */
const OTHER_UNIQUE_KEY_REFUSAL = 'refused by a unique index of the database (a value another memory already has)';
/** Parse error codes that mean "this item's data is unacceptable": a per-item failure, never a retry. */
const PARSE_ITEM_ERROR_CODES = new Set([
  Parse.Error.INVALID_KEY_NAME,
  Parse.Error.INCORRECT_TYPE,
  Parse.Error.INVALID_JSON,
  Parse.Error.VALIDATION_ERROR,
  Parse.Error.OBJECT_TOO_LARGE,
  Parse.Error.INVALID_NESTED_KEY,
  Parse.Error.SCRIPT_FAILED,
  STORE_REFUSED_CODE,
]);

export interface ActivityDeps {
  config: Config;
  endpoint: ParseEndpoint;
  processor: MemoryProcessor;
  log: Logger;
}

function batchDataError(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'BatchDataError', message, nonRetryable: true });
}

/**
 * A memory that failed for a reason the product cannot classify, before its part's last attempt: the part is
 * tried again. Benign, so Temporal logs it at debug, not at warn with a stack on every attempt; the part says it
 * once, at warn, when its last attempt records the memory failed.
 */
function itemFailure(index: number, reason: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'MemoryItemFailure', message: `memory ${index}: ${reason}`, category: ApplicationFailureCategory.BENIGN });
}

const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });

export function createActivities({ config, endpoint, processor, log }: ActivityDeps) {
  const storage = new BatchStorage(new HttpStorage(endpoint, log));
  const batchPointer = (batchId: string) => {
    const batch = new Parse.Object(CLASS.batch);
    batch.id = batchId;
    return batch;
  };

  async function loadBatch(batchId: string): Promise<Parse.Object> {
    try {
      return await new Parse.Query(CLASS.batch).get(batchId, master);
    } catch (error) {
      if ((error as Parse.Error).code === Parse.Error.OBJECT_NOT_FOUND) throw batchDataError(`batch ${batchId} does not exist`);
      throw error;
    }
  }

  async function existingMemoryIds(keys: string[]): Promise<Map<string, string>> {
    const found = await new Parse.Query(CLASS.memory).containedIn('batchItem', keys).select('batchItem').limit(keys.length).find(master);
    return new Map(found.map((memory) => memoryKeyOf(memory)).map(({ batchItem, id }) => [batchItem, id]));
  }

  /**
   * Persists the memories of several chunks in one write and returns each chunk's per-item results.
   * Safe to repeat: memories an earlier attempt wrote are found, not duplicated.
   */
  async function persistChunks(batchId: string, chunks: Chunk[], context: Omit<MemoryContext, 'index'>, partLog: Logger): Promise<ChunkResult[][]> {
    const results: ChunkResult[][] = chunks.map(() => []);
    // On the last attempt an item still failing for a reason the product cannot classify fails alone, instead of
    // failing its part once more: the same error on every attempt is not going away.
    const lastAttempt = context.attempt >= config.BATCH_ITEM_MAX_ATTEMPTS;
    const givenUp: { index: number; reason: string }[] = [];
    const giveUp = (chunk: number, index: number, reason: string) => {
      givenUp.push({ index, reason });
      results[chunk].push({ i: index, e: `processing failed on each of ${context.attempt} attempts`, c: 'processing_failed' });
    };
    const bodies: Record<string, unknown>[] = [];
    const written: { chunk: number; index: number }[] = [];
    for (const [chunk, { first, items }] of chunks.entries()) {
      for (const [offset, item] of items.entries()) {
        const index = first + offset;
        let prepared: MemoryItem;
        try {
          prepared = processor.prepare ? await processor.prepare(item, { ...context, index }) : item;
        } catch (error) {
          if (error instanceof MemoryRejectedError) results[chunk].push({ i: index, e: error.message, c: 'rejected' });
          else if (lastAttempt) giveUp(chunk, index, `the memory processor threw: ${(error as Error).message}`);
          else throw itemFailure(index, `the memory processor threw: ${(error as Error).message}`);
          continue;
        }
        written.push({ chunk, index });
        bodies.push({
          content: prepared.content,
          ...(prepared.metadata ? { metadata: prepared.metadata } : {}),
          ...(prepared.embedding ? { embedding: prepared.embedding } : {}),
          ...(prepared.source ? { source: prepared.source } : {}),
          ...(prepared.tags ? { tags: prepared.tags } : {}),
          // As sent: the client's id of the memory, whatever a processor made of the rest.
          ...(item.custom_id !== undefined ? { customId: item.custom_id } : {}),
          batchIndex: index,
          batchItem: `${batchId}:${index}`,
        });
      }
    }
    // What every memory of the batch shares: its owner, where it belongs, and the owner-only ACL.
    const shared = {
      user: pointer('_User', context.userId),
      organization: pointer(CLASS.organization, context.organizationId),
      ...(context.workspaceId ? { workspace: pointer(CLASS.workspace, context.workspaceId) } : {}),
      ...(context.namespaceId ? { namespace: pointer(CLASS.namespace, context.namespaceId) } : {}),
      batch: pointer(CLASS.batch, batchId),
      ACL: { [context.userId]: { read: true } },
    };
    const answers = bodies.length ? await storage.createObjects(CLASS.memory, bodies, shared) : [];
    const duplicates: { chunk: number; index: number }[] = [];
    answers.forEach((answer, k) => {
      const { chunk, index } = written[k];
      if ('success' in answer) results[chunk].push({ i: index, id: answer.success.objectId });
      else if (answer.error.code === Parse.Error.DUPLICATE_VALUE) duplicates.push(written[k]);
      else if (PARSE_ITEM_ERROR_CODES.has(answer.error.code)) results[chunk].push({ i: index, e: answer.error.error, c: 'store_refused' });
      else if (lastAttempt) giveUp(chunk, index, `Parse Server answered ${answer.error.code} ${answer.error.error}`);
      else throw itemFailure(index, `Parse Server answered ${answer.error.code} ${answer.error.error}`);
    });
    // Once per write, not per item or attempt: the operator's view of what the product could not classify.
    if (givenUp.length) partLog.warn('memories failed on every attempt; recorded failed', { attempts: context.attempt, memories: givenUp.length, first: givenUp[0] });
    if (duplicates.length) {
      // Written by an earlier attempt of this chunk: take the existing memory. None of this batch item: the
      // duplicate is on a unique index of the host's own, which no attempt will ever pass.
      const ids = await existingMemoryIds(duplicates.map(({ index }) => `${batchId}:${index}`));
      for (const { chunk, index } of duplicates) {
        const id = ids.get(`${batchId}:${index}`);
        results[chunk].push(id ? { i: index, id } : { i: index, e: OTHER_UNIQUE_KEY_REFUSAL, c: 'store_refused' });
      }
    }
    for (const [chunk, chunkResults] of results.entries()) {
      chunkResults.sort((a, b) => a.i - b.i);
      // Each result names its memory as the client does: its custom_id, and in a retry its first index.
      const { first, items } = chunks[chunk];
      for (const result of chunkResults) {
        const { custom_id: customId, original_index: originalIndex } = items[result.i - first];
        if (customId !== undefined) result.k = customId;
        if (originalIndex !== undefined) result.o = originalIndex;
      }
      const persisted = chunkResults.filter((r) => r.id).map((r) => ({ index: r.i, memoryId: r.id as string }));
      if (persisted.length && processor.afterPersist) await processor.afterPersist(persisted, context);
    }
    return results;
  }

  /** Records finished chunks in one write; for each, false when an earlier attempt had recorded it. */
  async function recordChunks(batchId: string, part: number, chunks: { first: number; results: ChunkResult[] }[], attempt: number): Promise<boolean[]> {
    const rows = chunks.map(({ first, results }) => ({ key: `${batchId}:${first}`, first, count: results.length, ...countsOf(results), results }));
    const answers = await storage.createObjects(CLASS.chunk, rows, { batch: pointer(CLASS.batch, batchId), part, attempt, ACL: {} });
    return answers.map((answer, k) => {
      if ('success' in answer) return true;
      if (answer.error.code === Parse.Error.DUPLICATE_VALUE) return false;
      throw new Error(`chunk ${chunks[k].first} of batch ${batchId} could not be recorded: ${answer.error.code} ${answer.error.error}`);
    });
  }

  /**
   * Adds recorded chunks' counts to the request, at most about once a second per part: each save of the
   * request runs its triggers and LiveQuery. Counts lag by at most that if a worker dies; finalizeBatch
   * recomputes them from the chunk rows.
   */
  function countsFlusher(batchId: string) {
    const pending: Counts = { processed: 0, failed: 0 };
    let lastFlush = Date.now();
    const flush = async () => {
      if (pending.processed === 0 && pending.failed === 0) return;
      const counts = batchPointer(batchId);
      counts.increment('processedMemories', pending.processed);
      counts.increment('failedMemories', pending.failed);
      pending.processed = 0;
      pending.failed = 0;
      lastFlush = Date.now();
      await counts.save(null, master);
    };
    return {
      flush,
      async add(counts: Counts): Promise<void> {
        pending.processed += counts.processed;
        pending.failed += counts.failed;
        if (Date.now() - lastFlush >= COUNTS_FLUSH_MS) await flush();
      },
    };
  }

  /** Deletes one batch's part files, their index rows and its results file; answers how many files. */
  async function deleteStoredFiles(batch: Parse.Object): Promise<number> {
    const record = batchRecordOf(batch);
    const parts = await new Parse.Query(CLASS.part).equalTo('partsKey', record.partsKey).limit(1_000_000).find(master);
    const names = [...parts.map((part) => partRecordOf(part).name), ...resultsFileNames(record)];
    for (const name of names) await storage.deleteFile(name);
    await Parse.Object.destroyAll(parts, master);
    batch.unset('resultsFile');
    batch.unset('resultsParts');
    log.info('batch files deleted', { batchId: record.id, files: names.length });
    return names.length;
  }

  /** Deletes the files of a batch past its expiresAt; marks the request. */
  async function expireFiles(batch: Parse.Object): Promise<number> {
    const files = await deleteStoredFiles(batch);
    batch.set('filesExpiredAt', new Date());
    await batch.save(null, master);
    return files;
  }

  /** Deletes every row of `className` that belongs to the batch, a page at a time, heartbeating the count so far. */
  async function deleteAllRows(className: string, batchId: string, deleted: { memories: number; chunks: number }, key: 'memories' | 'chunks'): Promise<void> {
    for (;;) {
      const page = await storage.deleteBatchRows(className, batchId, config.BATCH_DELETE_PAGE_SIZE);
      if (page === 0) return;
      deleted[key] += page;
      Context.current().heartbeat(deleted);
    }
  }

  return {
    /** Marks the batch processing and returns the small manifest the workflow needs. */
    async beginBatch(batchId: string): Promise<BatchManifest> {
      let object = await loadBatch(batchId);
      let batch = batchRecordOf(object);
      if (batch.status === 'receiving') {
        // The body still arrives (processed while uploading). Called again as the workflow waits for parts.
        const lost = Date.now() > batch.createdAt.getTime() + config.REST_BODY_TIMEOUT + config.BATCH_UPLOAD_LOST_AFTER;
        if (lost) {
          // No body outlives REST_BODY_TIMEOUT: the Parse Server that received this one stopped before sealing it.
          object.set({ status: 'processing', error: `the upload did not end (its server stopped); the batch holds the ${batch.totalMemories} memories stored before` });
        }
        if (!batch.startedAt) object.set({ startedAt: new Date(), workflowId: workflowIdFor(batchId) });
        if (lost || !batch.startedAt) {
          try {
            await object.save(null, master);
          } catch (error) {
            // Sealed or cancelled since the read: the stored status stands.
            if (!isStatusRefusal(error)) throw error;
          }
          // Read again, and go on from that row: the body may have been sealed meanwhile with more parts (as
          // `pending`, not started yet), and a later write of this stale object would answer its old parts.
          object = await loadBatch(batchId);
          batch = batchRecordOf(object);
        }
      }
      if (batch.status === 'pending') {
        object.set({ status: 'processing', startedAt: new Date(), workflowId: workflowIdFor(batchId) });
        try {
          await object.save(null, master);
          batch = batchRecordOf(object);
          log.info('batch processing', { batchId, workflowId: workflowIdFor(batchId), total: batch.totalMemories });
        } catch (error) {
          // The status changed since the read (a cancel landed): the stored status stands.
          if (!isStatusRefusal(error)) throw error;
          batch = batchRecordOf(await loadBatch(batchId));
        }
      }
      const { status, totalMemories: total, partsKey, partCount, batchFileName } = batch;
      if (partsKey === undefined || partCount === undefined || batchFileName === undefined) throw batchDataError(`batch ${batchId} has no stored parts (batchFile, partsKey, partCount)`);
      return {
        total,
        partCount,
        ...(partCount === 1 && status !== 'receiving' ? { onlyPart: { name: batchFileName, first: 0, count: total } } : {}),
        partsKey,
        owner: {
          userId: batch.userId,
          organizationId: batch.organizationId,
          ...(batch.workspaceId ? { workspaceId: batch.workspaceId } : {}),
          ...(batch.namespaceId ? { namespaceId: batch.namespaceId } : {}),
        },
        status,
        ended: batch.completedAt !== undefined,
        settings: {
          timeoutMs: config.BATCH_WORKFLOW_TIMEOUT,
          partConcurrency: config.BATCH_PART_CONCURRENCY,
          partsPerRun: config.BATCH_PARTS_PER_RUN,
          heartbeatTimeoutMs: config.BATCH_HEARTBEAT_TIMEOUT,
          uploadPollMs: UPLOAD_POLL_MS,
          localPartMaxItems: config.BATCH_LOCAL_PART_MAX_ITEMS,
        },
      };
    },

    /** Processes one stored part chunk by chunk, skipping chunks an earlier attempt finished. */
    async processPart({ batchId, part, partsKey, owner, onlyPart }: PartInput): Promise<Counts> {
      const ctx = Context.current();
      const stored = onlyPart ?? (await storage.findPart(partsKey, part));
      if (!stored) throw batchDataError(`batch ${batchId} has no part ${part}`);
      const progress = new PartProgress(stored, config.BATCH_CHUNK_SIZE);
      const lookUp = async () => progress.recordedEarlier(await storage.chunkRows(batchId, part));
      // A retry skips the chunks earlier attempts finished, and so does a local part: a local activity re-run
      // after its worker died starts again at attempt 1. A first attempt of an activity task looks them up only
      // once a write finds its chunks recorded already (a reset workflow).
      if (ctx.info.attempt > 1 || ctx.info.isLocal) await lookUp();
      if (progress.pending.length === 0) return progress.totals;

      const partLog = log.child({ batchId, workflowId: workflowIdFor(batchId), part, attempt: ctx.info.attempt });
      const items = await storage.readLines<StoredMemory>(stored.name).catch((error: unknown) => {
        // File storage answers 404 for a file it cannot decrypt as well (altered, or another FILES_ENCRYPTION_KEY).
        if ((error as { status?: number }).status === 404) throw batchDataError(`part ${part} of batch ${batchId} is missing from file storage or does not decrypt with FILES_ENCRYPTION_KEY`);
        if (error instanceof CorruptFileError) throw batchDataError(`part ${part} of batch ${batchId} is corrupt: ${error.message}`);
        throw error;
      });
      if (items.length !== stored.count) throw batchDataError(`part ${part} of batch ${batchId} holds ${items.length} memories, expected ${stored.count}`);
      const context: Omit<MemoryContext, 'index'> = {
        batchId,
        ...owner,
        attempt: ctx.info.attempt,
      };
      // A local activity has no heartbeat: the workflow task it runs in stands for it.
      const heartbeat = ctx.info.isLocal ? () => undefined : (details: unknown) => ctx.heartbeat(details);
      const beat = setInterval(() => heartbeat({ part }), Math.max(1000, Math.floor(config.BATCH_HEARTBEAT_TIMEOUT / 4)));
      const counts = countsFlusher(batchId);
      let finished = false;
      try {
        let writes = progress.writesLeft(items, config);
        for (let write = writes.shift(); write; write = writes.shift()) {
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('batch cancelled');
          const results = await persistChunks(batchId, write, context, partLog);
          const recorded = await recordChunks(
            batchId,
            part,
            write.map(({ first }, k) => ({ first, results: results[k] })),
            ctx.info.attempt,
          );
          await counts.add(progress.written(write, results, recorded));
          heartbeat({ part, chunk: write[write.length - 1].first });
          if (progress.mustLookUp) {
            await lookUp();
            writes = progress.writesLeft(items, config);
          }
        }
        finished = true;
      } finally {
        clearInterval(beat);
        // A batch's only part leaves its counts to finalizeBatch, which follows at once: one save of the request less.
        if (!finished || !onlyPart) await counts.flush();
      }
      partLog.debug('part processed', { ...progress.totals });
      return progress.totals;
    },

    /** Writes the results file and the terminal status, with counts recomputed from the recorded chunks. */
    async finalizeBatch({ batchId, status, error }: FinalizeInput): Promise<FinalizeOutcome> {
      const batch = await loadBatch(batchId);
      const record = batchRecordOf(batch);
      // A batch being deleted tells no receiver of its end: what the event would point to is going.
      if (record.completedAt) return { processed: record.processedMemories, failed: record.failedMemories, webhook: Boolean(record.webhookUrl) && hasEnded(record.status) };
      // A status set from outside (the Dashboard cancelling) stands; the counts and results are still written.
      // A batch whose upload broke (processed while uploading: its error recorded when its body ended) fails,
      // once the memories before the break are processed.
      // A batch deleted while it ran (`deleting`) stays so: its deletion waits for this end.
      const finalStatus = hasEnded(record.status) || record.status === 'deleting' ? record.status : status === 'completed' && record.error ? 'failed' : status;
      const webhook = Boolean(record.webhookUrl) && finalStatus !== 'deleting';
      const counts: Counts = { processed: 0, failed: 0 };
      // The results stream into the file a page of chunk rows at a time: the worker's memory stays the same
      // whatever the batch's size.
      async function* resultLines(): AsyncGenerator<string> {
        // A batch without stored parts (refused by beginBatch) has no chunk rows either.
        for await (const page of storage.chunkRowPages(batchId, record.partCount ?? 0, Math.max(1, Math.floor(RESULTS_PER_PAGE / config.BATCH_CHUNK_SIZE)))) {
          let text = '';
          for (const row of page) {
            counts.processed += row.processed;
            counts.failed += row.failed;
            for (const r of row.results) {
              const names = { index: r.i, ...(r.k !== undefined ? { custom_id: r.k } : {}), ...(r.o !== undefined ? { original_index: r.o } : {}) };
              const result: MemoryProcessingResult = r.id ? { ...names, success: true, memory_id: r.id } : { ...names, success: false, error: r.e, ...(r.c ? { code: r.c } : {}) };
              text += `${JSON.stringify(result)}\n`;
            }
          }
          yield text;
        }
      }
      const discard = (name: string) => storage.deleteFile(name).catch(() => undefined);
      // Each file goes through Parse Server's files route, below its maxUploadSize.
      const [first, ...more] = await storeInFiles(
        resultLines(),
        resultsFileMaxText(config.PARSE_MAX_UPLOAD_SIZE),
        (text) =>
          storage.uploadFile(
            `${STORED_FILE_PREFIX}${randomUUID()}-results.jsonl.gz`,
            pipeline(Readable.from(text), zlib.createGzip({ level: config.BATCH_GZIP_LEVEL }), () => undefined),
          ),
        discard,
      );
      batch.set({
        status: finalStatus,
        processedMemories: counts.processed,
        failedMemories: counts.failed,
        resultsFile: fileField(publicServerURL(config), endpoint.appId, first),
        ...(more.length ? { resultsParts: more } : {}),
        completedAt: new Date(),
        ...(error ? { error } : {}),
      });
      try {
        await batch.save(null, master);
      } catch (saveError) {
        // Refused (a cancel landed since the read) or lost: the retry uploads its own results files, so these go.
        await Promise.all([first, ...more].map(discard));
        throw saveError;
      }
      log.info('batch finished', { batchId, workflowId: workflowIdFor(batchId), status: finalStatus, ...counts, total: record.totalMemories });
      return { ...counts, webhook };
    },

    /**
     * POSTs the signed terminal event to the batch's webhook URL. A failed attempt is recorded and
     * thrown for Temporal to retry with backoff; the last allowed attempt records the failure and returns.
     */
    async deliverWebhook(batchId: string): Promise<void> {
      const batch = await loadBatch(batchId);
      const record = batchRecordOf(batch);
      const url = record.webhookUrl;
      // Deleted since it finished: its results are gone, and so is the event's point.
      if (!url || record.webhookStatus === 'delivered' || record.webhookStatus === 'failed' || !hasEnded(record.status)) return;
      const { attempt } = Context.current().info;
      const event = webhookEvent(record, publicServerURL(config));
      const body = JSON.stringify(event);
      const hookLog = log.child({ batchId, workflowId: workflowIdFor(batchId), attempt });
      let failure: string;
      try {
        const status = await postWebhook({
          url,
          headers: {
            'Content-Type': 'application/json',
            [WEBHOOK_HEADERS.event]: event.type,
            [WEBHOOK_HEADERS.delivery]: event.id,
            ...signWebhook(record.webhookSecret ?? '', body, Math.floor(Date.now() / 1000)),
          },
          body,
          allowedNetworks: config.WEBHOOK_ALLOWED_NETWORKS ?? [],
          timeoutMs: config.WEBHOOK_TIMEOUT,
        });
        if (status >= 200 && status < 300) {
          batch.set({ webhookStatus: 'delivered', webhookAttempts: attempt, webhookDeliveredAt: new Date() });
          batch.unset('webhookError');
          await batch.save(null, master);
          hookLog.info('webhook delivered');
          return;
        }
        failure = `HTTP ${status}`;
      } catch (error) {
        failure = (error as Error).message;
      }
      // What users see says only that delivery failed: a status code against a connection error, or a
      // refused address, would map the receiver's network. The cause goes to the worker's log.
      const last = attempt >= config.WEBHOOK_MAX_ATTEMPTS;
      batch.set({ webhookStatus: last ? 'failed' : 'retrying', webhookAttempts: attempt, webhookError: WEBHOOK_FAILED });
      await batch.save(null, master);
      if (last) {
        hookLog.warn('webhook delivery gave up', { error: failure });
        return;
      }
      hookLog.info('webhook delivery failed; retrying', { error: failure });
      throw ApplicationFailure.retryable(WEBHOOK_FAILED, 'WebhookDeliveryError');
    },

    /**
     * Readies a batch for deletion: ready once it is `deleting` (or `deleted`) and its run has ended. A batch still
     * running is cancelled (its workflow records the end once its parts have stopped writing); one whose run has
     * ended moves to `deleting`. Not ready: ask again.
     */
    async beginDelete(batchId: string): Promise<DeleteReadiness> {
      const readiness = (ready: boolean): DeleteReadiness => ({ ready, heartbeatTimeoutMs: config.BATCH_HEARTBEAT_TIMEOUT });
      const batch = await loadBatch(batchId);
      const { status, completedAt } = batchRecordOf(batch);
      if (status === 'deleted') return readiness(true);
      if (status !== 'deleting') {
        batch.set('status', RUNNING_STATUSES.includes(status) ? 'cancelled' : 'deleting');
        try {
          await batch.save(null, master);
        } catch (error) {
          // Moved since the read (it ended, or a delete came first): asked again, the stored status decides.
          if (!isStatusRefusal(error)) throw error;
          return readiness(false);
        }
      }
      return readiness(batchRecordOf(batch).status === 'deleting' && completedAt !== undefined);
    },

    /**
     * Removes what a `deleting` batch created and stored: its memories and chunk rows a page at a time, then its part
     * and results files, and records `deleted`. Every step finds only what is left, so a retry after a killed worker
     * goes on where it stopped, and a memory deleted by hand meanwhile is simply not found.
     */
    async deleteBatchData(batchId: string): Promise<void> {
      const batch = await loadBatch(batchId);
      if (batchRecordOf(batch).status === 'deleted') return;
      const deleted = { memories: 0, chunks: 0 };
      await deleteAllRows(CLASS.memory, batchId, deleted, 'memories');
      await deleteAllRows(CLASS.chunk, batchId, deleted, 'chunks');
      const files = await deleteStoredFiles(batch);
      batch.set({ status: 'deleted', deletedAt: new Date() });
      await batch.save(null, master);
      log.info('batch deleted', { batchId, workflowId: deleteWorkflowIdFor(batchId), ...deleted, files, counted: batchRecordOf(batch).deletedMemories });
    },

    /** Deletes the stored files of finished batches past their expiresAt; the requests and their counts stay. */
    async expireBatchFiles(): Promise<ExpiryOutcome> {
      const ctx = Context.current();
      const outcome: ExpiryOutcome = { batches: 0, files: 0 };
      for (;;) {
        const page = await new Parse.Query(CLASS.batch)
          .lessThanOrEqualTo('expiresAt', new Date())
          .doesNotExist('filesExpiredAt')
          .containedIn('status', [...ENDED_STATUSES])
          .limit(50)
          .find(master);
        for (const batch of page) {
          outcome.files += await expireFiles(batch);
          outcome.batches++;
          ctx.heartbeat(outcome);
        }
        if (page.length < 50) break;
      }
      if (outcome.batches) log.info('batch files expired', { ...outcome });
      return outcome;
    },
  };
}

export type BatchActivities = ReturnType<typeof createActivities>;
