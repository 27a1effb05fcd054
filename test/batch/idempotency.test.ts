/** Invariant 7: starting the same batch twice processes it once. */
import { addMemoryBatch, closeTemporal, countMemories, duplicateMemories, getBatch, memories, newUser, parse, temporal, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';
import { BATCH_WORKFLOW_TYPE, workflowIdFor } from '../../schema/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';

afterAll(closeTemporal);

describe('idempotency', () => {
  test('the same idempotency key and body returns the same batch and writes each memory once', async () => {
    const { sessionToken } = await newUser();
    const params = { memories: memories(60), namespace: 'idem', idempotency_key: 'import-2026-11-29' };
    const first = await addMemoryBatch(sessionToken, params);
    const second = await addMemoryBatch(sessionToken, params);
    expect(second.batch_id).toBe(first.batch_id);
    expect(second).toEqual(first);
    expect(await countMemories(first.batch_id)).toBe(60);
  });

  test('the same key with a different body is refused and explained', async () => {
    const { sessionToken } = await newUser();
    await addMemoryBatch(sessionToken, { memories: memories(3), idempotency_key: 'k-1', wait: false });
    await expect(addMemoryBatch(sessionToken, { memories: memories(4), idempotency_key: 'k-1' })).rejects.toMatchObject({
      code: parse().Error.DUPLICATE_VALUE,
      message: expect.stringMatching(/idempotency key was already used with a different request body/),
    });
  });

  test('keys belong to their user: another user with the same key gets a batch of their own', async () => {
    const a = await newUser();
    const b = await newUser();
    const params = { memories: memories(2), idempotency_key: 'shared-key', wait: false };
    const first = await addMemoryBatch(a.sessionToken, params);
    const second = await addMemoryBatch(b.sessionToken, params);
    expect(second.batch_id).not.toBe(first.batch_id);
  });

  test('a re-delivered start is rejected by workflow id, and a second workflow on the same batch writes nothing twice', async () => {
    const { sessionToken } = await newUser();
    const total = 400;
    const { batch_id } = await addMemoryBatch(sessionToken, { memories: memories(total), wait: false });
    const client = await temporal();
    const { taskQueue } = stackInfo();
    await expect(client.workflow.start(BATCH_WORKFLOW_TYPE, { workflowId: workflowIdFor(batch_id), taskQueue, args: [{ batchId: batch_id }] })).rejects.toBeInstanceOf(
      WorkflowExecutionAlreadyStartedError,
    );
    // A start under another id (say, by an operator) races the first workflow over the same chunks.
    const duplicate = await client.workflow.start(BATCH_WORKFLOW_TYPE, { workflowId: `${workflowIdFor(batch_id)}-again`, taskQueue, args: [{ batchId: batch_id }] });
    await duplicate.result();
    await client.workflow.getHandle(workflowIdFor(batch_id)).result();
    const batch = await waitFor('the batch to complete', async () => {
      const b = await getBatch(batch_id);
      return b.get('status') === 'completed' ? b : undefined;
    });
    expect(await countMemories(batch_id)).toBe(total);
    expect(await duplicateMemories(batch_id)).toBe(0);
    expect([batch.get('processedMemories'), batch.get('failedMemories')]).toEqual([total, 0]);
  });
});
