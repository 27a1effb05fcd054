/** BatchMemoryRequest is guarded: master-key writes only, legal status moves only, owner and organization reads only. */
import { addMemoryBatch, closeTemporal, countMemories, getBatch, heldMemories, master, memories, newGate, newUser, parse, temporal, untilActivitiesClosed, waitFor } from '../support/helpers';
import { workflowIdFor } from '../../schema/workflow';

afterAll(closeTemporal);

async function completedBatch() {
  const owner = await newUser('owner');
  const response = await addMemoryBatch(owner.sessionToken, { memories: memories(3) });
  return { owner, batch: await getBatch(response.batch_id) };
}

describe('BatchMemoryRequest triggers and permissions', () => {
  test('clients cannot create, edit or delete a request, even their own', async () => {
    const P = parse();
    const { owner, batch } = await completedBatch();
    const forged = new P.Object('BatchMemoryRequest');
    forged.set({ status: 'completed', totalMemories: 1, user: owner.user });
    await expect(forged.save(null, { sessionToken: owner.sessionToken })).rejects.toMatchObject({ code: P.Error.OPERATION_FORBIDDEN });
    const mine = await new P.Query('BatchMemoryRequest').get(batch.id as string, { sessionToken: owner.sessionToken });
    mine.set('processedMemories', 0);
    await expect(mine.save(null, { sessionToken: owner.sessionToken })).rejects.toMatchObject({ code: P.Error.OPERATION_FORBIDDEN });
    await expect(mine.destroy({ sessionToken: owner.sessionToken })).rejects.toMatchObject({ code: P.Error.OPERATION_FORBIDDEN });
  });

  test.each([
    ['completed', 'processing'],
    ['completed', 'pending'],
    ['completed', 'cancelled'],
  ])('status cannot move from %s to %s', async (_from, to) => {
    const { batch } = await completedBatch();
    batch.set('status', to);
    await expect(batch.save(null, master)).rejects.toMatchObject({ message: `status cannot change from completed to ${to}` });
  });

  test('required pointers, a pending start and consistent counts are enforced on master-key writes', async () => {
    const P = parse();
    const { batch } = await completedBatch();
    const copy = new P.Object('BatchMemoryRequest');
    copy.set({ user: batch.get('user'), batchFile: batch.get('batchFile'), status: 'pending', totalMemories: 1 });
    await expect(copy.save(null, master)).rejects.toMatchObject({ message: 'organization is required' });
    copy.set({ organization: batch.get('organization'), status: 'processing' });
    await expect(copy.save(null, master)).rejects.toMatchObject({ message: 'a new batch starts as pending, or receiving (processed while uploading)' });
    batch.set({ processedMemories: 3, failedMemories: 1 });
    await expect(batch.save(null, master)).rejects.toMatchObject({ message: 'processed (3) + failed (1) exceeds totalMemories (3)' });
    await expect(P.Cloud.run('getMemoryBatch', { batch_id: 'not an id!' }, master)).rejects.toMatchObject({ message: 'batch_id must be a batch id' });
  });

  test('the owner and members of the owner organization can read a batch (members: its status, not its per-item results); nobody else can', async () => {
    const P = parse();
    const { owner, batch } = await completedBatch();
    const stranger = await newUser('stranger');
    const colleague = await newUser('colleague');
    await expect(new P.Query('BatchMemoryRequest').get(batch.id as string, { sessionToken: stranger.sessionToken })).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });
    expect(await new P.Query('Memory').equalTo('batch', batch).count({ sessionToken: stranger.sessionToken })).toBe(0);
    expect(await new P.Query('Memory').equalTo('batch', batch).count({ sessionToken: owner.sessionToken })).toBe(3);
    await expect(new P.Query('BatchMemoryRequest').count()).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });

    const role = await new P.Query(P.Role).equalTo('name', `org_${batch.get('organization').id}`).first(master);
    role?.getUsers().add(colleague.user);
    await role?.save(null, master);
    const seen = await new P.Query('BatchMemoryRequest').get(batch.id as string, { sessionToken: colleague.sessionToken });
    expect(seen.get('totalMemories')).toBe(3);
    // A member reads the status and counts; the per-item results (memory ids) are the owner's.
    const status = (await P.Cloud.run('getMemoryBatch', { batch_id: batch.id }, { sessionToken: colleague.sessionToken })) as { status: string; total: number; results: unknown[] };
    expect(status).toMatchObject({ status: 'completed', total: 3, results: [] });
    const ownStatus = (await P.Cloud.run('getMemoryBatch', { batch_id: batch.id }, { sessionToken: owner.sessionToken })) as { results: unknown[] };
    expect(ownStatus.results).toHaveLength(3);
    await expect(P.Cloud.run('getMemoryBatch', { batch_id: batch.id }, { sessionToken: stranger.sessionToken })).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });
  });

  test('the master key acts for a named user, and must name one', async () => {
    const P = parse();
    const owner = await newUser();
    const response = (await P.Cloud.run('addMemoryBatch', { memories: memories(2), user_id: owner.id }, master)) as { batch_id: string; success: boolean };
    expect(response.success).toBe(true);
    expect((await getBatch(response.batch_id)).get('user').id).toBe(owner.id);
    await expect(P.Cloud.run('addMemoryBatch', { memories: memories(2) }, master)).rejects.toMatchObject({ message: 'user_id is required when using the master key' });
    await expect(P.Cloud.run('addMemoryBatch', { memories: memories(2) })).rejects.toMatchObject({ code: P.Error.INVALID_SESSION_TOKEN });
  });

  test('cancelling a running batch ends it as cancelled, stops its running parts, and nothing is written after the cancel is acknowledged', async () => {
    const P = parse();
    const { sessionToken } = await newUser();
    const { batch_id } = await addMemoryBatch(sessionToken, { memories: heldMemories(400, newGate()), wait: false });
    await waitFor('the first memories to be written', async () => (await countMemories(batch_id)) > 0, 60_000);
    const cancelled = (await P.Cloud.run('cancelMemoryBatch', { batch_id }, { sessionToken })) as { status: string; processed: number };
    expect(cancelled.status).toBe('cancelled');
    const rowsAtCancel = await countMemories(batch_id);
    const description = await (await temporal()).workflow.getHandle(workflowIdFor(batch_id)).describe();
    expect(description.status.name).toBe('CANCELLED');
    // No part can write once Temporal's history shows every activity closed: count again only then. Some
    // ended cancelled: the cancel reached parts in the middle and they stopped there.
    const activities = await untilActivitiesClosed(batch_id);
    expect(activities.cancelled).toBeGreaterThan(0);
    expect(rowsAtCancel).toBeLessThan(400);
    expect(await countMemories(batch_id)).toBe(rowsAtCancel);
    const batch = await getBatch(batch_id);
    expect(batch.get('processedMemories')).toBe(rowsAtCancel);
    expect(cancelled.processed).toBe(rowsAtCancel);
    // Terminal: cancelling again changes nothing.
    expect(((await P.Cloud.run('cancelMemoryBatch', { batch_id }, { sessionToken })) as { status: string }).status).toBe('cancelled');
  });

  test('setting status = cancelled with the master key (what the Dashboard does) cancels the workflow; nothing is written after', async () => {
    const { sessionToken } = await newUser();
    const { batch_id } = await addMemoryBatch(sessionToken, { memories: heldMemories(400, newGate()), wait: false });
    await waitFor('the first memories to be written', async () => (await countMemories(batch_id)) > 0, 60_000);
    const batch = await getBatch(batch_id);
    batch.set('status', 'cancelled');
    await batch.save(null, master);
    const handle = (await temporal()).workflow.getHandle(workflowIdFor(batch_id));
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const finished = await waitFor('the final counts', async () => {
      const b = await getBatch(batch_id);
      return b.get('completedAt') ? b : undefined;
    });
    const rows = await countMemories(batch_id);
    expect(finished.get('status')).toBe('cancelled');
    expect(finished.get('processedMemories')).toBe(rows);
    expect(rows).toBeLessThan(400);
    const activities = await untilActivitiesClosed(batch_id);
    expect(activities.cancelled).toBeGreaterThan(0);
    expect(await countMemories(batch_id)).toBe(rows);

    // A late count increment (an attempt that outlived the batch) leaves the final counts as they are.
    finished.increment('processedMemories', 10);
    await finished.save(null, master);
    expect((await getBatch(batch_id)).get('processedMemories')).toBe(rows);
  });
});
