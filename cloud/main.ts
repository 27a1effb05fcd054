/** Cloud Code of the plugin: triggers that guard BatchMemoryRequest and its files, and the Cloud Functions. */
import Parse from '../schema/parseSdk';
import { isBatchFileName } from '../schema/batchFile';
import { CLASS } from '../schema/classes';
import { listResponse } from '../schema/answers';
import { BATCH_STATUSES, type BatchStatus, batchListQuerySchema, statusRefusalMessage } from '../schema/memory';
import { batchField, batchRecordOf, unsavedBatchFields } from '../schema/records';
import type { Actor } from './auth';
import type { BatchService } from './batchService';
import type { Logger } from '../config/log';
import { BatchError, parsedOrRefused } from './errors';
import { type ConcurrencySlots, slotHolder } from './inputBounds';
import type { BatchMetrics } from './metrics';
import type { StorageAdapter } from './bulkWriter';
import { type CloudRegistry, type TriggerEvent, guardTrigger } from './triggerGuards';

/** Legal status moves; nothing leaves a terminal status. */
export const TRANSITIONS: Record<BatchStatus, readonly BatchStatus[]> = {
  // The body of a batch processed while uploading still arrives; it ends in `processing` (or `pending` if its
  // workflow has not begun), even when the body broke: the memories before the break are processed first.
  receiving: ['pending', 'processing', 'failed', 'cancelled'],
  pending: ['processing', 'failed', 'cancelled'],
  processing: ['completed', 'failed', 'cancelled'],
  // Its owner deletes a batch whose run has ended; a running one is cancelled first.
  completed: ['deleting'],
  failed: ['deleting'],
  cancelled: ['deleting'],
  deleting: ['deleted'],
  deleted: [],
};

/** The statuses a write of `status` may find stored: those it is a legal move from, and itself (no change). */
function predecessorsOf(status: BatchStatus): BatchStatus[] {
  return BATCH_STATUSES.filter((from) => from === status || TRANSITIONS[from].includes(status));
}

function statusRefused(from: BatchStatus, to: BatchStatus): Parse.Error {
  return new Parse.Error(Parse.Error.VALIDATION_ERROR, statusRefusalMessage(from, to));
}

const master = { useMasterKey: true };
const COUNT_FIELDS = [batchField('processedMemories'), batchField('failedMemories')];
const guarded = new WeakSet<StorageAdapter>();
/**
 * Makes every write of a request's status a compare-and-set. The beforeSave checks read the row as
 * Parse Server loaded it before the write (request.original): two writes that both loaded `pending` both
 * pass, and the later one would win. So Parse Server's own UPDATE of the row, whoever sends it (the
 * worker over HTTP, the Dashboard, a Cloud Function), carries the condition `status IN (legal
 * predecessors)`, which the database applies atomically to the stored row (PostgreSQL's UPDATE … WHERE,
 * MongoDB's findOneAndUpdate). A write that no longer matches is refused as a move from the stored
 * status. Likewise a count increment carries `completedAt` unset: once finalizeBatch has written the
 * final counts, a late increment is dropped and the rest of its write goes ahead; and a write that records
 * the end (`completedAt`) is refused once one has. This sits on the
 * storage adapter, the one object every request's database controller shares.
 */
