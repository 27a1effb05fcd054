/**
 * The rows the product reads, as zod shapes, and the one place they are read from a Parse object. Every
 * other module takes a record from here instead of `object.get('field')` with a cast, so that a renamed
 * or mistyped field fails at the reader, naming the class, the row and the field, not somewhere later.
 * Each reader's column table names the Parse fields it reads (checked against `classDefinitions`).
 */
import Parse from './parseSdk';
import { z } from 'zod';
import { CLASS } from './classes';
import { batchStatusSchema, itemErrorCodeSchema } from './memory';

const count = z.number().int().nonnegative();

/** How a Parse field becomes a record value: as stored, the id of a pointer, or the name of a file. */
type ColumnKind = 'value' | 'pointer' | 'file';
type Columns = Record<string, readonly [field: string, kind: ColumnKind]>;

/**
 * A BatchMemoryRequest row. Pointers are read as ids, files as their stored names. The fields of
 * BATCH_PROTECTED_FIELDS and BATCH_OWNER_FIELDS are optional: a row read with a session token lacks them.
 */
export const batchRecordSchema = z.object({
  id: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  organizationId: z.string(),
  userId: z.string(),
  workspaceId: z.string().optional(),
  namespaceId: z.string().optional(),
  /** The stored name of the first part file. Like every protected field, absent from a row a user read with a session token. */
  batchFileName: z.string().optional(),
  partsKey: z.string().optional(),
  partCount: count.optional(),
  status: batchStatusSchema,
  error: z.string().optional(),
  totalMemories: count,
  processedMemories: count.default(0),
  failedMemories: count.default(0),
  /** The stored name of the per-item results file, once the batch has ended (until its files expire). */
  resultsFileName: z.string().optional(),
  /** The results files after the first, in order, when the results exceed one file (PARSE_MAX_UPLOAD_SIZE). */
  resultsPartNames: z.array(z.string()).optional(),
  workflowId: z.string().optional(),
  idempotencyKey: z.string().optional(),
  requestHash: z.string().optional(),
  webhookUrl: z.string().optional(),
  webhookSecret: z.string().optional(),
  /** The batch's own metadata; like webhookUrl, absent from a row read by anyone but its owner. */
  metadata: z.record(z.string(), z.unknown()).optional(),
  rawBytes: count.optional(),
  storedBytes: count.optional(),
  startedAt: z.date().optional(),
  completedAt: z.date().optional(),
  expiresAt: z.date().optional(),
  filesExpiredAt: z.date().optional(),
  /** Set as the batch moves to `deleting`: how many memories of the batch there were to remove (one deleted by hand is not counted). */
  deletedMemories: count.optional(),
  /** When the memories and files of a deleted batch were all removed. */
  deletedAt: z.date().optional(),
  /** The batch whose unstored items this one retries. */
  retryOfId: z.string().optional(),
  webhookStatus: z.enum(['pending', 'retrying', 'delivered', 'failed']).optional(),
  webhookAttempts: count.optional(),
  webhookDeliveredAt: z.date().optional(),
  webhookError: z.string().optional(),
});
export type BatchRecord = z.infer<typeof batchRecordSchema>;

