/**
 * `workspace_id`: a workspace of the user's own organization is carried by the batch, its namespace and
 * every memory; a workspace of another organization is refused with 400 naming the field, and nothing
 * is stored.
 */
import { randomUUID } from 'node:crypto';
import { addMemoryBatch, getBatch, master, memories, newUser, orphanFiles, parse, type TestUser } from '../support/helpers';
import { postJson } from '../support/rest';

/** A Workspace row, created with the master key, in the organization the server gave `user` (through a first batch). */
async function workspaceOf(user: TestUser): Promise<Parse.Object> {
  const P = parse();
  const first = await addMemoryBatch(user.sessionToken, { memories: memories(1) });
  expect(first.status).toBe('completed');
  const organization = (await getBatch(first.batch_id)).get('organization') as Parse.Object;
  const workspace = new P.Object('Workspace');
  workspace.set({ name: `workspace-${randomUUID()}`, organization });
  return workspace.save(null, master);
}

async function rowsOf(className: string, user: TestUser): Promise<number> {
  const P = parse();
  return new P.Query(className).equalTo('user', P.User.createWithoutData(user.id)).count(master);
}

test("workspace_id of the user's organization: the batch, its namespace and every memory carry the workspace", async () => {
  const P = parse();
  const owner = await newUser('workspace');
  const workspace = await workspaceOf(owner);
  const answer = await postJson('/memory/batch', { memories: memories(25), workspace_id: workspace.id, namespace: 'team-notes' }, { token: owner.sessionToken });
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ success: true, status: 'completed', processed: 25 });

  const batch = await getBatch(answer.body.batch_id);
  expect(batch.get('workspace')?.id).toBe(workspace.id);
  const namespace = await (batch.get('namespace') as Parse.Object).fetch(master);
  expect(namespace.get('name')).toBe('team-notes');
  expect(namespace.get('workspace')?.id).toBe(workspace.id);
  const stored = await new P.Query('Memory').equalTo('batch', batch).limit(100).find(master);
  expect(stored).toHaveLength(25);
  expect(stored.map((memory) => memory.get('workspace')?.id)).toEqual(Array(25).fill(workspace.id));
  expect(new Set(stored.map((memory) => memory.get('organization')?.id))).toEqual(new Set([batch.get('organization').id]));
});

test('workspace_id of another organization answers 400 naming workspace_id, and nothing is stored', async () => {
  const P = parse();
  const owner = await newUser('workspace-owner');
  const stranger = await newUser('workspace-stranger');
  await workspaceOf(owner);
  const foreign = await workspaceOf(stranger);
  const before = { batches: await rowsOf('BatchMemoryRequest', owner), memories: await rowsOf('Memory', owner) };
  const namespace = `foreign-${randomUUID()}`;

  const answer = await postJson('/memory/batch', { memories: memories(25), workspace_id: foreign.id, namespace }, { token: owner.sessionToken });
  expect(answer.status).toBe(400);
  expect(answer.body.error).toMatchObject({ code: 'invalid_request', message: `workspace_id "${foreign.id}" is not a workspace of your organization` });
  expect(answer.body.error.details).toEqual([expect.objectContaining({ path: 'workspace_id', field: 'workspace_id' })]);

  expect(await rowsOf('BatchMemoryRequest', owner)).toBe(before.batches);
  expect(await rowsOf('Memory', owner)).toBe(before.memories);
  expect(await new P.Query('Namespace').equalTo('name', namespace).count(master)).toBe(0);
  expect(await new P.Query('Memory').equalTo('workspace', foreign).count(master)).toBe(0);
  expect(await orphanFiles()).toEqual([]);
});
