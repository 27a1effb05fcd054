/**
 * FerretDB 1.x applies an update by reading the document and writing it back whole, so the plugin's adapter makes
 * the updates of one class take turns. Shown here without a database: the MongoDB adapter's update methods are
 * replaced by held promises, and the test watches how many of one class reach them at once.
 */
import { FerretDBStorageAdapter } from '../../cloud/ferretdb';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { default: MongoStorageAdapter } = require('parse-server/lib/Adapters/Storage/Mongo/MongoStorageAdapter') as { default: { prototype: Record<string, unknown> } };

const UPDATES = ['findOneAndUpdate', 'updateObjectsByQuery', 'upsertOneObject'] as const;

/** The updates that reached the database adapter and are not yet answered, by class; each settles when the test says. */
function heldDatabase() {
  const inFlight: { className: string; settle: (error?: Error) => void }[] = [];
  const reached: string[] = [];
  for (const method of UPDATES)
    jest.spyOn(MongoStorageAdapter.prototype, method as never).mockImplementation(((className: string) => {
      reached.push(`${method} ${className}`);
      return new Promise((resolve, reject) => {
        const entry = { className, settle: (error?: Error) => (error ? reject(error) : resolve({})) };
        inFlight.push(entry);
      });
    }) as never);
  /** Settles the oldest held update, then lets the adapter's promise chain run. */
  const settleOldest = async (error?: Error) => {
    inFlight.shift()?.settle(error);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { inFlight, reached, settleOldest };
}

afterEach(() => jest.restoreAllMocks());

test('updates of one class reach the database one at a time, in order; another class does not wait for them', async () => {
  const database = heldDatabase();
  const adapter = new FerretDBStorageAdapter({ uri: 'mongodb://127.0.0.1:1/unused' });
  const answers = [
    adapter.findOneAndUpdate('BatchMemoryRequest', {}, {}, { a: 1 }),
    adapter.updateObjectsByQuery('BatchMemoryRequest', {}, {}, { a: 2 }),
    adapter.upsertOneObject('BatchMemoryRequest', {}, {}, { a: 3 }),
    adapter.findOneAndUpdate('Memory', {}, {}, { b: 1 }),
  ];
  await new Promise((resolve) => setImmediate(resolve));
  // One BatchMemoryRequest update and the Memory one are at the database; the other two wait their turn.
  expect(database.inFlight.map((entry) => entry.className)).toEqual(['BatchMemoryRequest', 'Memory']);
  const maxAtOnce: number[] = [];
  while (database.inFlight.length > 0) {
    maxAtOnce.push(database.inFlight.filter((entry) => entry.className === 'BatchMemoryRequest').length);
    await database.settleOldest();
  }
  await Promise.all(answers);
  expect(Math.max(...maxAtOnce)).toBe(1);
  expect(database.reached).toEqual(['findOneAndUpdate BatchMemoryRequest', 'findOneAndUpdate Memory', 'updateObjectsByQuery BatchMemoryRequest', 'upsertOneObject BatchMemoryRequest']);
});

test('an update the database refuses is answered with its error, and the next one of its class still runs', async () => {
  const database = heldDatabase();
  const adapter = new FerretDBStorageAdapter({ uri: 'mongodb://127.0.0.1:1/unused' });
  const refused = adapter.findOneAndUpdate('BatchMemoryRequest', {}, {}, {});
  const next = adapter.findOneAndUpdate('BatchMemoryRequest', {}, {}, {});
  await new Promise((resolve) => setImmediate(resolve));
  expect(database.inFlight).toHaveLength(1);
  await database.settleOldest(new Error('duplicate key'));
  await expect(refused).rejects.toThrow('duplicate key');
  expect(database.inFlight).toHaveLength(1);
  await database.settleOldest();
  await expect(next).resolves.toEqual({});
});
