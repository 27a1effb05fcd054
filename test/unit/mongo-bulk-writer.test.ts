/**
 * The MongoDB bulk write counts only what the database acknowledged: a store that answers fewer inserted
 * documents than it was sent, with no error for the rest, does not have them reported written; a document
 * refused with a write error of its own fails alone with the database's reason, quoting none of it.
 */
import { insertMongoObjects, type MongoStorageAdapter } from '../../cloud/mongoBulkWriter';
import { STORE_REFUSED_CODE } from '../../schema/batchFile';

const schema = {
  className: 'Memory',
  fields: { objectId: { type: 'String' }, createdAt: { type: 'Date' }, updatedAt: { type: 'Date' }, ACL: { type: 'ACL' }, content: { type: 'String' } },
  classLevelPermissions: {},
};
const database = { loadSchema: async () => ({ getOneSchema: async () => schema }) };

type Document = Record<string, unknown>;

/** A collection that keeps what `stores` lets through, and answers an insertMany as `answer` says. */
function fakeStore(
  stores: (document: Document) => boolean,
  answer: (inserted: number, refused: { index: number; code: number; errmsg: string }[]) => unknown = (inserted) => ({ insertedCount: inserted }),
) {
  const held = new Map<unknown, Document>();
  const collection = {
    async insertMany(documents: Document[]) {
      const refused: { index: number; code: number; errmsg: string }[] = [];
      let inserted = 0;
      documents.forEach((document, index) => {
        if (held.has(document._id)) refused.push({ index, code: 11000, errmsg: 'E11000 duplicate key' });
        else if (document.content === 'refuse me') refused.push({ index, code: 121, errmsg: 'Document failed validation: {"content": "refuse me"}' });
        else if (stores(document)) {
          held.set(document._id, document);
          inserted++;
        }
      });
      if (refused.length) throw Object.assign(new Error('bulk write error'), { writeErrors: refused, result: { insertedCount: inserted } });
      return answer(inserted, refused);
    },
    find(filter: { _id: { $in: unknown[] } }) {
      return { toArray: async () => filter._id.$in.filter((id) => held.has(id)).map((_id) => ({ _id })) };
    },
  };
  const adapter = { _adaptiveCollection: async () => ({ _mongoCollection: collection }) } as unknown as MongoStorageAdapter;
  return { adapter, held };
}

const objects = (contents: string[]) => contents.map((content, k) => ({ objectId: `object${k}`, content, createdAt: new Date().toISOString(), updatedAt: new Date().toISOString() }));

test('documents a store silently drops are not reported written; those it holds are', async () => {
  // Drops what holds "lost" and says nothing: it acknowledges only what it kept.
  const { adapter, held } = fakeStore((document) => !String(document.content).includes('lost'));
  const answers = await insertMongoObjects(database, adapter, 'Memory', objects(['good one', 'lost one', 'good two']));
  expect(answers).toEqual([
    { success: { objectId: 'object0' } },
    { error: { code: STORE_REFUSED_CODE, error: 'the database did not acknowledge the write of the memory' } },
    { success: { objectId: 'object2' } },
  ]);
  expect([...held.keys()].sort()).toEqual(['object0', 'object2']);
});

test('a store that answers success for every document while holding fewer is checked by reading back', async () => {
  // Claims all were inserted; holds only some (as FerretDB did with a key it could not store).
  const { adapter, held } = fakeStore(
    (document) => document.content !== 'lost',
    (_inserted) => ({ insertedCount: 0 }),
  );
  const answers = await insertMongoObjects(database, adapter, 'Memory', objects(['kept', 'lost']));
  expect(answers.map((answer) => ('success' in answer ? 'stored' : answer.error.code))).toEqual(['stored', STORE_REFUSED_CODE]);
  expect(held.size).toBe(1);
});

test('a document refused with a write error of its own fails alone with the reason, without its content; a duplicate is already written', async () => {
  const { adapter } = fakeStore(() => true);
  await insertMongoObjects(database, adapter, 'Memory', objects(['first']));
  const answers = await insertMongoObjects(database, adapter, 'Memory', objects(['first', 'refuse me', 'third']));
  expect(answers[0]).toEqual({ error: { code: 137, error: expect.stringContaining('duplicate') } });
  expect(answers[1]).toEqual({ error: { code: STORE_REFUSED_CODE, error: 'the database refused the memory: Document failed validation (code 121)' } });
  expect(answers[2]).toEqual({ success: { objectId: 'object2' } });
});
