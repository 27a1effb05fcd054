/**
 * Bulk creates for the worker, inside Parse Server: the same schema, storage adapter and unique keys as
 * a REST create, without a full REST write per object (auth, trigger lookup, response building), which
 * made Parse Server's CPU the bottleneck of a batch. On PostgreSQL a request's objects go in as one
 * multi-row INSERT, with values stored exactly as Parse Server's own adapter stores them; on MongoDB as
 * one unordered insertMany (cloud/mongoBulkWriter.ts); elsewhere through the database controller, object
 * by object. Only classes without Cloud Code triggers are allowed: per-item logic belongs in the memory processor.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import Parse from '../schema/parseSdk';
import { BULK_CLASSES, MAX_DELETE_ROWS, bulkCreateBody, bulkDeleteQuery } from '../schema/batchFile';
import { CLASS } from '../schema/classes';
import { type CreateAnswer, DUPLICATE_ANSWER, storeRefused } from '../storage/batchStorage';
import type { RouteAuthentication } from './auth';
import { BatchError } from './errors';
import { sendError } from './httpErrors';
import { insertMongoObjects, isMongoAdapter } from './mongoBulkWriter';

/** Parse Server's objectIds: 10 characters of this alphabet (cryptoUtils.newObjectId). */
const OBJECT_ID_CHARACTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const OBJECT_ID_LENGTH = 10;

/**
 * `count` objectIds like Parse Server's own, from one draw of random bytes: one draw per object (as
 * newObjectId does) cost 5 % of Parse Server's CPU in a profile of 100,000 memories.
 */
function newObjectIds(count: number): string[] {
  const bytes = randomBytes(count * OBJECT_ID_LENGTH);
  const ids: string[] = [];
  for (let start = 0; start < bytes.length; start += OBJECT_ID_LENGTH) {
    let id = '';
    for (let k = start; k < start + OBJECT_ID_LENGTH; k++) id += OBJECT_ID_CHARACTERS[bytes[k] % OBJECT_ID_CHARACTERS.length];
    ids.push(id);
  }
  return ids;
}

/** PostgreSQL allows 65,535 parameters in one statement. */
const MAX_PARAMETERS = 65_535;

type ParseObjectBody = Record<string, unknown>;

/** The parts of Parse Server's database controller (not in its typed API) that the plugin uses. */
export interface ParseDatabase {
  adapter: StorageAdapter;
  loadSchema(): Promise<SchemaController>;
  create(className: string, object: ParseObjectBody): Promise<unknown>;
  find(className: string, query: ParseObjectBody, options: { limit?: number; keys?: string[] }): Promise<ParseObjectBody[]>;
  /** Deletes every object the query matches; OBJECT_NOT_FOUND when it matched none. */
  destroy(className: string, query: ParseObjectBody): Promise<unknown>;
}
export interface StorageAdapter {
  ensureUniqueness(className: string, schema: unknown, fieldNames: string[]): Promise<void>;
  /** Updates the one object the query (Parse's query format) matches; answers it as stored after, or nothing when none matched. */
  findOneAndUpdate(className: string, schema: unknown, query: ParseObjectBody, update: ParseObjectBody, ...rest: unknown[]): Promise<ParseObjectBody | null | undefined>;
  find(className: string, schema: unknown, query: ParseObjectBody, options: { limit?: number }): Promise<ParseObjectBody[]>;
  /** Set on PostgresStorageAdapter: its pg-promise database and library. */
  _client?: { any(query: unknown): Promise<{ objectId: string }[]> };
  _pgp?: { ParameterizedQuery: new (query: { text: string; values: unknown[] }) => unknown };
}
interface SchemaController {
  getOneSchema(className: string, allowVolatileClasses?: boolean): Promise<{ fields: Record<string, { type: string }> }>;
}

/** Parse's ACL object as the `_rperm`/`_wperm` columns, as the database controller turns it. */
function permissionColumns(acl: Record<string, { read?: boolean; write?: boolean }>): { _rperm: string[]; _wperm: string[] } {
  const entries = Object.entries(acl);
  return { _rperm: entries.filter(([, p]) => p.read).map(([who]) => who), _wperm: entries.filter(([, p]) => p.write).map(([who]) => who) };
}

/**
 * One object's column values, as PostgresStorageAdapter.createObject stores them; undefined for a field
 * type it stores otherwise (the caller then writes object by object).
 */
