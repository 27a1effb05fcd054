/**
 * The bulk write path on MongoDB (cloud/bulkWriter.ts dispatches here): a request's objects go in as one
 * unordered insertMany, each stored exactly as Parse Server's MongoDB adapter stores an object it creates
 * (its own transform). Unordered, so that one refused object stops none of the others: a duplicate of a
 * unique key (batchItem of a memory, key of a chunk row: written by an earlier attempt of the same write)
 * answers DUPLICATE_VALUE for that object, which the worker takes as already written.
 */
import type { CreateAnswer } from '../storage/batchStorage';

// Plain CommonJS modules of Parse Server without type declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const { parseObjectToMongoObjectForCreate } = require('parse-server/lib/Adapters/Storage/Mongo/MongoTransform') as {
  parseObjectToMongoObjectForCreate(className: string, object: Record<string, unknown>, schema: unknown): Record<string, unknown>;
};
const { convertSchemaToAdapterSchema } = require('parse-server/lib/Controllers/SchemaController') as { convertSchemaToAdapterSchema(schema: unknown): { fields: Record<string, unknown> } };
const Utils = require('parse-server/lib/Utils') as { checkProhibitedKeywords(options: unknown, data: unknown): void };
/* eslint-enable @typescript-eslint/no-require-imports */

const DUPLICATE_KEY = 11000;
const DUPLICATE_VALUE = 137;
const INVALID_KEY_NAME = 105;

/** The driver's collection, as MongoStorageAdapter's collection wrapper holds it. */
interface MongoCollection {
  insertMany(documents: Record<string, unknown>[], options: { ordered: false }): Promise<unknown>;
}
export interface MongoStorageAdapter {
  _adaptiveCollection(className: string): Promise<{ _mongoCollection: MongoCollection }>;
}
/** The parts of Parse Server's database controller this path reads: the class's schema, and its options. */
interface ParseDatabase {
  options?: unknown;
  loadSchema(): Promise<{ getOneSchema(className: string, allowVolatileClasses?: boolean): Promise<unknown> }>;
}
/** What the driver throws when some documents of an insertMany were refused. */
interface BulkWriteError {
  writeErrors?: { index: number; code: number; errmsg?: string }[] | { index: number; code: number; errmsg?: string };
}

/** Whether the database controller stores through Parse Server's MongoDB adapter. */
export function isMongoAdapter(adapter: object): adapter is MongoStorageAdapter {
  return typeof (adapter as Partial<MongoStorageAdapter>)._adaptiveCollection === 'function';
}

/**
 * Inserts the objects (each complete: objectId, createdAt, updatedAt set, and its ACL as _rperm/_wperm)
 * with one insertMany; one answer per object. A refusal other than a duplicate key fails the whole write
 * (the worker retries it; what went in answers as duplicates then).
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
  const refused = new Set<number>();
  if (documents.length > 0) {
    const { _mongoCollection: collection } = await adapter._adaptiveCollection(className);
    try {
      await collection.insertMany(documents, { ordered: false });
    } catch (error) {
      const writeErrors = (error as BulkWriteError).writeErrors;
      if (!writeErrors) throw error;
      for (const { index, code, errmsg } of Array.isArray(writeErrors) ? writeErrors : [writeErrors]) {
        if (code !== DUPLICATE_KEY) throw new Error(`insert of ${className} refused an object: ${code} ${errmsg ?? ''}`, { cause: error });
        refused.add(index);
      }
    }
  }
  positions.forEach((position, index) => {
    answers[position] = refused.has(index)
      ? { error: { code: DUPLICATE_VALUE, error: 'A duplicate value for a field with unique values was provided' } }
      : { success: { objectId: objects[position].objectId as string } };
  });
  return answers as CreateAnswer[];
}
