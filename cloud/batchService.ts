/**
 * The batch pipeline as clients see it, shared by the Cloud Functions and the
 * REST route: validate, store, start the workflow, wait, answer.
 */
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import Parse from '../schema/parseSdk';
import type { Config } from '../config';
import type { Logger } from '../config/log';
import type { ParseEndpoint } from '../schema/batchFile';
import { type BatchPage, batchDeletedMessage, batchMemoryResponse, filesExpiredMessage, hasEnded, isDeleted, isTerminal, statusResponse } from '../schema/answers';
import { CLASS, idOf } from '../schema/classes';
import {
  type BatchMemoryResponse,
  type BatchOptions,
  type BatchStatus,
  type BatchStatusResponse,
  type MemoryItem,
  type MemoryProcessingResult,
  type BatchListQuery,
  DRY_RUN_MAX_PROBLEMS,
  type DryRunResponse,
  type ValidationDetail,
  streamOptionsSchema,
  INLINE_RESULTS_MAX,
  type ResultsQuery,
  LIST_CURSOR_PATTERN,
  RUNNING_STATUSES,
  type StoredMemory,
  type StreamOptions,
  batchRequestSchema,
  describeDetails,
  isStatusRefusal,
  validationDetails,
} from '../schema/memory';
import { type BatchRecord, batchRecordOf, resultsFileNames } from '../schema/records';
import { type PartsStored, deleteWorkflowIdFor, workflowIdFor } from '../schema/workflow';
import { BatchStorage } from '../storage/batchStorage';
import type { Actor } from './auth';
import { BatchStore, type StoredParts } from './batchStore';
import { BatchError } from './errors';
import { InProcessParse, InProcessStorage } from './inProcess';
import type { BatchOwnership, OwnershipResolver } from './organizations';
import type { BatchWorkflows } from './temporal';

const master = { useMasterKey: true };
/** How often an event stream reads the batch again. */
const EVENTS_POLL_MS = 500;
/** Least time between two signals of parts stored to the workflow of a batch processed while uploading. */
const UPLOAD_SIGNAL_INTERVAL_MS = 1000;

export interface SubmitOptions {
  /** Idempotency key from a header, when the transport has one. */
  idempotencyKey?: string;
  /** Called once the batch is stored (or found stored), before the answer waits for it: frees the caller's upload slot. */
  onStored?: () => void;
}

export interface BatchAnswer {
  response: BatchMemoryResponse;
  /** True when this call created the batch (false when an idempotent repeat found it). */
  created: boolean;
}

/** The settings that make two requests the same batch (not how the caller wants to be answered or processed). */
function contentSettings(settings: StreamOptions): Omit<StreamOptions, 'wait' | 'idempotency_key' | 'user_id' | 'process'> {
  const { wait: _wait, idempotency_key: _key, user_id: _user, process: _process, ...content } = settings;
  return content;
}

/**
 * Sends the latest of a batch's upload signals, one at a time, without holding up the upload: a signal
 * that fails (Temporal unreachable) is logged, and the workflow reads the request again in time.
 */