function postgresRow(object: ParseObjectBody, fields: Record<string, { type: string }>): ParseObjectBody | undefined {
  const row: ParseObjectBody = {};
  for (const [name, value] of Object.entries(object)) {
    if (value === null || value === undefined) continue;
    if (name === 'ACL') {
      Object.assign(row, permissionColumns(value as Record<string, { read?: boolean; write?: boolean }>));
      continue;
    }
    switch (fields[name]?.type) {
      case 'String':
      case 'Number':
      case 'Boolean':
      case 'Object':
        row[name] = value;
        break;
      case 'Date':
        row[name] = typeof value === 'string' ? value : (value as { iso: string }).iso;
        break;
      case 'Pointer':
        row[name] = (value as { objectId: string }).objectId;
        break;
      case 'Array':
        row[name] = JSON.stringify(value);
        break;
      default:
        return undefined;
    }
  }
  return row;
}

/** What a statement's failure says about the rows, read from PostgreSQL's error. */
interface PostgresError {
  code?: string;
  message: string;
  constraint?: string;
}

/**
 * Whether PostgreSQL refused the rows' data rather than failing as a server: data exceptions (class 22), integrity
 * violations (23) other than a unique key (the row is already written: ON CONFLICT answers that), program limits
 * such as an index row too large (54), and an exception a trigger raised (P0). Trying the same row again gives
 * the same answer; anything else (a lost connection, a serialization failure, a timeout) is worth a retry.
 */
export function isDataRefusal(error: unknown): boolean {
  const code = (error as PostgresError | undefined)?.code;
  return typeof code === 'string' && /^(22|23|54|P0)/.test(code) && code !== '23505';
}

/**
 * The database's reason, without the refused value: PostgreSQL's message with whatever it quotes after a colon
 * cut off (`invalid input syntax for type json: "…"`), its SQLSTATE and constraint. Its detail, which holds the
 * row, is left out: the reason is readable by the batch's organization.
 */
