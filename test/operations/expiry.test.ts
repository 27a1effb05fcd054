/** Expiry: the Temporal Schedule deletes the stored files of expired batches; requests keep their counts, memories stay. */
import { fileURL } from '../../schema/batchFile';
import { expiryScheduleIdFor } from '../../schema/workflow';
import { closeTemporal, countMemories, getBatch, http, master, memories, newUser, parse, temporal, waitFor } from '../support/helpers';
import { postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';

afterAll(closeTemporal);
const asMaster = () => ({ headers: { 'X-Parse-Master-Key': stackInfo().masterKey } });

test('running the expiry job deletes expired files (404 even to the master key) and keeps the counts', async () => {
  const P = parse();
  const { sessionToken } = await newUser();
  const submitted = await postJson('/memory/batch', { memories: [...memories(140), { content: 'rejected', metadata: { test_reject: 'not wanted' } }] }, { token: sessionToken });
  expect(submitted.status).toBe(207);
  const batchId = submitted.body.batch_id as string;
  const batch = await getBatch(batchId);
  const parts = await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).find(master);
  const endpoint = { serverURL: stackInfo().serverURL, appId: stackInfo().appId, masterKey: stackInfo().masterKey };
  const fileURLs = [...parts.map((part) => fileURL(endpoint, part.get('name'))), fileURL(endpoint, (batch.get('resultsFile') as Parse.File).name())];
  expect(fileURLs.length).toBeGreaterThanOrEqual(3);
  for (const url of fileURLs) expect((await http(url, asMaster())).status).toBe(200);

  batch.set('expiresAt', new Date(Date.now() - 60_000));
  await batch.save(null, master);
  const client = await temporal();
  await waitFor(
    'the expiry schedule',
    async () =>
      await client.schedule
        .getHandle(expiryScheduleIdFor(stackInfo().taskQueue))
        .describe()
        .then(
          () => true,
          () => undefined,
        ),
    30_000,
  );
  await client.schedule.getHandle(expiryScheduleIdFor(stackInfo().taskQueue)).trigger();
  const expired = await waitFor(
    'the batch files to expire',
    async () => {
      const current = await getBatch(batchId);
      return current.get('filesExpiredAt') ? current : undefined;
    },
    60_000,
  );

  for (const url of fileURLs) expect((await http(url, asMaster())).status).toBe(404);
  expect(await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).count(master)).toBe(0);
  expect(expired.get('resultsFile')).toBeUndefined();
  expect(expired.get('status')).toBe('completed');
  expect(expired.get('processedMemories')).toBe(140);
  expect(expired.get('failedMemories')).toBe(1);
  expect(expired.get('totalMemories')).toBe(141);
  expect(await countMemories(batchId)).toBe(140);

  const status = await rest(`/memory/batch/${batchId}`, { token: sessionToken });
  expect(status.body).toMatchObject({ status: 'completed', processed: 140, failed: 1, files_expired_at: expect.any(String) });
  const results = await rest(`/memory/batch/${batchId}/results`, { token: sessionToken });
  expect(results.status).toBe(410);
  expect(results.body.error).toMatchObject({ code: 'expired', message: expect.stringMatching(/\(BATCH_FILE_EXPIRY_DAYS\); its counts remain/) });
  const summary = await P.Cloud.run('getMemoryBatch', { batch_id: batchId }, { sessionToken });
  expect(summary).toMatchObject({ status: 'completed', processed: 140, failed: 1, results: [] });
});