export function guardStatusWrites(adapter: StorageAdapter): void {
  if (guarded.has(adapter)) return;
  guarded.add(adapter);
  const findOneAndUpdate = adapter.findOneAndUpdate.bind(adapter);
  adapter.findOneAndUpdate = async (className, schema, query, update, ...rest) => {
    if (className !== CLASS.batch || typeof query.objectId !== 'string') return findOneAndUpdate(className, schema, query, update, ...rest);
    const status = update.status as BatchStatus | undefined;
    const increments = COUNT_FIELDS.filter((field) => (update[field] as { __op?: string } | undefined)?.__op === 'Increment');
    // A write that records the end (finalizeBatch; a cancel with no workflow) is the only one: a second
    // finalize that raced the first (a local activity run twice) is refused instead of replacing its results file.
    const finishing = 'completedAt' in update;
    const conditions = {
      ...(typeof status === 'string' ? { status: { $in: predecessorsOf(status) } } : {}),
      ...(increments.length > 0 || finishing ? { completedAt: { $exists: false } } : {}),
    };
    if (Object.keys(conditions).length === 0) return findOneAndUpdate(className, schema, query, update, ...rest);
    const updated = await findOneAndUpdate(className, schema, { ...query, ...conditions }, update, ...rest);
    if (updated) return updated;
    const [stored] = await adapter.find(className, schema, { objectId: query.objectId }, { limit: 1 });
    if (!stored) return updated;
    if (typeof status === 'string' && !predecessorsOf(status).includes(stored.status as BatchStatus)) throw statusRefused(stored.status as BatchStatus, status);
    if (finishing && stored.completedAt) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, `batch ${query.objectId} has already finished: its end is recorded once`);
    const withoutIncrements = Object.fromEntries(Object.entries(update).filter(([field]) => !increments.includes(field)));
    return adapter.findOneAndUpdate(className, schema, query, withoutIncrements, ...rest);
  };
}

const PARSE_CODE: Record<number, number> = {
  400: Parse.Error.VALIDATION_ERROR,
  401: Parse.Error.INVALID_SESSION_TOKEN,
  403: Parse.Error.OPERATION_FORBIDDEN,
  404: Parse.Error.OBJECT_NOT_FOUND,
  409: Parse.Error.DUPLICATE_VALUE,
  410: Parse.Error.OBJECT_NOT_FOUND,
  413: Parse.Error.VALIDATION_ERROR,
  429: Parse.Error.REQUEST_LIMIT_EXCEEDED,
};

/** Cloud Functions answer with Parse errors: BatchError keeps its message, anything else is logged and hidden. */
function toParseError(error: unknown, log: Logger, name: string): Parse.Error {
  if (error instanceof BatchError) return new Parse.Error(PARSE_CODE[error.status] ?? Parse.Error.INTERNAL_SERVER_ERROR, error.message);
  if (error instanceof Parse.Error) return error;
  log.error('cloud function failed', { function: name, error, stack: (error as Error).stack });
  return new Parse.Error(Parse.Error.INTERNAL_SERVER_ERROR, 'internal error');
}

type FunctionRequest = Parse.Cloud.FunctionRequest<Record<string, unknown>>;

function actorOf(request: FunctionRequest): Actor {
  return { master: Boolean(request.master), user: request.user, sessionToken: request.user?.getSessionToken() ?? undefined };
}

function requireCount(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, `${name} must be a non-negative integer`);
  return value;
}

function batchIdParam(request: FunctionRequest): string {
  const id = request.params.batch_id;
  if (typeof id !== 'string' || !/^[A-Za-z0-9]{1,64}$/.test(id)) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, 'batch_id must be a batch id');
  return id;
}

function partParam(request: FunctionRequest): number {
  const part = request.params.part ?? 0;
  if (typeof part !== 'number' || !Number.isInteger(part) || part < 0) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, 'part must be a non-negative integer');
  return part;
}

/** The objectId of the row a Dashboard script runs on (a Parse.Object, or its JSON on older settings). */
function selectedBatchId(request: FunctionRequest): string {
  const object = request.params.object as { id?: string; objectId?: string } | undefined;
  const id = object?.id ?? object?.objectId;
  if (typeof id !== 'string') throw new Parse.Error(Parse.Error.VALIDATION_ERROR, 'run this script on a selected BatchMemoryRequest row');
  return id;
}

/**
 * Registers the plugin's triggers and functions on `cloud`, the `Parse.Cloud` Parse Server hands to Cloud
 * Code. Each trigger is composed with any the host registers for the same class and event (triggerGuards.ts).
 */
