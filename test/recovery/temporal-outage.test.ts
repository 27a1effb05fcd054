/**
 * Recovery on a private stack this file may break: a batch that arrives while Temporal is down is
 * stored and accepted, and completes once the dev server is back, without any client action.
 */
import { isAlive } from '../../scripts/processes';
import { stackApi } from '../reliability/stackApi';
import { memories, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  stack = await startPrivateStack('outage', { RECONCILE_INTERVAL: '1s', TEMPORAL_START_TIMEOUT: '2s' });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

test('Temporal stopped at submit time: 202 and stored; after the dev server restarts on the same database the batch completes', async () => {
  const { token } = await api.signUp('outage');

  await stack.stop('temporal');
  const submitted = await api.call('/api/v1/memory/batch', { body: { memories: memories(120) }, token });
  expect(submitted.status).toBe(202);
  expect(submitted.body).toMatchObject({ status: 'pending', total: 120, processed: 0 });
  const batchId = submitted.body.batch_id as string;
  expect(await api.batch(batchId)).toMatchObject({ status: 'pending', totalMemories: 120, partCount: 2 });

  await stack.start('temporal');
  const done = await waitFor(
    'the batch to complete after Temporal is back',
    async () => {
      const status = await api.call(`/api/v1/memory/batch/${batchId}`, { token });
      return status.body.status === 'completed' ? status.body : undefined;
    },
    150_000,
  );
  expect(done).toMatchObject({ processed: 120, failed: 0 });
  expect(await api.memoryRows(batchId)).toEqual({ rows: 120, duplicates: 0 });
  // The same worker process rode out the outage.
  expect(isAlive(stack.info.workerPid)).toBe(true);
});