const BATCH_COLUMNS = {
  organizationId: ['organization', 'pointer'],
  userId: ['user', 'pointer'],
  workspaceId: ['workspace', 'pointer'],
  namespaceId: ['namespace', 'pointer'],
  batchFileName: ['batchFile', 'file'],
  partsKey: ['partsKey', 'value'],
  partCount: ['partCount', 'value'],
  status: ['status', 'value'],
  error: ['error', 'value'],
  totalMemories: ['totalMemories', 'value'],
  processedMemories: ['processedMemories', 'value'],
  failedMemories: ['failedMemories', 'value'],
  resultsFileName: ['resultsFile', 'file'],
  resultsPartNames: ['resultsParts', 'value'],
  workflowId: ['workflowId', 'value'],
  idempotencyKey: ['idempotencyKey', 'value'],
  requestHash: ['requestHash', 'value'],
  webhookUrl: ['webhookUrl', 'value'],
  metadata: ['metadata', 'value'],
  webhookSecret: ['webhookSecret', 'value'],
  rawBytes: ['rawBytes', 'value'],
  storedBytes: ['storedBytes', 'value'],
  startedAt: ['startedAt', 'value'],
  completedAt: ['completedAt', 'value'],
  expiresAt: ['expiresAt', 'value'],
  filesExpiredAt: ['filesExpiredAt', 'value'],
  deletedMemories: ['deletedMemories', 'value'],
  deletedAt: ['deletedAt', 'value'],
  retryOfId: ['retryOf', 'pointer'],
  webhookStatus: ['webhookStatus', 'value'],
  webhookAttempts: ['webhookAttempts', 'value'],
  webhookDeliveredAt: ['webhookDeliveredAt', 'value'],
  webhookError: ['webhookError', 'value'],
} as const satisfies Record<Exclude<keyof BatchRecord, 'id' | 'createdAt' | 'updatedAt'>, readonly [string, ColumnKind]>;

/** The stored names of a finished batch's results files, in order: read one after another, they are its results. */
export function resultsFileNames(batch: Pick<BatchRecord, 'resultsFileName' | 'resultsPartNames'>): string[] {
  return batch.resultsFileName ? [batch.resultsFileName, ...(batch.resultsPartNames ?? [])] : [];
}

/** One stored part of a batch (a BatchMemoryPart row). */
export const partRecordSchema = z.object({
  /** Parse file name as stored (with Parse's random prefix). */
  name: z.string(),
  /** Index of the part's first memory in the batch. */
  first: count,
  count,
  rawBytes: count,
  storedBytes: count,
});
export type StoredPart = z.infer<typeof partRecordSchema>;

const PART_COLUMNS = {
  name: ['name', 'value'],
  first: ['first', 'value'],
  count: ['count', 'value'],
  rawBytes: ['rawBytes', 'value'],
  storedBytes: ['storedBytes', 'value'],
} as const satisfies Record<keyof StoredPart, readonly [string, ColumnKind]>;

/**
 * One memory's result in a chunk row: its index, and its memory id or its error (`c`: the error's code); `k` its
 * custom_id and `o` its index in the batch it was first sent in (a retry's), when it has them.
 */
export const chunkResultSchema = z.object({
  i: count,
  id: z.string().optional(),
  e: z.string().optional(),
  c: itemErrorCodeSchema.optional(),
  k: z.string().optional(),
  o: count.optional(),
});
export type ChunkResult = z.infer<typeof chunkResultSchema>;

/** A finished chunk as recorded in BatchMemoryChunk (the fields the product reads back). */
export const chunkRowSchema = z.object({ first: count, processed: count, failed: count, results: z.array(chunkResultSchema) });
export type ChunkRow = z.infer<typeof chunkRowSchema>;

const CHUNK_COLUMNS = {
  first: ['first', 'value'],
  processed: ['processed', 'value'],
  failed: ['failed', 'value'],
  results: ['results', 'value'],
} as const satisfies Record<keyof ChunkRow, readonly [string, ColumnKind]>;
/** The fields a query of chunk rows selects. */
export const CHUNK_ROW_FIELDS = Object.values(CHUNK_COLUMNS).map(([field]) => field);

/** A stored memory as the worker looks it up again: its id and its unique `batchItem` key. */
export const memoryKeySchema = z.object({ id: z.string(), batchItem: z.string() });
export type MemoryKey = z.infer<typeof memoryKeySchema>;
const MEMORY_KEY_COLUMNS = { batchItem: ['batchItem', 'value'] } as const satisfies Record<Exclude<keyof MemoryKey, 'id'>, readonly [string, ColumnKind]>;