export function registerCloudCode(cloud: typeof Parse.Cloud, appId: string, service: BatchService, log: Logger, metrics?: BatchMetrics, slots?: ConcurrencySlots): void {
  guardStatusWrites(service.parse.database.adapter);
  const registry = cloud as unknown as CloudRegistry;
  const guard = <R>(event: TriggerEvent, parseClass: unknown, handler: (request: R) => unknown) => guardTrigger(registry, appId, event, parseClass, handler as (request: never) => unknown);
  // Where a user writes is the server's record: a client may not set or clear its own organization, on sign-up or later.
  guard('beforeSave', Parse.User, (request: Parse.Cloud.BeforeSaveRequest) => {
    if (!request.master && request.object.dirtyKeys().includes('organization')) {
      throw new Parse.Error(Parse.Error.OPERATION_FORBIDDEN, '_User.organization is set by the server; the operator adds members to an organization');
    }
  });

  guard('beforeSave', CLASS.batch, async (request: Parse.Cloud.BeforeSaveRequest) => {
    if (!request.master) throw new Parse.Error(Parse.Error.OPERATION_FORBIDDEN, 'BatchMemoryRequest is written by the server only');
    const batch = request.object;
    // The write is checked field by field, with a message for each, before the row can read as a record.
    const fields = unsavedBatchFields(batch);
    for (const key of ['organizationId', 'userId', 'batchFileName'] as const) {
      if (!fields[key]) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, `${batchField(key)} is required`);
    }
    const status = fields.status as BatchStatus;
    if (!BATCH_STATUSES.includes(status)) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, `status must be one of ${BATCH_STATUSES.join(', ')}`);
    const original = request.original && batchRecordOf(request.original);
    const previous = original?.status;
    if (!previous && status !== 'pending' && status !== 'receiving') throw new Parse.Error(Parse.Error.VALIDATION_ERROR, 'a new batch starts as pending, or receiving (processed while uploading)');
    // A fast refusal only: the status may change between this read and the write (guardStatusWrites).
    if (previous && previous !== status && !TRANSITIONS[previous].includes(status)) throw statusRefused(previous, status);
    // What a deletion removes, counted once the batch is `deleting` and its run has ended (a cancelled batch's parts
    // write until its workflow records the end): as it moves to `deleting`, or as the end is recorded while it is.
    // A memory deleted by hand before is not counted.
    const endsNow = batch.dirtyKeys().includes(batchField('completedAt'));
    if (status === 'deleting' && ((previous !== 'deleting' && original?.completedAt) || (endsNow && !original?.completedAt))) {
      batch.set(batchField('deletedMemories'), await new Parse.Query(CLASS.memory).equalTo('batch', batch).count(master));
    }
    const total = requireCount(fields.totalMemories, 'totalMemories');
    const processed = requireCount(fields.processedMemories, 'processedMemories');
    const failed = requireCount(fields.failedMemories, 'failedMemories');
    if (processed + failed > total) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, `processed (${processed}) + failed (${failed}) exceeds totalMemories (${total})`);
    // Counts are final once a batch has finished (finalizeBatch writes them with completedAt): a late
    // increment from a part attempt that outlived its batch is dropped rather than applied.
    if (original?.completedAt && !batch.dirtyKeys().includes(batchField('completedAt'))) {
      for (const key of ['processedMemories', 'failedMemories'] as const) if (batch.dirtyKeys().includes(batchField(key))) batch.set(batchField(key), original[key]);
    }
    if (!request.original && batch.getACL()?.getPublicReadAccess()) throw new Parse.Error(Parse.Error.VALIDATION_ERROR, 'a batch must not be publicly readable');
  });

  guard('afterSave', CLASS.batch, async (request: Parse.Cloud.AfterSaveRequest) => {
    metrics?.observeSave(request.object, request.original);
    const previous = request.original && batchRecordOf(request.original).status;
    await service.syncWorkflow(request.object, previous).catch((error: unknown) => {
      log.error('workflow sync failed', { batchId: request.object.id, error });
    });
  });

  guard('beforeDelete', CLASS.batch, (request: Parse.Cloud.BeforeDeleteRequest) => {
    if (!request.master) throw new Parse.Error(Parse.Error.OPERATION_FORBIDDEN, 'BatchMemoryRequest is deleted by the server only');
  });

  // Batch and result files: only the master key may download them, whoever holds the URL.
  guard('beforeFind', Parse.File, (request: Parse.Cloud.FileTriggerRequest) => {
    const { file } = request;
    if (!request.master && isBatchFileName(file.name())) {
      throw new Parse.Error(Parse.Error.OPERATION_FORBIDDEN, 'batch files can only be read with the master key');
    }
  });

  const define = (name: string, handler: (request: FunctionRequest) => Promise<unknown>) =>
    cloud.define(name, async (request: FunctionRequest) => {
      try {
        return await handler(request);
      } catch (error) {
        throw toParseError(error, log, name);
      }
    });

  /**
   * Runs `work` holding one of the actor's upload slots, the ones the REST route and the MCP door take, so that the
   * Functions are no way around REST_MAX_UPLOADS…; `work` may release it early (once its batch is stored). A request
   * with neither a user nor the master key takes none: it is refused as unauthorized.
   */
  const withUploadSlot = async <T>(actor: Actor, work: (release: () => void) => Promise<T>): Promise<T> => {
    const release = slots && (actor.user || actor.master) ? slots.uploads.take(slotHolder(actor)) : () => undefined;
    try {
      return await work(release);
    } finally {
      release();
    }
  };

  define('addMemoryBatch', async (request) => {
    const actor = actorOf(request);
    // dry_run: validated exactly as a submit, nothing stored or started.
    const { dry_run: dryRun, ...params } = (request.params ?? {}) as Record<string, unknown>;
    return withUploadSlot(actor, async (onStored) => (dryRun === true ? service.dryRun(actor, params) : (await service.submit(actor, request.params, { onStored })).response));
  });
  define('getMemoryBatch', (request) => service.get(actorOf(request), batchIdParam(request)));
  define('listMemoryBatches', async (request) => {
    const { user_id: userId, ...params } = (request.params ?? {}) as Record<string, unknown>;
    return listResponse(await service.list(actorOf(request), parsedOrRefused(batchListQuerySchema, params, 'listing'), typeof userId === 'string' ? userId : undefined));
  });
  define('cancelMemoryBatch', (request) => service.cancel(actorOf(request), batchIdParam(request)));
  define('deleteMemoryBatch', (request) => service.delete(actorOf(request), batchIdParam(request)));
  define('getMemoryBatchData', (request) => service.data(actorOf(request), batchIdParam(request), partParam(request)));
  define('retryMemoryBatch', async (request) => {
    const actor = actorOf(request);
    // A retry stores a new batch's parts: it takes an upload slot as a submit does.
    return withUploadSlot(actor, async () => (await service.retryFailed(actor, batchIdParam(request))).response);
  });

  // Dashboard scripts (Parse Dashboard runs them with the master key on each selected row).
  const defineScript = (name: string, handler: (batchId: string) => Promise<string>) =>
    cloud.define(
      name,
      async (request: FunctionRequest) => {
        try {
          return await handler(selectedBatchId(request));
        } catch (error) {
          throw toParseError(error, log, name);
        }
      },
      { requireMaster: true },
    );
  defineScript('dashboardCancelBatch', async (batchId) => {
    const batch = await service.store.load(batchId, { master: true });
    return (await service.requestCancel(batch)) ? `batch ${batchId} is being cancelled` : `batch ${batchId} has already finished (${batchRecordOf(batch).status})`;
  });
  defineScript('dashboardDeleteBatch', async (batchId) => {
    const { status, deleted_memories: count } = await service.delete({ master: true }, batchId);
    return status === 'deleted' ? `batch ${batchId} was already deleted (${count} memories)` : `batch ${batchId} is being deleted`;
  });
  defineScript('dashboardRetryFailedItems', async (batchId) => {
    const { response } = await service.retryFailed({ master: true }, batchId);
    return `batch ${response.batch_id} retries ${response.total} items of batch ${batchId}`;
  });
}
