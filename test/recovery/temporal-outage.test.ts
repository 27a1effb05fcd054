/**
 * Recovery on a private stack this file may break: a batch that arrives while Temporal is down is
 * stored and accepted, and completes once the dev server is back, without any client action.
 */
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { isAlive } from '../../scripts/processes';
import { memories, waitFor } from '../support/helpers';

let stack: PrivateStack;

beforeAll(async () => {
  stack = await startPrivateStack('outage', { RECONCILE_INTERVAL: '1s' });
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** Raw REST against the private stack. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(path: string, init: { method?: string; body?: unknown; token?: string; master?: boolean } = {}): Promise<{ status: number; body: any }> {
  const { serverURL, appId, masterKey } = stack.info;
  const response = await fetch(`${serverURL.replace(/\/parse$/, '')}${path}`, {
    method: init.method ?? (init.body ? 'POST' : 'GET'),
    headers: {
      'Content-Type': 'application/json',
      'X-Parse-Application-Id': appId,
      ...(init.token ? { 'X-Parse-Session-Token': init.token } : {}),
      ...(init.master ? { 'X-Parse-Master-Key': masterKey } : {}),
    },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: response.status, body: await response.json() };
}

test('Temporal stopped at submit time: 202 and stored; after the dev server restarts on the same database the batch completes', async () => {
  const signup = await call('/parse/users', { body: { username: `outage-${Date.now()}`, password: 'test-password-123' } });
  const token = signup.body.sessionToken as string;

  await stack.stop('temporal');
  const submitted = await call('/api/v1/memory/batch', { body: { memories: memories(120) }, token });
  expect(submitted.status).toBe(202);
  expect(submitted.body).toMatchObject({ status: 'pending', total: 120, processed: 0 });
  const batchId = submitted.body.batch_id as string;
  const stored = await call(`/parse/classes/BatchMemoryRequest/${batchId}`, { master: true });
  expect(stored.body).toMatchObject({ status: 'pending', totalMemories: 120, partCount: 2 });

  await stack.start('temporal');
  const done = await waitFor('the batch to complete after Temporal is back', async () => {
    const status = await call(`/api/v1/memory/batch/${batchId}`, { token });
    return status.body.status === 'completed' ? status.body : undefined;
  }, 150_000);
  expect(done).toMatchObject({ processed: 120, failed: 0 });
  const where = encodeURIComponent(JSON.stringify({ batch: { __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId } }));
  const rows = await call(`/parse/classes/Memory?where=${where}&count=1&limit=0`, { master: true });
  expect(rows.body.count).toBe(120);
  // The same worker process rode out the outage.
  expect(isAlive(stack.info.workerPid)).toBe(true);
});
