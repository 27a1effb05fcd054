/**
 * The bulk write path on MongoDB (cloud/bulkWriter.ts dispatches here): a request's objects go in as one
 * unordered insertMany, each stored exactly as Parse Server's MongoDB adapter stores an object it creates
 * (its own transform). Unordered, so that one refused object stops none of the others: a duplicate of a
 * unique key (batchItem of a memory, key of a chunk row: written by an earlier attempt of the same write)
 * answers DUPLICATE_ANSWER for that object, which the worker takes as already written. The driver's count of
 * inserted documents is checked against what was sent (FerretDB has acknowledged none of a batch holding one
 * document it could not store, without an error).
 */
import { type CreateAnswer, DUPLICATE_ANSWER, storeRefused } from '../storage/batchStorage';

// Plain CommonJS modules of Parse Server without type declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const { parseObjectToMongoObjectForCreate } = require('parse-server/lib/Adapters/Storage/Mongo/MongoTransform') as {
  parseObjectToMongoObjectForCreate(className: string, object: Record<string, unknown>, schema: unknown): Record<string, unknown>;
};
const { convertSchemaToAdapterSchema } = require('parse-server/lib/Controllers/SchemaController') as { convertSchemaToAdapterSchema(schema: unknown): { fields: Record<string, unknown> } };
const Utils = require('parse-server/lib/Utils') as { checkProhibitedKeywords(options: unknown, data: unknown): void };
/* eslint-enable @typescript-eslint/no-require-imports */

const DUPLICATE_KEY = 11000;
const INVALID_KEY_NAME = 105;

/** The driver's collection, as MongoStorageAdapter's collection wrapper holds it. */
interface MongoCollection {
  insertMany(documents: Record<string, unknown>[], options: { ordered: false }): Promise<{ insertedCount: number }>;
  find(filter: Record<string, unknown>, options: { projection: Record<string, 1> }): { toArray(): Promise<{ _id: unknown }[]> };
}
export interface MongoStorageAdapter {
  _adaptiveCollection(className: string): Promise<{ _mongoCollection: MongoCollection }>;
}
/** The parts of Parse Server's database controller this path reads: the class's schema, and its options. */
interface ParseDatabase {
  options?: unknown;
  loadSchema(): Promise<{ getOneSchema(className: string, allowVolatileClasses?: boolean): Promise<unknown> }>;
}
/** One document the database refused, as the driver reports it. */
interface WriteError {
  index: number;
  code: number;
  errmsg?: string;
}
/** What the driver throws when some documents of an insertMany were refused. */
interface BulkWriteError {
  writeErrors?: WriteError[] | WriteError;
}

/** Whether the database controller stores through Parse Server's MongoDB adapter. */
export function isMongoAdapter(adapter: object): adapter is MongoStorageAdapter {
  return typeof (adapter as Partial<MongoStorageAdapter>)._adaptiveCollection === 'function';
}

/** The database's reason for refusing a document, without what it quotes of the document after a colon. */
function refusalReason({ code, errmsg }: WriteError): string {
  return `the database refused the memory: ${(errmsg ?? 'refused').replace(/:\s*["{[].*$/s, '')} (code ${code})`;
}

const unacknowledged = storeRefused('the database did not acknowledge the write of the memory');

/**
 * One unordered insertMany; an answer per document: stored, a duplicate (written before), refused (a write
 * error of its own), or undefined: neither acknowledged nor refused.
 */
async function insertDocuments(collection: MongoCollection, documents: Record<string, unknown>[]): Promise<(CreateAnswer | undefined)[]> {
  const answers: (CreateAnswer | undefined)[] = documents.map((document) => ({ success: { objectId: document._id as string } }));
  let acknowledged: number;
  try {
    acknowledged = (await collection.insertMany(documents, { ordered: false })).insertedCount;
  } catch (error) {
    const writeErrors = (error as BulkWriteError).writeErrors;
    if (!writeErrors) throw error;
    const refusals = Array.isArray(writeErrors) ? writeErrors : [writeErrors];
    for (const refusal of refusals) answers[refusal.index] = refusal.code === DUPLICATE_KEY ? DUPLICATE_ANSWER : storeRefused(refusalReason(refusal));
    acknowledged = ((error as { result?: { insertedCount?: number } }).result?.insertedCount ?? 0) + refusals.length;
  }
  if (acknowledged >= documents.length) return answers;
  // Fewer acknowledged than sent, with no error for the rest: only what the database holds counts as stored.
  const claimed = documents.filter((_, k) => 'success' in (answers[k] as CreateAnswer)).map((document) => document._id);
  const present = new Set((await collection.find({ _id: { $in: claimed } }, { projection: { _id: 1 } }).toArray()).map(({ _id }) => _id));
  return answers.map((answer, k) => (answer && 'success' in answer && !present.has(documents[k]._id) ? undefined : answer));
}

/**
 * Inserts the objects (each complete: objectId, createdAt, updatedAt set, and its ACL as _rperm/_wperm)
 * with one insertMany; one answer per object. An object the database refuses (a write error of its own)
 * answers STORE_REFUSED_CODE with the database's reason; the others are stored. An object the database neither
 * stored nor refused is sent once more alone, and answers STORE_REFUSED_CODE if it is still not stored:
 * nothing counts as written unless the database holds it.
 */
export async function insertMongoObjects(database: ParseDatabase, adapter: MongoStorageAdapter, className: string, objects: Record<string, unknown>[]): Promise<CreateAnswer[]> {
  const { fields, ...schema } = convertSchemaToAdapterSchema(await (await database.loadSchema()).getOneSchema(className, true));
  // As MongoStorageAdapter.createObject: the ACL lives in _rperm/_wperm, which its schema leaves out.
  const mongoSchema = { ...schema, fields: Object.fromEntries(Object.entries(fields).filter(([name]) => name !== '_rperm' && name !== '_wperm')) };
  const answers: (CreateAnswer | undefined)[] = objects.map(() => undefined);
  const documents: Record<string, unknown>[] = [];
  const positions: number[] = [];
  objects.forEach((object, position) => {
    // The database controller's own refusal of Parse Server's denied keywords (the BSON one matters here).
    try {
      Utils.checkProhibitedKeywords(database.options, object);
    } catch (refusal) {
      answers[position] = { error: { code: INVALID_KEY_NAME, error: String(refusal) } };
      return;
    }
    documents.push(parseObjectToMongoObjectForCreate(className, object, mongoSchema));
    positions.push(position);
  });
  if (documents.length > 0) {
    const { _mongoCollection: collection } = await adapter._adaptiveCollection(className);
    const inserted = await insertDocuments(collection, documents);
    for (const [k, answer] of inserted.entries()) {
      answers[positions[k]] = answer ?? (await insertDocuments(collection, [documents[k]]))[0] ?? unacknowledged;
    }
  }
  return answers as CreateAnswer[];
}
