/**
 * What the same memories cost without the product: Parse.Object.saveAll against the same Parse Server
 * (what an application would write by hand), multi-row INSERTs straight into PostgreSQL (the floor of a
 * client writing rows), and COPY … FROM STDIN (the physical floor: PostgreSQL's own bulk load).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Parse from 'parse/node';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { TestStackInfo } from '../test/support/stackInfo';
import { memoriesFrom, since } from './measure';

export const SAVE_ALL_OBJECTS = 100;
export const INSERT_ROWS = 1000;
export const COPY_ROWS_PER_WRITE = 1000;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const FLOOR_TABLE = 'bench_memory_floor';
const FLOOR_COLUMNS = '(id text PRIMARY KEY, content text NOT NULL, metadata jsonb)';

/** Memories per second of `Parse.Object.saveAll` in batches of 100 objects, one batch after another, with the master key. */
export async function saveAllRate(info: TestStackInfo, ownerId: string, count: number): Promise<number> {
  Parse.initialize(info.appId, undefined, info.masterKey);
  Parse.serverURL = info.serverURL;
  const owner = Parse.User.createWithoutData(ownerId);
  const started = performance.now();
  for (let first = 0; first < count; first += SAVE_ALL_OBJECTS) {
    const objects = memoriesFrom(first, Math.min(SAVE_ALL_OBJECTS, count - first)).map((memory) => {
      const object = new Parse.Object('Memory');
      const acl = new Parse.ACL();
      acl.setReadAccess(ownerId, true);
      object.set({ content: memory.content, metadata: memory.metadata, user: owner });
      object.setACL(acl);
      return object;
    });
    await Parse.Object.saveAll(objects, { useMasterKey: true, batchSize: SAVE_ALL_OBJECTS });
  }
  return count / (since(started) / 1000);
}

/** Memories per second of INSERTs of 1,000 rows each into a fresh table with the columns of a memory's payload. */
export async function postgresFloorRate(databaseURI: string, count: number): Promise<number> {
  const db = new pg.Client({ connectionString: databaseURI });
  await db.connect();
  try {
    await db.query(`DROP TABLE IF EXISTS ${FLOOR_TABLE}`);
    await db.query(`CREATE TABLE ${FLOOR_TABLE} ${FLOOR_COLUMNS}`);
    const started = performance.now();
    for (let first = 0; first < count; first += INSERT_ROWS) {
      const memories = memoriesFrom(first, Math.min(INSERT_ROWS, count - first));
      const rows = memories.map((_, k) => `($${3 * k + 1}, $${3 * k + 2}, $${3 * k + 3})`);
      const values = memories.flatMap((memory, k) => [`floor-${first + k}`, memory.content, JSON.stringify(memory.metadata)]);
      await db.query(`INSERT INTO ${FLOOR_TABLE} (id, content, metadata) VALUES ${rows.join(', ')}`, values);
    }
    const rate = count / (since(started) / 1000);
    await db.query(`DROP TABLE ${FLOOR_TABLE}`);
    return rate;
  } finally {
    await db.end();
  }
}

/** One row in COPY's text format: tab-separated columns, backslash, tab, newline and carriage return escaped. */
export function copyLine(values: string[]): string {
  return `${values.map((value) => value.replace(/[\\\t\n\r]/g, (character) => COPY_ESCAPES[character])).join('\t')}\n`;
}

/**
 * Memories per second of one `COPY … FROM STDIN` of every row into a fresh table like the INSERT floor's,
 * the rows produced as the copy reads them (a thousand at a time).
 */
export async function postgresCopyRate(databaseURI: string, count: number): Promise<number> {
  const db = new pg.Client({ connectionString: databaseURI });
  await db.connect();
  try {
    await db.query(`DROP TABLE IF EXISTS ${FLOOR_TABLE}`);
    await db.query(`CREATE TABLE ${FLOOR_TABLE} ${FLOOR_COLUMNS}`);
    const rows = function* (): Generator<string> {
      for (let first = 0; first < count; first += COPY_ROWS_PER_WRITE) {
        yield memoriesFrom(first, Math.min(COPY_ROWS_PER_WRITE, count - first))
          .map((memory, k) => copyLine([`floor-${first + k}`, memory.content, JSON.stringify(memory.metadata)]))
          .join('');
      }
    };
    const started = performance.now();
    await pipeline(Readable.from(rows()), db.query(copyFrom(`COPY ${FLOOR_TABLE} (id, content, metadata) FROM STDIN`)));
    const rate = count / (since(started) / 1000);
    const {
      rows: [{ stored }],
    } = await db.query(`SELECT count(*)::int AS stored FROM ${FLOOR_TABLE}`);
    if (stored !== count) throw new Error(`COPY stored ${stored} of ${count} rows`);
    await db.query(`DROP TABLE ${FLOOR_TABLE}`);
    return rate;
  } finally {
    await db.end();
  }
}
