/**
 * Parse Server killed while it receives the body of a batch processed while uploading: no one is left to
 * seal the batch, so its workflow does, once no body could still be arriving (REST_BODY_TIMEOUT and
 * BATCH_UPLOAD_LOST_AFTER, both short here). The batch ends failed, holding exactly the memories stored before, each
 * written once. On a private stack: the test kills its Parse Server.
 */
import { waitFor } from '../../scripts/processes';
import { memories } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { countServerErrors, recordScenario, stackApi } from './stackApi';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  stack = await startPrivateStack('upload-lost', { REST_BODY_TIMEOUT: '10s', BATCH_UPLOAD_LOST_AFTER: '2s' });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

test('Parse Server killed while a batch processed while uploading receives its body: the workflow seals it, failed, holding exactly what was stored', async () => {
  const serverErrorsSince = countServerErrors();
  const user = await api.signUp('upload-lost');
  const body = memories(250, 150).map((item) => `${JSON.stringify(item)}\n`);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      // Two parts and half of a third; the body stays open until the server is gone.
      controller.enqueue(new TextEncoder().encode(body.join('')));
    },
  });
  const upload = fetch(`${stack.info.serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch?process=while_uploading&wait=false`, {
    method: 'POST',
    headers: { 'X-Parse-Session-Token': user.token, 'Content-Type': 'application/x-ndjson' },
    body: stream,
    duplex: 'half',
  } as RequestInit).catch((error: unknown) => error);
  const receiving = encodeURIComponent(JSON.stringify({ user: { __type: 'Pointer', className: '_User', objectId: user.id }, status: 'receiving', totalMemories: 200 }));
  const batchId: string = await waitFor(
    'the batch to hold two parts',
    async () => (await api.call(`/parse/classes/BatchMemoryRequest?where=${receiving}`, { master: true })).body.results[0]?.objectId,
    60_000,
    50,
  );
  await stack.stop('server', 'SIGKILL');
  // The client sees the connection fail, with no answer.
  expect(String(await upload)).toMatch(/fetch failed/);
  await stack.start('server');

  const batch = await waitFor(
    `batch ${batchId} to end`,
    async () => {
      const current = await api.batch(batchId);
      return current.completedAt ? current : undefined;
    },
    180_000,
    500,
  );
  const { rows, duplicates } = await api.memoryRows(batchId);
  const serverErrors = serverErrorsSince();
  recordScenario({
    scenario: 'Parse Server killed while it received a batch processed while uploading',
    faults: 1,
    badInputs: 0,
    serverErrors,
    lost: batch.totalMemories - (rows - duplicates),
    duplicated: duplicates,
  });
  expect(batch).toMatchObject({
    status: 'failed',
    totalMemories: 200,
    processedMemories: 200,
    failedMemories: 0,
    error: expect.stringMatching(/^the upload did not end \(its server stopped\); the batch holds the 200 memories stored before/),
  });
  expect(rows).toBe(200);
  expect(duplicates).toBe(0);
  expect(serverErrors).toBe(0);
});
