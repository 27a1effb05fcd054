/** Live progress: the server-sent events stream and LiveQuery updates reach the owner, and nobody else. */
import { getBatch, memories, newUser, parse, waitFor } from '../support/helpers';
import { REST, openApiProblems, postJson } from '../support/rest';
import { stackInfo } from '../support/stackInfo';

async function readEvents(url: string, token: string): Promise<{ status: string; processed: number }[]> {
  const response = await fetch(url, { headers: { 'X-Parse-Session-Token': token } });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('event: progress'))
    .map((block) => JSON.parse(block.split('\ndata: ')[1]));
}

test('GET /api/v1/memory/batch/:id/events streams progress until a terminal status', async () => {
  const { sessionToken } = await newUser();
  const accepted = await postJson('/memory/batch?wait=false', { memories: memories(1500, 300) }, { token: sessionToken });
  const events = await readEvents(`${REST}/memory/batch/${accepted.body.batch_id}/events`, sessionToken);
  expect(events.length).toBeGreaterThan(1);
  expect(events[events.length - 1]).toMatchObject({ status: 'completed', processed: 1500 });
  const processed = events.map((e) => e.processed);
  expect(processed).toEqual([...processed].sort((a, b) => a - b));
  for (const event of events) expect(await openApiProblems('BatchStatusResponse', event)).toEqual([]);
});

test('LiveQuery on BatchMemoryRequest: the owner receives progress updates, another user receives none', async () => {
  const P = parse();
  const info = stackInfo();
  P.liveQueryServerURL = info.serverURL.replace(/^http/, 'ws');
  const owner = await newUser('owner');
  const other = await newUser('other');
  const ownerUpdates: number[] = [];
  const otherUpdates: number[] = [];
  const ownerSubscription = await new P.Query('BatchMemoryRequest').subscribe(owner.sessionToken);
  const otherSubscription = await new P.Query('BatchMemoryRequest').subscribe(other.sessionToken);
  ownerSubscription.on('update', (object: Parse.Object) => ownerUpdates.push(object.get('processedMemories')));
  otherSubscription.on('update', (object: Parse.Object) => otherUpdates.push(object.get('processedMemories')));
  otherSubscription.on('enter', (object: Parse.Object) => otherUpdates.push(object.get('processedMemories')));
  try {
    const accepted = await postJson('/memory/batch?wait=false', { memories: memories(600, 300) }, { token: owner.sessionToken });
    await waitFor('the batch to complete', async () => ((await getBatch(accepted.body.batch_id)).get('status') === 'completed' ? true : undefined), 120_000);
    await waitFor('the owner to see the final count', async () => ownerUpdates.includes(600), 10_000);
    expect(ownerUpdates.length).toBeGreaterThan(2);
    expect(otherUpdates).toEqual([]);
  } finally {
    await ownerSubscription.unsubscribe();
    await otherSubscription.unsubscribe();
    await P.LiveQuery.close();
  }
});
