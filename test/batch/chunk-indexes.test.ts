/**
 * The indexes the plugin declares are on the fields the database stores: finalizeBatch, a resumed part and a
 * retry read chunk rows by batch and part in order of `first`. On MongoDB Parse Server stores a pointer
 * `batch` as `_p_batch`, so an index declared on `batch` would cover no document and every read would scan
 * the collection.
 */
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { onMongo } from '../support/database';
import { stackInfo } from '../support/stackInfo';

/** Each index of a class (beside the one on its id): its name and its keys in order. */
async function indexesOf(className: string): Promise<Record<string, string[]>> {
  const uri = stackInfo().databaseURI;
  if (onMongo) {
    const client = await MongoClient.connect(uri);
    try {
      const indexes = await client.db().collection(className).listIndexes().toArray();
      return Object.fromEntries(indexes.filter((index) => index.name !== '_id_').map((index) => [index.name as string, Object.keys(index.key as object)]));
    } finally {
      await client.close();
    }
  }
  const db = new pg.Client({ connectionString: uri });
  await db.connect();
  try {
    // Parse Server's PostgreSQL adapter names each index as declared, with the columns in order.
    const { rows } = await db.query<{ indexname: string; indexdef: string }>('SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1', [className]);
    return Object.fromEntries(
      rows.filter((row) => !row.indexname.endsWith('_pkey')).map((row) => [row.indexname, [...(/\((.*)\)$/.exec(row.indexdef)?.[1] ?? '').matchAll(/"?(\w+)"?/g)].map((m) => m[1])]),
    );
  } finally {
    await db.end();
  }
}

const batchKey = onMongo ? '_p_batch' : 'batch';

test('chunk rows are indexed by batch, part and first, and memories by batch and index, on the fields as stored', async () => {
  expect((await indexesOf('BatchMemoryChunk')).batch_part_first).toEqual([batchKey, 'part', 'first']);
  expect((await indexesOf('Memory')).batch_index).toEqual([batchKey, 'batchIndex']);
});
