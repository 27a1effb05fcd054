/**
 * What the same memories cost without the product: Parse.Object.saveAll against the same Parse Server
 * (what an application would write by hand), and multi-row INSERTs straight into PostgreSQL (the floor).
 */
import Parse from 'parse/node';
import pg from 'pg';
import type { TestStackInfo } from '../test/support/stackInfo';
import { memoriesFrom, since } from './measure';

export const SAVE_ALL_OBJECTS = 100;
export const INSERT_ROWS = 1000;
const FLOOR_TABLE = 'bench_memory_floor';

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
    await db.query(`CREATE TABLE ${FLOOR_TABLE} (id text PRIMARY KEY, content text NOT NULL, metadata jsonb)`);
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