export function refusalReason(error: PostgresError): string {
  const message = error.message.replace(/:\s*".*$/s, '');
  return `the database refused the memory: ${message} (SQLSTATE ${error.code}${error.constraint ? `, constraint ${error.constraint}` : ''})`;
}

/** One multi-row INSERT … ON CONFLICT DO NOTHING; answers the objectIds it stored. */
async function insertStatement(adapter: Required<Pick<StorageAdapter, '_client' | '_pgp'>>, className: string, fields: Record<string, { type: string }>, rows: ParseObjectBody[]): Promise<string[]> {
  const names = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cast = (name: string) => (name === '_rperm' || name === '_wperm' ? '::text[]' : fields[name]?.type === 'Array' ? '::jsonb' : '');
  const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const values: unknown[] = [];
  const tuples = rows.map((row) => `(${names.map((name) => `$${values.push(row[name] ?? null)}${cast(name)}`).join(',')})`);
  const text = `INSERT INTO ${quoted(className)} (${names.map(quoted).join(',')}) VALUES ${tuples.join(',')} ON CONFLICT DO NOTHING RETURNING "objectId"`;
  return (await adapter._client.any(new adapter._pgp.ParameterizedQuery({ text, values }))).map(({ objectId }) => objectId);
}

/**
 * INSERT … ON CONFLICT DO NOTHING of every row, as few statements as PostgreSQL's parameter limit allows;
 * a row a unique key refused answers DUPLICATE_ANSWER. A statement is one write: one row whose data the database
 * refuses fails it whole, so a refused statement is split in halves until each refused row stands alone, which
 * answers storeRefused with the database's reason; every other row is stored. Parameters, not formatted
 * SQL: nothing is escaped here.
 */
async function insertPostgresRows(
  adapter: Required<Pick<StorageAdapter, '_client' | '_pgp'>>,
  className: string,
  fields: Record<string, { type: string }>,
  rows: ParseObjectBody[],
): Promise<CreateAnswer[]> {
  const columns = new Set(rows.flatMap((row) => Object.keys(row))).size;
  const rowsPerStatement = Math.floor(MAX_PARAMETERS / columns);
  const stored = new Set<string>();
  const refused = new Map<string, CreateAnswer>();
  const insert = async (group: ParseObjectBody[]): Promise<void> => {
    try {
      for (const objectId of await insertStatement(adapter, className, fields, group)) stored.add(objectId);
    } catch (error) {
      if (!isDataRefusal(error)) throw error;
      if (group.length === 1) {
        refused.set(group[0].objectId as string, storeRefused(refusalReason(error as PostgresError)));
        return;
      }
      const half = Math.ceil(group.length / 2);
      await insert(group.slice(0, half));
      await insert(group.slice(half));
    }
  };
  for (let start = 0; start < rows.length; start += rowsPerStatement) await insert(rows.slice(start, start + rowsPerStatement));
  return rows.map((row) => {
    const objectId = row.objectId as string;
    return stored.has(objectId) ? { success: { objectId } } : (refused.get(objectId) ?? DUPLICATE_ANSWER);
  });
}

/**
 * Creates the objects, each with the `shared` fields, one answer each: a Parse error (a duplicate key, a bad
 * value) answers for its object.
 */
export async function createObjects(database: ParseDatabase, className: string, objects: ParseObjectBody[], shared: ParseObjectBody = {}): Promise<CreateAnswer[]> {
  const now = new Date().toISOString();
  const ids = newObjectIds(objects.length);
  const complete = objects.map((object, k) => ({ ...shared, ...object, objectId: ids[k], createdAt: now, updatedAt: now }));
  if (isMongoAdapter(database.adapter) && complete.length > 0) {
    const withPermissions = complete.map((object: ParseObjectBody) => {
      const { ACL, ...rest } = object;
      return ACL ? { ...rest, ...permissionColumns(ACL as Record<string, { read?: boolean; write?: boolean }>) } : rest;
    });
    return insertMongoObjects(database, database.adapter, className, withPermissions);
  }
  const { _client, _pgp } = database.adapter;
  if (_client && _pgp && complete.length > 0) {
    const { fields } = await (await database.loadSchema()).getOneSchema(className, true);
    const rows = complete.map((object) => postgresRow(object, fields));
    if (rows.every((row) => row !== undefined)) return insertPostgresRows({ _client, _pgp }, className, fields, rows as ParseObjectBody[]);
  }
  // The database controller also refuses Parse Server's denied request keywords (on PostgreSQL, submit-time
  // validation has refused the prototype keys; the BSON one matters to MongoDB only).
  return Promise.all(complete.map((object) => createOne(database, className, object)));
}

async function createOne(database: ParseDatabase, className: string, object: ParseObjectBody): Promise<CreateAnswer> {
  try {
    await database.create(className, object);
    return { success: { objectId: object.objectId as string } };
  } catch (error) {
    const { code, message } = error as { code?: unknown; message: string };
    if (typeof code !== 'number') throw error;
    return { error: { code, error: message } };
  }
}

/**
 * Deletes up to `limit` rows of `className` whose `batch` points to the batch, through the database controller (one
 * find, one delete by id); answers how many rows it found, 0 once none is left. A row deleted meanwhile is not an error.
 */
export async function deleteBatchRows(database: ParseDatabase, className: string, batchId: string, limit: number): Promise<number> {
  const rows = await database.find(className, { batch: { __type: 'Pointer', className: CLASS.batch, objectId: batchId } }, { limit, keys: ['objectId'] });
  if (rows.length === 0) return 0;
  // One statement a page. (FerretDB 1.x filters in its database on equalities only, so there the delete by `$in` reads
  // every row of the class: a small BATCH_DELETE_PAGE_SIZE costs it that many times over. Deleting by id instead was
  // slower still at the default page size: 20,000 memories did not go within 120 s.)
  await database.destroy(className, { objectId: { $in: rows.map((row) => row.objectId) } }).catch((error: unknown) => {
    if ((error as { code?: number }).code !== Parse.Error.OBJECT_NOT_FOUND) throw error;
  });
  return rows.length;
}

/**
 * Mounted at BULK_WRITE_PATH, next to the REST route: `POST …/:className { objects }`, master key only.
 * `parse.database` is read per request: the route is built before Parse Server has started.
 */
export function bulkWriteRoute(parse: { database: ParseDatabase }, authentication: RouteAuthentication): express.Router {
  const router = express.Router();
  // The key and its address are checked before the body is read: a refused request costs no parsing,
  // and its connection closes after the answer instead of reading the rest.
  const masterOnly: express.RequestHandler = (req, res, next) => {
    if (authentication.masterKeyAccepted(req, res)) next();
  };
  router.post('/:className', masterOnly, express.json({ limit: '64mb' }), (req, res, next) => {
    const className = String(req.params.className);
    const body = bulkCreateBody.safeParse(req.body);
    if (!(BULK_CLASSES as readonly string[]).includes(className) || !body.success) {
      sendError(res, new BatchError(400, 'invalid_request', `objects must be an array of objects, shared an object, for one of ${BULK_CLASSES.join(', ')}`));
      return;
    }
    createObjects(parse.database, className, body.data.objects, body.data.shared)
      .then((answers) => res.json(answers))
      .catch(next);
  });
  // `DELETE …/:className?batch=<id>&limit=<n>`: a page of a deleted batch's rows (memories, chunk rows).
  router.delete('/:className', masterOnly, (req, res, next) => {
    const className = String(req.params.className);
    const query = bulkDeleteQuery.safeParse(req.query);
    if (!(BULK_CLASSES as readonly string[]).includes(className) || !query.success) {
      sendError(res, new BatchError(400, 'invalid_request', `batch must be a batch id and limit an integer from 1 to ${MAX_DELETE_ROWS}, for one of ${BULK_CLASSES.join(', ')}`));
      return;
    }
    deleteBatchRows(parse.database, className, query.data.batch, query.data.limit)
      .then((deleted) => res.json({ deleted }))
      .catch(next);
  });
  return router;
}