/** Who belongs to an organization, by the server's record: its owner (a personal organization) and its role. */
export const organizationRecordSchema = z.object({ id: z.string(), ownerId: z.string().optional(), roleId: z.string().optional() });
export type OrganizationRecord = z.infer<typeof organizationRecordSchema>;
const ORGANIZATION_COLUMNS = { ownerId: ['owner', 'pointer'], roleId: ['role', 'pointer'] } as const satisfies Record<Exclude<keyof OrganizationRecord, 'id'>, readonly [string, ColumnKind]>;

/** The organization a user writes into (`_User.organization`), as the server or the operator set it. */
export const userOrganizationSchema = z.object({ organizationId: z.string().optional() });
const USER_ORGANIZATION_COLUMNS = { organizationId: ['organization', 'pointer'] } as const satisfies Record<keyof z.infer<typeof userOrganizationSchema>, readonly [string, ColumnKind]>;

/** Every column table, by class: what `classDefinitions` must define. */
export const RECORD_COLUMNS: Record<string, Columns> = {
  [CLASS.batch]: BATCH_COLUMNS,
  [CLASS.part]: PART_COLUMNS,
  [CLASS.chunk]: CHUNK_COLUMNS,
  [CLASS.memory]: MEMORY_KEY_COLUMNS,
  [CLASS.organization]: ORGANIZATION_COLUMNS,
  _User: USER_ORGANIZATION_COLUMNS,
};

function columnValue(value: unknown, kind: ColumnKind): unknown {
  if (value === null || value === undefined) return undefined;
  if (kind === 'pointer') return (value as { id?: unknown }).id;
  if (kind === 'file') return value instanceof Parse.File ? value.name() : value;
  return value;
}

function readColumns(object: Parse.Object, columns: Columns): Record<string, unknown> {
  return Object.fromEntries(Object.entries(columns).map(([key, [field, kind]]) => [key, columnValue(object.get(field), kind)]));
}

function read<T extends z.ZodType>(schema: T, object: Parse.Object, columns: Columns, saved: Record<string, unknown> = {}): z.output<T> {
  const parsed = schema.safeParse({ ...saved, ...readColumns(object, columns) });
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'row'}: ${issue.message}`).join('; ');
  throw new Error(`${object.className} ${object.id ?? '(unsaved)'} does not read as a record: ${problems}`);
}

/** A saved BatchMemoryRequest as a BatchRecord. */
export function batchRecordOf(object: Parse.Object): BatchRecord {
  return read(batchRecordSchema, object, BATCH_COLUMNS, { id: object.id, createdAt: object.createdAt, updatedAt: object.updatedAt });
}

/**
 * The stored values of a BatchMemoryRequest being written, by record field, unchecked: for the trigger
 * that validates a write (it names each bad field itself) before the row can read as a record.
 */
export function unsavedBatchFields(object: Parse.Object): { [K in keyof typeof BATCH_COLUMNS]?: unknown } {
  return readColumns(object, BATCH_COLUMNS);
}

/** The Parse field a BatchRecord field is stored in (for writes that name fields, such as a trigger's). */
export function batchField(key: keyof typeof BATCH_COLUMNS): string {
  return BATCH_COLUMNS[key][0];
}

export function partRecordOf(object: Parse.Object): StoredPart {
  return read(partRecordSchema, object, PART_COLUMNS);
}

export function chunkRowOf(object: Parse.Object): ChunkRow {
  return read(chunkRowSchema, object, CHUNK_COLUMNS);
}

export function memoryKeyOf(object: Parse.Object): MemoryKey {
  return read(memoryKeySchema, object, MEMORY_KEY_COLUMNS, { id: object.id });
}

export function organizationRecordOf(object: Parse.Object): OrganizationRecord {
  return read(organizationRecordSchema, object, ORGANIZATION_COLUMNS, { id: object.id });
}

/** The id of the organization a stored user points to, if any. */
export function userOrganizationIdOf(user: Parse.User): string | undefined {
  return read(userOrganizationSchema, user, USER_ORGANIZATION_COLUMNS).organizationId;
}
