/**
 * A batch whose per-item results exceed Parse Server's maxUploadSize (lowered here to 64 KiB, PARSE_MAX_UPLOAD_SIZE,
 * where 10,000,000 memories would exceed the default 64 MiB): the worker writes them in files each within the limit,
 * the batch completes, the results read back as one stream in batch order (whole, filtered and ranged), and a
 * deletion removes every one of the files.
 */
import { memories, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackApi } from '../reliability/stackApi';

const MAX_UPLOAD = 64 * 1024;
const TOTAL = 20_000;
/** Every tenth item is refused by the processor, with an error that names it. */
const refused = (index: number) => index % 10 === 3;

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  stack = await startPrivateStack('results-files', { PARSE_MAX_UPLOAD_SIZE: String(MAX_UPLOAD) });
  api = stackApi(stack.info);
}, 240_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** The results route's answer as parsed lines. */
async function results(batchId: string, token: string, query = ''): Promise<{ index: number; success: boolean; error?: string }[]> {
  const answer = await api.call(`/api/v1/memory/batch/${batchId}/results${query}`, { token });
  expect(answer.status).toBe(200);
  return (answer.body as string)
    .split('\n')
    .filter(Boolean)
    .map((text) => JSON.parse(text));
}

test(`results of ${TOTAL.toLocaleString('en')} items over several files of at most ${MAX_UPLOAD / 1024} KiB: complete, in order, ranged, deleted`, async () => {
  const owner = await api.signUp('results-files');
  const items = memories(TOTAL, 60, (index) => (refused(index) ? { metadata: { test_reject: `item ${index} is refused by this test's processor` } } : {}));
  // As NDJSON: the JSON body's MAX_BATCH_SIZE of the test stack is below this batch.
  const ndjson = items.map((item) => JSON.stringify(item)).join('\n');
  const submitted = await api.call('/api/v1/memory/batch?wait=false', { raw: ndjson, headers: { 'Content-Type': 'application/x-ndjson' }, token: owner.token });
  expect(submitted.status).toBe(202);
  const batchId = submitted.body.batch_id as string;
  const batch = await waitFor(
    'the batch to finish',
    async () => {
      const row = await api.batch(batchId);
      return row.completedAt && row;
    },
    300_000,
  );
  expect(batch).toMatchObject({ status: 'completed', processedMemories: TOTAL * 0.9, failedMemories: TOTAL * 0.1 });

  // Several files, each within the upload limit, as the master key downloads them.
  const names = [batch.resultsFile.name as string, ...((batch.resultsParts ?? []) as string[])];
  console.log(`results of ${TOTAL} items in ${names.length} files within ${MAX_UPLOAD} bytes`);
  expect(names.length).toBeGreaterThan(2);
  for (const name of names) {
    const file = await fetch(`${stack.info.serverURL}/files/${stack.info.appId}/${name}`, { headers: { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Master-Key': stack.info.masterKey } });
    expect({ name, status: file.status }).toEqual({ name, status: 200 });
    expect((await file.arrayBuffer()).byteLength).toBeLessThanOrEqual(MAX_UPLOAD);
  }

  // Read back as one stream: every item once, in batch order; filtered and ranged across the files.
  const all = await results(batchId, owner.token);
  expect(all.map((result) => result.index)).toEqual(Array.from({ length: TOTAL }, (_, index) => index));
  expect(all.filter((result) => !result.success).map((result) => result.index)).toEqual(all.map((result) => result.index).filter(refused));
  const failed = await results(batchId, owner.token, '?status=failed');
  expect(failed).toHaveLength(TOTAL * 0.1);
  expect(failed[failed.length - 1]).toMatchObject({ index: TOTAL - 7, error: expect.stringContaining(`item ${TOTAL - 7} is refused`) });
  const ranged = await results(batchId, owner.token, `?after=${TOTAL - 4}&limit=10`);
  expect(ranged.map((result) => result.index)).toEqual([TOTAL - 3, TOTAL - 2, TOTAL - 1]);

  // A deletion removes every results file.
  expect((await api.call(`/api/v1/memory/batch/${batchId}`, { method: 'DELETE', token: owner.token })).status).toBe(202);
  await waitFor('the batch to be deleted', async () => (await api.batch(batchId)).status === 'deleted', 120_000);
  const stored = await api.storedFiles();
  expect(names.filter((name) => stored.includes(name))).toEqual([]);
}, 600_000);
