/**
 * NDJSON batches processed while uploading (process=while_uploading), on the shared stack (parts of 100
 * memories): memories are written while the body is still open; a late bad line and a broken upload end
 * the batch failed holding exactly the memories before them; an idempotent repeat duplicates nothing;
 * another account reads nothing of a batch still receiving.
 */
import http from 'node:http';
import type { MemoryItem } from '../../schema/memory';
import { closeTemporal, countMemories, duplicateMemories, getBatch, master, memories, newUser, orphanFiles, parse, temporal, type TestUser, waitFor } from '../support/helpers';
import { REST, openApiProblems, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { batchWorkflowRuns, historyFigures, textsIn } from '../support/workflowHistory';

afterAll(closeTemporal);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A POST of NDJSON kept open: lines are written when the test says, and the body ends (or breaks) when it says. */
function openUpload(token: string, query: string, headers: Record<string, string> = {}) {
  const request = http.request(`${REST}/memory/batch?${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-ndjson', 'X-Parse-Session-Token': token, ...headers },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text ? JSON.parse(text) : undefined }));
    });
    request.on('error', reject);
  });
  answer.catch(() => undefined);
  return {
    answer,
    write: (lines: string) => new Promise<void>((resolve, reject) => request.write(lines, (error) => (error ? reject(error) : resolve()))),
    end: () => request.end(),
    /** The client goes away in the middle of the body. */
    abort: () => request.destroy(),
  };
}

function lines(items: MemoryItem[]): string {
  return items.map((item) => `${JSON.stringify(item)}\n`).join('');
}

const batchOf = (from: number, count: number) => memories(from + count, 150).slice(from);

/** The user's one batch, as the master key reads it, once it exists. */
async function batchOfUser(owner: TestUser): Promise<Parse.Object> {
  const P = parse();
  return waitFor('the batch of the upload', async () => new P.Query('BatchMemoryRequest').equalTo('user', owner.user).first(master), 60_000, 50);
}

async function untilStatus(batchId: string, statuses: string[]): Promise<Parse.Object> {
  return waitFor(
    `batch ${batchId} to be ${statuses.join(' or ')}`,
    async () => {
      const batch = await getBatch(batchId);
      return statuses.includes(batch.get('status')) ? batch : undefined;
    },
    120_000,
    100,
  );
}

test('memories are written while the body is still open; the batch is sealed with its total when the body ends, exact', async () => {
  const owner = await newUser('early');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  await upload.write(lines(batchOf(0, 250)));
  const batch = await batchOfUser(owner);
  const batchId = batch.id as string;
  // Rows of memories in the database while the body is still open: the first two parts are processed.
  await waitFor('memories written before the body ends', async () => (await countMemories(batchId)) >= 200, 120_000, 100);
  const receiving = await getBatch(batchId);
  expect(receiving.get('status')).toBe('receiving');
  expect(receiving.get('totalMemories')).toBe(200);
  const status = await rest(`/memory/batch/${batchId}`, { token: owner.sessionToken });
  expect(status.body).toMatchObject({ status: 'receiving', total: 200 });
  expect(await openApiProblems('BatchStatusResponse', status.body)).toEqual([]);

  await upload.write(lines(batchOf(250, 150)));
  upload.end();
  const answer = await upload.answer;
  expect(answer.status).toBe(202);
  expect(answer.body).toMatchObject({ batch_id: batchId, total: 400 });
  expect(answer.headers.location).toBe(`/api/v1/memory/batch/${batchId}`);
  const done = await untilStatus(batchId, ['completed', 'failed', 'cancelled']);
  expect({ status: done.get('status'), total: done.get('totalMemories'), processed: done.get('processedMemories'), failed: done.get('failedMemories') }).toEqual({
    status: 'completed',
    total: 400,
    processed: 400,
    failed: 0,
  });
  expect(done.get('partCount')).toBe(4);
  expect(await countMemories(batchId)).toBe(400);
  expect(await duplicateMemories(batchId)).toBe(0);
  // The parts were told to the workflow as counts: nothing of the memories went through Temporal.
  const runs = await batchWorkflowRuns(await temporal(), batchId);
  const texts = runs.flatMap((run) => textsIn(run.events));
  expect(texts.filter((text) => text.includes('Memory 1:'))).toEqual([]);
  const figures = historyFigures(runs);
  expect(figures.longestHistory).toBeLessThan(4096);
  expect(figures.largestPayload).toBeLessThan(4096);
});

test('a bad line after the first part: 400 naming the line, field and batch; the batch ends failed holding exactly the memories before it', async () => {
  const owner = await newUser('early-bad');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  await upload.write(lines(batchOf(0, 130)));
  const batchId = (await batchOfUser(owner)).id as string;
  await upload.write(`${JSON.stringify({ content: 5 })}\n`);
  await upload.write(lines(batchOf(131, 20)));
  upload.end();
  const answer = await upload.answer;
  expect(answer.status).toBe(400);
  expect(answer.body.error).toMatchObject({ code: 'invalid_request', batch_id: batchId, details: [expect.objectContaining({ index: 130, field: 'content', path: 'memories[130].content' })] });
  expect(answer.body.error.message).toMatch(/memories\[130\]\.content/);
  expect(answer.body.error.message).toContain(`batch ${batchId} holds the 130 memories before it`);
  expect(await openApiProblems('ErrorResponse', answer.body)).toEqual([]);

  const done = await untilStatus(batchId, ['completed', 'failed', 'cancelled']);
  expect({ status: done.get('status'), total: done.get('totalMemories'), processed: done.get('processedMemories'), failed: done.get('failedMemories') }).toEqual({
    status: 'failed',
    total: 130,
    processed: 130,
    failed: 0,
  });
  expect(done.get('error')).toMatch(/^the upload broke after 130 memories, which the batch holds: .*memories\[130\]\.content/);
  expect(await countMemories(batchId)).toBe(130);
  expect(await duplicateMemories(batchId)).toBe(0);
});

test.each([
  ['U+0000 in a tag', `${JSON.stringify({ content: 'SECRET_TOKEN_1', tags: ['ok', 'a\u0000b'] })}\n`, /memories\[130\]\.tags\[1\] must not contain U\+0000/],
  ['a line that is not JSON', 'SECRET_TOKEN_1 is not json\n', /memories\[130\] \(line 131\) is not valid JSON/],
])('%s after the first part: the batch ends failed at that line holding the memories before it; its error quotes nothing of the line', async (_case, badLine, named) => {
  const owner = await newUser('late-refused');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  await upload.write(lines(batchOf(0, 130)));
  const batchId = (await batchOfUser(owner)).id as string;
  await upload.write(badLine);
  upload.end();
  const answer = await upload.answer;
  expect(answer.status).toBe(400);
  expect(answer.body.error.message).toMatch(named);
  const done = await untilStatus(batchId, ['completed', 'failed', 'cancelled']);
  expect({ status: done.get('status'), processed: done.get('processedMemories') }).toEqual({ status: 'failed', processed: 130 });
  expect(done.get('error')).toMatch(named);
  // The batch's error is readable by its organization's members.
  expect(done.get('error')).not.toContain('SECRET_TOKEN');
  expect(JSON.stringify(answer.body)).not.toContain('SECRET_TOKEN');
  expect(await countMemories(batchId)).toBe(130);
});

test('a bad line within the first part creates no batch at all, as without the option', async () => {
  const owner = await newUser('early-first');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading');
  await upload.write(`${lines(batchOf(0, 10))}not json\n`);
  upload.end();
  const answer = await upload.answer;
  expect(answer.status).toBe(400);
  expect(answer.body.error.batch_id).toBeUndefined();
  expect(answer.body.error.details).toEqual([expect.objectContaining({ index: 10, path: 'memories[10]' })]);
  expect(await new (parse().Query)('BatchMemoryRequest').equalTo('user', owner.user).count(master)).toBe(0);
  expect(await orphanFiles()).toEqual([]);
});

test('an upload the client breaks off ends failed, holding exactly the memories received before, all processed', async () => {
  const owner = await newUser('early-abort');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  await upload.write(lines(batchOf(0, 150)));
  const batchId = (await batchOfUser(owner)).id as string;
  // Half a line, then the client is gone.
  await upload.write(JSON.stringify(batchOf(150, 1)[0]).slice(0, 40));
  upload.abort();
  const done = await untilStatus(batchId, ['completed', 'failed', 'cancelled']);
  // The lines in flight when the connection closed may not all have been read: the batch holds those that were, each processed once.
  const total = done.get('totalMemories') as number;
  expect(total).toBeGreaterThanOrEqual(100);
  expect(total).toBeLessThanOrEqual(150);
  expect({ status: done.get('status'), processed: done.get('processedMemories'), failed: done.get('failedMemories') }).toEqual({ status: 'failed', processed: total, failed: 0 });
  expect(done.get('error')).toMatch(new RegExp(`^the upload broke after ${total} memories, which the batch holds: the client closed the connection`));
  expect(await countMemories(batchId)).toBe(total);
  expect(await duplicateMemories(batchId)).toBe(0);
});

test('an idempotent repeat: of a finished upload, answered with its batch; of one still arriving or broken off, refused naming the batch; nothing duplicated', async () => {
  const owner = await newUser('early-key');
  const body = lines(batchOf(0, 230));
  const send = async (key: string) => {
    const upload = openUpload(owner.sessionToken, 'process=while_uploading', { 'Idempotency-Key': key });
    await upload.write(body);
    upload.end();
    return upload.answer;
  };
  const batchesOfOwner = () => new (parse().Query)('BatchMemoryRequest').equalTo('user', owner.user).count(master);

  const first = await send('finished');
  expect(first.status).toBe(200);
  const again = await send('finished');
  expect(again.status).toBe(200);
  expect(again.headers['idempotent-replayed']).toBe('true');
  expect(again.body.batch_id).toBe(first.body.batch_id);
  expect(await countMemories(first.body.batch_id)).toBe(230);

  // Still arriving: a second upload with the key is refused before it stores anything.
  const open = openUpload(owner.sessionToken, 'process=while_uploading&wait=false', { 'Idempotency-Key': 'open' });
  await open.write(lines(batchOf(0, 120)));
  const openBatch = await waitFor(
    'the open upload to have its batch',
    async () => new (parse().Query)('BatchMemoryRequest').equalTo('user', owner.user).equalTo('status', 'receiving').first(master),
    60_000,
    50,
  );
  const whileOpen = await send('open');
  expect(whileOpen.status).toBe(409);
  expect(whileOpen.body.error).toMatchObject({ code: 'conflict', batch_id: openBatch.id });
  expect(whileOpen.body.error.message).toMatch(/still arriving/);
  // Broken off: the repeat is refused naming the batch, which holds what it received; the client sends the rest under a new key.
  open.abort();
  await untilStatus(openBatch.id as string, ['failed']);
  const afterBreak = await send('open');
  expect(afterBreak.status).toBe(409);
  expect(afterBreak.body.error).toMatchObject({ code: 'conflict', batch_id: openBatch.id });
  const held = (await getBatch(openBatch.id as string)).get('totalMemories') as number;
  expect(afterBreak.body.error.message).toMatch(new RegExp(`broke after ${held} memories`));

  expect(await batchesOfOwner()).toBe(2);
  expect(await countMemories(openBatch.id as string)).toBe(held);
  expect(await duplicateMemories(openBatch.id as string)).toBe(0);
  expect(await orphanFiles()).toEqual([]);
});

test('a batch cancelled while its body arrives stops: the rest of the upload is refused (409), and its counts equal the memories written', async () => {
  const owner = await newUser('early-cancel');
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  await upload.write(lines(batchOf(0, 150)));
  const batchId = (await batchOfUser(owner)).id as string;
  const cancelled = await rest(`/memory/batch/${batchId}/cancel`, { method: 'POST', token: owner.sessionToken });
  expect(cancelled.status).toBe(200);
  expect(cancelled.body.status).toBe('cancelled');
  await upload.write(lines(batchOf(150, 150)));
  upload.end();
  const answer = await upload.answer;
  expect(answer.status).toBe(409);
  expect(answer.body.error).toMatchObject({ code: 'conflict', batch_id: batchId });
  expect(answer.body.error.message).toMatch(/was cancelled while its body arrived/);
  const done = await untilStatus(batchId, ['cancelled']);
  await waitFor('the cancel to be recorded', async () => Boolean((await getBatch(batchId)).get('completedAt')), 60_000, 100);
  const final = await getBatch(batchId);
  expect(done.get('status')).toBe('cancelled');
  expect(await countMemories(batchId)).toBe(final.get('processedMemories'));
  expect(await duplicateMemories(batchId)).toBe(0);
});

test('another account reads nothing of a batch still receiving: Parse classes, REST route, events, files, LiveQuery', async () => {
  const owner = await newUser('early-owner');
  const other = await newUser('early-other');
  const P = parse();
  P.liveQueryServerURL = stackInfo().serverURL.replace(/^http/, 'ws');
  const otherSaw: string[] = [];
  const ownerSaw: string[] = [];
  const upload = openUpload(owner.sessionToken, 'process=while_uploading&wait=false');
  try {
    const subscription = await new P.Query('BatchMemoryRequest').subscribe(other.sessionToken);
    for (const event of ['create', 'update', 'enter', 'leave', 'delete']) subscription.on(event, (object: Parse.Object) => otherSaw.push(`${event} ${object.id}`));
    const ownerSubscription = await new P.Query('BatchMemoryRequest').subscribe(owner.sessionToken);
    ownerSubscription.on('update', (object: Parse.Object) => ownerSaw.push(object.get('status')));

    await upload.write(lines(batchOf(0, 150)));
    const batch = await batchOfUser(owner);
    const batchId = batch.id as string;
    await upload.write(lines(batchOf(150, 100)));
    await waitFor('the owner to see the batch receiving its parts', async () => ownerSaw.includes('receiving'), 30_000, 50);
    expect((await getBatch(batchId)).get('status')).toBe('receiving');

    const asOther = { headers: { 'X-Parse-Session-Token': other.sessionToken } };
    const refusals: Record<string, number> = {};
    for (const path of ['', '/results', '/events']) refusals[`GET ${path || '/'}`] = (await rest(`/memory/batch/${batchId}${path}`, { token: other.sessionToken })).status;
    for (const path of ['/cancel', '/retry']) refusals[`POST ${path}`] = (await rest(`/memory/batch/${batchId}${path}`, { method: 'POST', token: other.sessionToken })).status;
    const parseGet = async (path: string) => {
      const response = await fetch(`${stackInfo().serverURL}${path}`, { headers: { 'X-Parse-Application-Id': stackInfo().appId, ...asOther.headers } });
      return { status: response.status, body: await response.json().catch(() => undefined) };
    };
    const ofBatch = encodeURIComponent(JSON.stringify({ batch: { __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId } }));
    const found = {
      get: (await parseGet(`/classes/BatchMemoryRequest/${batchId}`)).status,
      find: (await parseGet('/classes/BatchMemoryRequest')).body.results.length,
      memories: (await parseGet(`/classes/Memory?where=${ofBatch}`)).body.results.length,
      parts: (await parseGet('/classes/BatchMemoryPart')).status,
      chunks: (await parseGet(`/classes/BatchMemoryChunk?where=${ofBatch}`)).status,
    };
    const parts = await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).find(master);
    expect(parts.length).toBeGreaterThan(0);
    const files: number[] = [];
    for (const part of parts) files.push((await fetch(`${stackInfo().serverURL}/files/${stackInfo().appId}/${part.get('name')}`, asOther)).status);

    expect(refusals).toEqual({ 'GET /': 404, 'GET /results': 404, 'GET /events': 404, 'POST /cancel': 404, 'POST /retry': 404 });
    expect(found).toEqual({ get: 404, find: 0, memories: 0, parts: 400, chunks: 400 });
    expect(new Set(files)).toEqual(new Set([403]));

    upload.end();
    expect((await upload.answer).status).toBe(202);
    await untilStatus(batchId, ['completed']);
    // The other account's subscription is alive: it sees an update of its own batch, and nothing of the owner's.
    const own = await rest('/memory/batch?wait=false', {
      method: 'POST',
      token: other.sessionToken,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ memories: batchOf(0, 2) }),
    });
    await waitFor('the other account to see its own batch', async () => otherSaw.some((seen) => seen.endsWith(own.body.batch_id)), 30_000, 50);
    expect(otherSaw.filter((seen) => !seen.endsWith(own.body.batch_id))).toEqual([]);
  } finally {
    upload.abort();
    await P.LiveQuery.close();
  }
});

test('process= takes only its two values, on the NDJSON route only', async () => {
  const owner = await newUser('early-option');
  const wrong = openUpload(owner.sessionToken, 'process=sometimes');
  await wrong.write(lines(batchOf(0, 1)));
  wrong.end();
  const answer = await wrong.answer;
  expect(answer.status).toBe(400);
  expect(answer.body.error.details).toEqual([expect.objectContaining({ path: 'process', message: 'must be one of after_upload, while_uploading' })]);
  const json = await rest('/memory/batch', {
    method: 'POST',
    token: owner.sessionToken,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ process: 'while_uploading', memories: batchOf(0, 1) }),
  });
  expect(json.status).toBe(400);
  expect(json.body.error.message).toMatch(/Unrecognized key: "process"/);
});