function uploadSignals(send: (parts: PartsStored) => Promise<void>, log: () => Logger): (parts: PartsStored) => Promise<void> {
  let latest: PartsStored | undefined;
  let sending: Promise<void> | undefined;
  const pump = async () => {
    for (let parts = latest; parts; parts = latest) {
      latest = undefined;
      const sentAt = Date.now();
      await send(parts).catch((error: unknown) => log().warn('parts stored signal failed; the workflow reads the request again', { error: (error as Error).message, ...parts }));
      // Each signal is an event in the workflow's history: at most one a second while the body arrives; its end is told at once.
      const pause = UPLOAD_SIGNAL_INTERVAL_MS - (Date.now() - sentAt);
      if (latest && !(latest as PartsStored).sealed && pause > 0) await delay(pause);
    }
    sending = undefined;
  };
  return (parts) => {
    latest = parts;
    sending ??= pump();
    return sending;
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class BatchService {
  readonly store: BatchStore;
  /** Parse Server in this process: its database controller and sessions. */
  readonly parse: InProcessParse;
  /** Batch files and bulk rows, through Parse Server's controllers in this process. */
  readonly storage: BatchStorage;

  constructor(
    private readonly config: Config,
    endpoint: ParseEndpoint,
    private readonly workflows: BatchWorkflows,
    private readonly resolveOwnership: OwnershipResolver,
    private readonly log: Logger,
  ) {
    this.parse = new InProcessParse(config.PARSE_APP_ID);
    this.storage = new BatchStorage(new InProcessStorage(this.parse, endpoint));
    this.store = new BatchStore(config, endpoint, this.storage, log);
  }

  private readonly requestSchema = () =>
    batchRequestSchema({ maxBatchSize: this.config.MAX_BATCH_SIZE, maxMemorySize: this.config.MAX_MEMORY_SIZE, webhookAllowedNetworks: this.config.WEBHOOK_ALLOWED_NETWORKS ?? [] });

  /** The user a request acts for; the master key must name one with `user_id`. Anonymous users never submit batches. */
  async actingUser(actor: Actor, userId?: string): Promise<Parse.User> {
    let user = actor.user;
    if (actor.master) {
      if (!userId)
        throw new BatchError(400, 'invalid_request', 'user_id is required when using the master key', [{ path: 'user_id', field: 'user_id', message: 'is required when using the master key' }]);
      user = await new Parse.Query(Parse.User).get(userId, master).catch(() => undefined);
      if (!user) throw new BatchError(404, 'not_found', `user ${userId} not found`);
    }
    if (!user) throw new BatchError(401, 'unauthorized', 'a logged-in user (session token) is required');
    if ((user.get('authData') as Record<string, unknown> | undefined)?.anonymous) {
      throw new BatchError(403, 'forbidden', 'anonymous users cannot submit batches: sign up with a username and password');
    }
    return user;
  }

  /** A JSON batch validated exactly as `submit` would, for a user who could submit it; nothing is stored or started. */
  async dryRun(actor: Actor, params: unknown): Promise<DryRunResponse> {
    if (!actor.master && !actor.user) throw new BatchError(401, 'unauthorized', 'a logged-in user (session token) is required');
    const memories = (params as { memories?: unknown } | null)?.memories;
    const parsed = this.requestSchema().safeParse(params);
    if (parsed.success) await this.actingUser(actor, parsed.data.user_id);
    return dryRunResponse(Array.isArray(memories) ? memories.length : 0, parsed.success ? 0 : parsed.error.issues.length, parsed.success ? [] : validationDetails(parsed.error, DRY_RUN_MAX_PROBLEMS));
  }

  /** A streamed batch validated line by line exactly as `submitStream` would, every problem counted; nothing is stored or started. */
  async dryRunStream(actor: Actor, settings: unknown, lines: (onProblem: (problem: BatchError) => void) => AsyncIterable<MemoryItem>): Promise<DryRunResponse> {
    if (!actor.master && !actor.user) throw new BatchError(401, 'unauthorized', 'a logged-in user (session token) is required');
    const options = streamOptionsSchema(this.config.WEBHOOK_ALLOWED_NETWORKS ?? []).safeParse(settings);
    if (options.success) await this.actingUser(actor, options.data.user_id);
    const problems: ValidationDetail[] = options.success ? [] : validationDetails(options.error, DRY_RUN_MAX_PROBLEMS);
    let found = options.success ? 0 : options.error.issues.length;
    let total = 0;
    const onProblem = (problem: BatchError) => {
      total++;
      found++;
      const details = problem.details.length ? problem.details : [{ path: 'body', message: problem.message }];
      problems.push(...details.slice(0, DRY_RUN_MAX_PROBLEMS - problems.length));
    };
    for await (const _memory of lines(onProblem)) total++;
    return dryRunResponse(total, found, problems);
  }

  /** A JSON batch: everything is validated before anything is stored. */
  async submit(actor: Actor, params: unknown, options: SubmitOptions = {}): Promise<BatchAnswer> {
    if (!actor.master && !actor.user) throw new BatchError(401, 'unauthorized', 'a logged-in user (session token) is required');
    const parsed = this.requestSchema().safeParse(params);
    if (!parsed.success) {
      const details = validationDetails(parsed.error);
      const tooMany = parsed.error.issues.some((i) => i.code === 'too_big' && i.path.length === 1 && i.path[0] === 'memories');
      throw new BatchError(tooMany ? 413 : 400, tooMany ? 'too_large' : 'invalid_request', `invalid batch: ${describeDetails(details)}`, details);
    }
    const { memories, ...settings } = parsed.data;
    const user = await this.actingUser(actor, settings.user_id);
    const idempotencyKey = this.idempotencyKey(user, options.idempotencyKey ?? settings.idempotency_key);
    const requestHash = sha256(JSON.stringify({ ...contentSettings(settings), memories }));
    if (idempotencyKey) {
      const existing = await this.findByIdempotencyKey(idempotencyKey, requestHash);
      if (existing) return { response: await this.answer(existing, settings.wait), created: false };
    }
    // Ownership is resolved while the parts are stored; create() awaits it and discards the parts if it fails.
    const ownership = this.resolveOwnership({ user, workspaceId: settings.workspace_id, namespace: settings.namespace });
    ownership.catch(() => undefined);
    return this.create(user, settings, await this.store.writeParts(memories), idempotencyKey, requestHash, { ownership, onStored: options.onStored });
  }

  /**
   * A streamed batch (NDJSON): the options are validated first, each memory as it arrives; parts are
   * stored while the body streams in, and removed again if a line is bad or the key was used before.
   */
  async submitStream(actor: Actor, settings: StreamOptions, memories: AsyncIterable<MemoryItem>, bodyHash: () => string, options: SubmitOptions = {}): Promise<BatchAnswer> {
    const user = await this.actingUser(actor, settings.user_id);
    const idempotencyKey = this.idempotencyKey(user, options.idempotencyKey ?? settings.idempotency_key);
    // A repeat of a batch whose body has ended is answered as any repeat: the body is read and compared with the first.
    if (settings.process === 'while_uploading' && !(idempotencyKey && (await this.findByIdempotencyKey(idempotencyKey)))) {
      return this.processWhileUploading(user, settings, memories, bodyHash, idempotencyKey, options);
    }
    const stored = await this.store.writeParts(memories);
    if (stored.total === 0) {
      throw new BatchError(400, 'invalid_request', 'invalid batch: memories must contain at least 1 memory', [{ path: 'memories', field: 'memories', message: 'must contain at least 1 memory' }]);
    }
    return this.create(user, settings, stored, idempotencyKey, sha256(`${JSON.stringify(contentSettings(settings))}\n${bodyHash()}`), { onStored: options.onStored });
  }

  /**
   * A streamed batch processed while its body arrives (process=while_uploading): the request is created
   * `receiving` with the first stored part, its workflow started, and every further part signalled to it.
   * When the body ends the batch is sealed with its total. A body that breaks (a bad line, a body too
   * large or too slow, the client gone) after the first part ends the batch `failed` once the memories
   * before the break are processed; the refusal names the batch.
   */
  private async processWhileUploading(
    user: Parse.User,
    settings: StreamOptions,
    memories: AsyncIterable<MemoryItem>,
    bodyHash: () => string,
    idempotencyKey: string | undefined,
    options: SubmitOptions,
  ): Promise<BatchAnswer> {
    const ownership = await this.resolveOwnership({ user, workspaceId: settings.workspace_id, namespace: settings.namespace });
    let batch: Parse.Object | undefined;
    let log = this.log;
    const signal = uploadSignals(
      (parts) => this.workflows.partsStored(idOf(batch as Parse.Object), parts),
      () => log,
    );
    let written;
    try {
      written = await this.store.writePartsAsStored(memories, async (stored) => {
        if (batch) {
          await this.store.recordParts(batch, stored);
        } else {
          batch = await this.store.createRequest(
            { user, ownership, parts: stored, idempotencyKey, webhookUrl: settings.webhook_url, webhookSecret: settings.webhook_secret, metadata: settings.metadata },
            'receiving',
          );
          log = this.log.child({ batchId: idOf(batch), workflowId: workflowIdFor(idOf(batch)) });
          log.info('batch receiving');
        }
        void signal({ partCount: stored.parts.length, sealed: false });
      });
    } catch (error) {
      // Two uploads with one key raced and this one lost: the other still arrives.
      if (idempotencyKey && (error as Parse.Error).code === Parse.Error.DUPLICATE_VALUE) {
        await this.findByIdempotencyKey(idempotencyKey);
        throw new BatchError(409, 'conflict', 'another request with this idempotency key created its batch first; repeat the request to be answered with that batch');
      }
      throw error;
    }
    const { stored, failure } = written;
    if (!batch) {
      throw new BatchError(400, 'invalid_request', 'invalid batch: memories must contain at least 1 memory', [{ path: 'memories', field: 'memories', message: 'must contain at least 1 memory' }]);
    }
    const batchId = idOf(batch);
    const refusal = failure instanceof BatchError ? failure : undefined;
    await this.store.seal(
      batch,
      stored,
      failure
        ? { error: `the upload broke after ${stored.total} memories, which the batch holds: ${refusal?.message ?? 'internal error'}` }
        : { requestHash: sha256(`${JSON.stringify(contentSettings(settings))}\n${bodyHash()}`) },
    );
    await signal({ partCount: stored.parts.length, sealed: true });
    options.onStored?.();
    log.info('batch stored', { total: stored.total, parts: stored.parts.length, storedBytes: stored.storedBytes, ...(failure ? { error: refusal?.message ?? (failure as Error).message } : {}) });
    if (refusal) {
      const holds = refusal.batchId ? '' : `; batch ${batchId} holds the ${stored.total} memories before it and ends failed once they are processed`;
      throw new BatchError(refusal.status, refusal.code, `${refusal.message}${holds}`, refusal.details, refusal.retryAfterSeconds, batchId);
    }
    if (failure) throw failure;
    // Sealed `pending`: its workflow has not begun (Temporal unreachable so far). Nothing to wait for if it still cannot start.
    const reached = batchRecordOf(await batch.fetch(master)).status !== 'pending' || (await this.startWorkflow(batch, log));
    return { response: await this.answer(batch, reached ? settings.wait : false), created: true };
  }

  private idempotencyKey(user: Parse.User, clientKey: string | undefined): string | undefined {
    return clientKey ? sha256(`${idOf(user)}\n${clientKey}`) : undefined;
  }

  /** Creates the request over stored parts and starts its workflow; an idempotent repeat answers with the first batch. */
  private async create(
    user: Parse.User,
    settings: BatchOptions,
    stored: StoredParts,
    idempotencyKey: string | undefined,
    requestHash: string,
    known: { ownership?: Promise<BatchOwnership>; retryOf?: Parse.Object; onStored?: () => void } = {},
  ): Promise<BatchAnswer> {
    let batch: Parse.Object;
    try {
      const existing = idempotencyKey ? await this.findByIdempotencyKey(idempotencyKey, requestHash) : undefined;
      if (existing) {
        await stored.discard();
        known.onStored?.();
        return { response: await this.answer(existing, settings.wait), created: false };
      }
      const ownership = await (known.ownership ?? this.resolveOwnership({ user, workspaceId: settings.workspace_id, namespace: settings.namespace }));
      batch = await this.store.createRequest({
        user,
        ownership,
        parts: stored,
        idempotencyKey,
        requestHash,
        webhookUrl: settings.webhook_url,
        webhookSecret: settings.webhook_secret,
        metadata: settings.metadata,
        retryOf: known.retryOf,
      });
    } catch (error) {
      await stored.discard();
      // Two requests with one key raced: the loser answers with the winner's batch.
      if (idempotencyKey && (error as Parse.Error).code === Parse.Error.DUPLICATE_VALUE) {
        const winner = await this.findByIdempotencyKey(idempotencyKey, requestHash);
        known.onStored?.();
        if (winner) return { response: await this.answer(winner, settings.wait), created: false };
      }
      throw error;
    }
    known.onStored?.();
    const log = this.log.child({ batchId: idOf(batch), workflowId: workflowIdFor(idOf(batch)) });
    log.info('batch stored', { total: stored.total, parts: stored.parts.length, storedBytes: stored.storedBytes });
    const started = this.startWorkflow(batch, log);
    // An answer that does not wait for the batch need not wait for its start either: the batch is
    // stored, and one that Temporal does not take stays pending until the reconciler starts it.
    if (settings.wait === false) return { response: await this.answer(batch, false), created: true };
    // Nor is there anything to wait for when Temporal did not take it.
    const reached = await started;
    return { response: await this.answer(batch, reached ? settings.wait : false), created: true };
  }

  /**
   * The batch created with an idempotency key, if any. One whose body has not ended well (processed while
   * uploading: still arriving, or broken) cannot be compared with a repeat, which is refused naming it.
   * Without `requestHash`, any batch whose body has ended is returned.
   */
  private async findByIdempotencyKey(idempotencyKey: string, requestHash?: string): Promise<Parse.Object | undefined> {
    const existing = await new Parse.Query(CLASS.batch).equalTo('idempotencyKey', idempotencyKey).first(master);
    if (!existing) return undefined;
    const record = batchRecordOf(existing);
    if (record.requestHash === undefined) {
      const message =
        record.status === 'receiving'
          ? `the upload of batch ${record.id} with this idempotency key is still arriving (${record.totalMemories} memories so far); follow that batch, or use a new key for a new batch`
          : `the upload of batch ${record.id} with this idempotency key broke after ${record.totalMemories} memories, which that batch holds (status ${record.status}); send the memories after them as a new batch, with a new key`;
      throw new BatchError(409, 'conflict', message, [{ path: 'idempotency_key', field: 'idempotency_key', message: 'belongs to a batch whose upload did not end' }], undefined, record.id);
    }
    if (requestHash !== undefined && record.requestHash !== requestHash) {
      throw new BatchError(409, 'conflict', 'this idempotency key was already used with a different request body; use a new key for a new batch', [
        { path: 'idempotency_key', field: 'idempotency_key', message: 'was used before with a different body' },
      ]);
    }
    // A repeat may follow a start that never reached Temporal: starting again is a no-op otherwise.
    if (record.status === 'pending') await this.startWorkflow(existing, this.log.child({ batchId: idOf(existing) }));
    return existing;
  }

  /**
   * Starts the batch's workflow (a no-op when it already runs). If Temporal is unreachable the batch
   * stays pending and the reconciler starts it later; answers whether Temporal was reached.
   */
  async startWorkflow(batch: Parse.Object, log: Logger): Promise<boolean> {
    try {
      // beginBatch records the workflow id with the status `processing`.
      if (await this.workflows.start(idOf(batch))) log.info('workflow started');
      return true;
    } catch (error) {
      log.error('workflow start failed; batch stays pending until Temporal is reachable', { error: (error as Error).message });
      return false;
    }
  }

  /** Starts the workflow of every pending batch, oldest first; stops at the first batch Temporal cannot take. */
  async startPendingWorkflows(): Promise<number> {
    let reached = 0;
    let after = new Date(0);
    for (;;) {
      const page = await new Parse.Query(CLASS.batch).equalTo('status', 'pending').greaterThan('createdAt', after).ascending('createdAt').limit(100).find(master);
      for (const batch of page) {
        if (!(await this.startWorkflow(batch, this.log.child({ batchId: idOf(batch), workflowId: workflowIdFor(idOf(batch)) })))) return reached;
        reached++;
      }
      if (page.length < 100) return reached;
      after = page[page.length - 1].createdAt as Date;
    }
  }

  /** Waits (unless told not to) up to BATCH_WAIT_TIMEOUT, then answers with the batch as it is. */
  private async answer(batch: Parse.Object, wait: boolean | undefined): Promise<BatchMemoryResponse> {
    if (wait !== false && !isTerminal(batchRecordOf(batch).status)) {
      await this.workflows.waitFor(idOf(batch), this.config.BATCH_WAIT_TIMEOUT).catch(() => false);
      await batch.fetch(master);
    }
    return this.response(batch);
  }

  /** BatchMemoryResponse (docs/requirements.md §3) for a batch; for its owner, per-item results once it has finished, and its metadata. */
  async response(object: Parse.Object, forOwner = true): Promise<BatchMemoryResponse> {
    const batch = forOwner ? batchRecordOf(object) : withoutOwnerFields(batchRecordOf(object));
    const { results, more } = forOwner && hasEnded(batch.status) && !batch.filesExpiredAt ? await this.results(batch) : { results: [], more: false };
    return batchMemoryResponse(batch, results, more);
  }

  /** The per-item results an answer carries: the first INLINE_RESULTS_MAX, in batch order, and whether more follow in the download. */
  async results(batch: BatchRecord): Promise<{ results: MemoryProcessingResult[]; more: boolean }> {
    assertFilesKept(batch);
    if (!batch.resultsFileName) return { results: [], more: false };
    const results: MemoryProcessingResult[] = [];
    for await (const result of this.resultLines(batch, { limit: INLINE_RESULTS_MAX + 1 })) results.push(result);
    return { results: results.slice(0, INLINE_RESULTS_MAX), more: results.length > INLINE_RESULTS_MAX };
  }

  /**
   * A finished batch's per-item results, filtered and ranged, read from the results file as they stream in: a
   * reader that has its `limit` stops the download, and none holds the file.
   */
  async *resultLines(batch: BatchRecord, query: ResultsQuery): AsyncGenerator<MemoryProcessingResult> {
    assertFilesKept(batch);
    if (!batch.resultsFileName) throw resultsNotReady(batch);
    let left = query.limit ?? Infinity;
    if (left <= 0) return;
    for (const name of resultsFileNames(batch)) {
      for await (const result of this.storage.streamLines<MemoryProcessingResult>(name)) {
        if (query.after !== undefined && result.index <= query.after) continue;
        if (query.status && result.success !== (query.status === 'succeeded')) continue;
        yield result;
        if (--left === 0) return;
      }
    }
  }

  /**
   * A page of the acting user's own batches, filtered, newest first (ties by id; the master key names the user with
   * `userId`); one more is read to tell whether another page follows. A page after a cursor starts below the batch
   * it names, so batches created meanwhile neither shift nor repeat what follows.
   */
  async list(actor: Actor, query: BatchListQuery, userId?: string): Promise<BatchPage> {
    const user = await this.actingUser(actor, userId);
    const filtered = () => {
      const batches = new Parse.Query(CLASS.batch).equalTo('user', user);
      if (query.status) batches.equalTo('status', query.status);
      if (query.namespace) batches.matchesQuery('namespace', new Parse.Query(CLASS.namespace).equalTo('name', query.namespace));
      if (query.created_after) batches.greaterThan('createdAt', new Date(query.created_after));
      if (query.created_before) batches.lessThan('createdAt', new Date(query.created_before));
      return batches;
    };
    let batches = filtered();
    const cursor = query.after ? LIST_CURSOR_PATTERN.exec(query.after) : null;
    if (cursor) {
      const createdAt = new Date(parseInt(cursor[1], 36));
      batches = Parse.Query.or(filtered().lessThan('createdAt', createdAt), filtered().equalTo('createdAt', createdAt).lessThan('objectId', cursor[2]));
    }
    const found = await batches
      .descending('createdAt')
      .addDescending('objectId')
      .skip(query.offset)
      .limit(query.limit + 1)
      .find(actor.master ? master : { sessionToken: this.auth(actor).sessionToken });
    const page = found.slice(0, query.limit).map(batchRecordOf);
    if (found.length <= query.limit) return { batches: page };
    const last = page[page.length - 1];
    return { batches: page, nextCursor: `${last.createdAt.getTime().toString(36)}.${last.id}`, ...(query.after ? {} : { nextOffset: query.offset + query.limit }) };
  }

  /** A batch as `actor` may read it (the owner, members of its organization, or the master key); anyone else: not found. */
  load(actor: Actor, batchId: string): Promise<Parse.Object> {
    return this.store.load(batchId, this.auth(actor));
  }

  /** A batch's record as `actor` may read it: its metadata is its owner's (and the master key's) only. */
  visibleRecord(actor: Actor, batch: Parse.Object): BatchRecord {
    return this.owns(actor, batch) ? batchRecordOf(batch) : withoutOwnerFields(batchRecordOf(batch));
  }

  /** Status and counts for whoever may read the batch; the per-item results and metadata for its owner (or the master key) only. */
  async get(actor: Actor, batchId: string): Promise<BatchMemoryResponse> {
    const batch = await this.load(actor, batchId);
    return this.response(batch, this.owns(actor, batch));
  }

  /**
   * A batch's status at each change, until it ends or `signal` aborts; `undefined` for a poll that found no
   * change. Polls the request: cheap, and it works across Parse Server instances.
   */
  async *statusChanges(actor: Actor, batch: Parse.Object, signal: AbortSignal): AsyncGenerator<BatchStatusResponse | undefined> {
    let last = '';
    while (!signal.aborted) {
      const status = statusResponse(this.visibleRecord(actor, await batch.fetch(master)));
      const data = JSON.stringify(status);
      yield data === last ? undefined : status;
      last = data;
      if (isTerminal(status.status)) return;
      await new Promise((resolve) => setTimeout(resolve, EVENTS_POLL_MS));
    }
  }

  private owns(actor: Actor, batch: Parse.Object): boolean {
    return actor.master || actor.user?.id === batchRecordOf(batch).userId;
  }

  /**
   * A batch the caller may act on: the owner's, or any with the master key. Members of its organization
   * read its status but get 403 here; anyone else: not found.
   */
  async ownBatch(actor: Actor, batchId: string, action: string): Promise<Parse.Object> {
    const batch = await this.load(actor, batchId);
    if (!this.owns(actor, batch)) {
      throw new BatchError(403, 'forbidden', `only the owner of batch ${batchId} can ${action} it; members of its organization read its status`);
    }
    return batch;
  }

  /** The memories as stored (one part at a time, so any batch size fits a response), for the owner or the master key. */
  async data(actor: Actor, batchId: string, part: number): Promise<{ batch_id: string; part: number; parts: number; first: number; memories: StoredMemory[] }> {
    const batch = batchRecordOf(await this.ownBatch(actor, batchId, 'read the stored memories of'));
    assertFilesKept(batch);
    const { partsKey, partCount } = storedParts(batch);
    const stored = part < partCount ? await this.storage.findPart(partsKey, part) : undefined;
    if (!stored) throw new BatchError(400, 'invalid_request', `part must be below ${partCount}`, [{ path: 'part', field: 'part', message: `must be below ${partCount}` }]);
    return { batch_id: batchId, part, parts: partCount, first: stored.first, memories: await this.storage.readLines<StoredMemory>(stored.name) };
  }

  /**
   * Sets the status to `cancelled`, as the Dashboard does; the afterSave hook then cancels the workflow,
   * which writes the final counts once its activities have stopped. Answers when that is done.
   */
  async cancel(actor: Actor, batchId: string): Promise<BatchMemoryResponse> {
    const batch = await this.ownBatch(actor, batchId, 'cancel');
    if (await this.requestCancel(batch)) await this.workflows.waitFor(idOf(batch), this.config.BATCH_WAIT_TIMEOUT).catch(() => false);
    return this.response(await batch.fetch(master));
  }

  /**
   * Undoes an import: the delete workflow removes the memories the batch created, its chunk rows and its stored files,
   * and records `deleted`. A running batch is cancelled first, and moves to `deleting` at once; the workflow begins
   * removing once the batch's run has ended (its cancelled parts have stopped writing). A repeat answers where it
   * stands (and starts the workflow again if an earlier one stopped).
   */
  async delete(actor: Actor, batchId: string): Promise<BatchStatusResponse> {
    const batch = await this.ownBatch(actor, batchId, 'delete');
    if (await this.requestCancel(batch)) await this.workflows.waitFor(batchId, this.config.BATCH_WAIT_TIMEOUT).catch(() => false);
    if (hasEnded(batchRecordOf(await batch.fetch(master)).status)) await this.moveStatus(batch, 'deleting');
    // Started here as well as by the afterSave hook, which only logs a failure: here an unreachable Temporal reaches
    // the caller, and a repeat on a `deleting` batch starts a deletion that stopped.
    if (batchRecordOf(batch).status !== 'deleted') await this.workflows.startDelete(batchId);
    this.log.info('batch deletion requested', { batchId, workflowId: deleteWorkflowIdFor(batchId) });
    return statusResponse(this.visibleRecord(actor, batch));
  }

  /** Marks a batch cancelled unless it has finished; false when there was nothing to cancel. */
  async requestCancel(batch: Parse.Object): Promise<boolean> {
    return RUNNING_STATUSES.includes(batchRecordOf(batch).status) && this.moveStatus(batch, 'cancelled');
  }

  /**
   * Saves `status` on the batch; false when the compare-and-set on the status refused it (the batch moved since it
   * was read: it finished, or a concurrent request moved it first), and `batch` is then read again as stored.
   */
  private async moveStatus(batch: Parse.Object, status: BatchStatus): Promise<boolean> {
    batch.set('status', status);
    try {
      await batch.save(null, master);
    } catch (error) {
      if (!isStatusRefusal(error)) throw error;
      batch.revert('status');
      await batch.fetch(master);
      return false;
    }
    return true;
  }

  /**
   * A new batch of every item of a finished batch that was not stored (failed, or never reached
   * because the batch was cancelled or failed), for the same owner, organization, workspace and namespace.
   */
  async retryFailed(actor: Actor, batchId: string, clientKey?: string): Promise<BatchAnswer> {
    const object = await this.ownBatch(actor, batchId, 'retry');
    const batch = batchRecordOf(object);
    const { status } = batch;
    if (isDeleted(batch)) throw batchDeletedError(batch);
    if (!hasEnded(status)) throw new BatchError(409, 'conflict', `batch ${batchId} is ${status}; retry its failed items once it has finished`);
    const owner = pointerTo(Parse.User, batch.userId);
    // A batch has one retry, however often and however concurrently it is asked for: its key is the batch's, so a
    // repeat answers the retry batch the first call made, and no failed item is written twice. Retry the retry
    // batch to go on. A client's own key is checked against the requests it was used for, as on submit.
    const idempotencyKey = this.idempotencyKey(owner, `retry:${batchId}`);
    const requestHash = sha256(`retry:${batchId}`);
    if (clientKey) await this.findByIdempotencyKey(this.idempotencyKey(owner, clientKey) as string, requestHash);
    const earlier = await this.findByIdempotencyKey(idempotencyKey as string, requestHash);
    if (earlier) return { response: await this.answer(earlier, false), created: false };
    assertFilesKept(batch);
    const { partsKey, partCount } = storedParts(batch);
    const stored = await this.storedIndexes(batchId, partCount);
    if (stored.size === batch.totalMemories) throw new BatchError(409, 'conflict', `batch ${batchId} has no failed items to retry`);
    const { storage } = this;
    async function* unstored(): AsyncIterable<StoredMemory> {
      for (let index = 0; index < partCount; index++) {
        const part = await storage.findPart(partsKey, index);
        if (!part) throw new BatchError(410, 'expired', `part ${index} of batch ${batchId} is no longer stored`);
        const items = await storage.readLines<StoredMemory>(part.name);
        // Each keeps the index it had in the batch it was first sent in, through retries of retries.
        for (const [offset, item] of items.entries()) if (!stored.has(part.first + offset)) yield { ...item, original_index: item.original_index ?? part.first + offset };
      }
    }
    // The retry keeps the batch's webhook and metadata.
    const settings: BatchOptions = {
      wait: false,
      ...(batch.webhookUrl ? { webhook_url: batch.webhookUrl, webhook_secret: batch.webhookSecret } : {}),
      ...(batch.metadata ? { metadata: batch.metadata } : {}),
    };
    // Where the owner belongs now, as the server's records say: the batch's workspace and namespace while that is
    // still the batch's organization; a user who has left it writes into their current one, never the old.
    const ownership = this.resolveOwnership({ user: owner }).then((current): BatchOwnership =>
      idOf(current.organization) !== batch.organizationId
        ? current
        : {
            organization: current.organization,
            ...(batch.workspaceId ? { workspace: pointerTo(CLASS.workspace, batch.workspaceId) } : {}),
            ...(batch.namespaceId ? { namespace: pointerTo(CLASS.namespace, batch.namespaceId) } : {}),
          },
    );
    ownership.catch(() => undefined);
    const parts = await this.store.writeParts(unstored());
    return this.create(owner, settings, parts, idempotencyKey, requestHash, { retryOf: object, ownership });
  }

  /** Indexes of the memories a batch stored, from its chunk rows (the record the worker writes as it goes). */
  private async storedIndexes(batchId: string, partCount: number): Promise<Set<number>> {
    const stored = new Set<number>();
    for await (const page of this.storage.chunkRowPages(batchId, partCount)) {
      for (const row of page) for (const result of row.results) if (result.id) stored.add(result.i);
    }
    return stored;
  }

  /** Keeps the workflow in step with a saved request: cancelled stops it; pending starts it (a no-op if it runs). */
  async syncWorkflow(batch: Parse.Object, previousStatus: BatchStatus | undefined): Promise<void> {
    const { status, completedAt } = batchRecordOf(batch);
    const log = this.log.child({ batchId: idOf(batch), workflowId: workflowIdFor(idOf(batch)) });
    if (status === 'cancelled' && previousStatus !== 'cancelled' && !completedAt) {
      const cancelled = await this.workflows.cancel(idOf(batch));
      log.info('batch cancelled', { workflowRunning: cancelled });
      if (!cancelled) {
        // No workflow to record the end: record it here, unless one that began meanwhile has (the end is written once).
        batch.set('completedAt', new Date());
        await batch.save(null, master).catch(async (error: unknown) => {
          batch.revert('completedAt');
          if (!batchRecordOf(await batch.fetch(master)).completedAt) throw error;
        });
      }
    } else if (status === 'pending' && previousStatus !== undefined) {
      await this.startWorkflow(batch, log);
    } else if (status === 'deleting' && previousStatus !== 'deleting') {
      // Moved from the Dashboard as well as by delete(): the workflow does the removing.
      await this.workflows.startDelete(idOf(batch));
    }
  }

  private auth(actor: Actor): { sessionToken?: string; master?: boolean } {
    if (actor.master) return { master: true };
    if (!actor.sessionToken) throw new BatchError(401, 'unauthorized', 'a logged-in user (session token) is required');
    return { sessionToken: actor.sessionToken };
  }
}

function dryRunResponse(total: number, problemsCount: number, problems: ValidationDetail[]): DryRunResponse {
  return { dry_run: true, valid: problemsCount === 0, total, problems, problems_count: problemsCount };
}

/** A batch's record without what only its owner reads (the members of its organization read the rest). */
function withoutOwnerFields(batch: BatchRecord): BatchRecord {
  const { metadata: _metadata, ...rest } = batch;
  return rest;
}

function batchDeletedError(batch: BatchRecord): BatchError {
  return new BatchError(410, 'deleted', batchDeletedMessage(batch));
}

/** Refuses a read of a batch's stored memories or results once they are removed: deleted by its owner, or by the expiry job (its counts stay). */
export function assertFilesKept(batch: BatchRecord): void {
  if (isDeleted(batch)) throw batchDeletedError(batch);
  if (batch.filesExpiredAt) throw new BatchError(410, 'expired', filesExpiredMessage(batch));
}

/** The answer for the results of a batch that has not finished (no results file yet). */
export function resultsNotReady(batch: BatchRecord): BatchError {
  return new BatchError(409, 'conflict', `batch ${batch.id} has not finished (status ${batch.status}); its results are written when it ends`);
}

/** A pointer to a row by id, as a save takes it. */
function pointerTo<T extends Parse.Object>(className: string | (new () => T), id: string): T {
  const object = typeof className === 'string' ? (new Parse.Object(className) as T) : new className();
  object.id = id;
  return object;
}

/** Where a batch's parts are indexed; every batch the store created has both. */
function storedParts(batch: BatchRecord): { partsKey: string; partCount: number } {
  const { partsKey, partCount } = batch;
  if (partsKey === undefined || partCount === undefined) throw new Error(`batch ${batch.id} has no stored parts (partsKey, partCount)`);
  return { partsKey, partCount };
}
