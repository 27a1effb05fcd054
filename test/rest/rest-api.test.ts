/** The REST route over real HTTP: the user story of docs/requirements.md §3, every status code, idempotency, NDJSON, results, cancel, OpenAPI. */
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { PROJECT_ROOT } from '../../scripts/stack';
import { closeTemporal, countMemories, getBatch, heldMemories, memories, newGate, newUser, orphanFiles, parse, temporal, untilActivitiesClosed, waitFor } from '../support/helpers';
import { REST, openApiProblems, postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { workflowIdFor } from '../../schema/workflow';

afterAll(closeTemporal);

const info = stackInfo();

async function expectError(answer: { status: number; body: unknown }, status: number, message: RegExp): Promise<void> {
  expect(answer.status).toBe(status);
  expect(answer.body).toMatchObject({ error: { message: expect.stringMatching(message) } });
  expect(await openApiProblems('ErrorResponse', answer.body)).toEqual([]);
}

function ndjson(items: unknown[]): string {
  return `${items.map((item) => JSON.stringify(item)).join('\n')}\n`;
}

describe('POST /api/v1/memory/batch', () => {
  test('the user story of the requirements: 100+ memories with a namespace → 200, success, one result per memory', async () => {
    const { sessionToken } = await newUser();
    const request_memories = memories(120, 300).map(({ content, metadata }) => ({ content, metadata }));
    const response = await postJson('/memory/batch', { memories: request_memories, namespace: 'historical-import' }, { token: sessionToken });
    expect(response.status).toBe(200);
    expect(response.body.success).toBe(true);
    expect(response.body.results.length).toBe(request_memories.length);
    expect(await openApiProblems('BatchMemoryResponse', response.body)).toEqual([]);
    expect(await countMemories(response.body.batch_id)).toBe(120);
  });

  test('Authorization: Bearer works like X-Parse-Session-Token; item failures answer 207', async () => {
    const { sessionToken } = await newUser();
    const response = await postJson(
      '/memory/batch',
      { memories: [{ content: 'fine' }, { content: 'bad', metadata: { test_reject: 'no' } }] },
      { headers: { Authorization: `Bearer ${sessionToken}` } },
    );
    expect(response.status).toBe(207);
    expect(response.body).toMatchObject({
      success: false,
      processed: 1,
      failed: 1,
      results: [
        { index: 0, success: true },
        { index: 1, success: false, error: 'no', code: 'rejected' },
      ],
    });
    expect(await openApiProblems('BatchMemoryResponse', response.body)).toEqual([]);
  });

  test('asked not to wait: 202 with a Location to poll until completed, then per-item results as JSON Lines', async () => {
    const { sessionToken } = await newUser();
    const accepted = await postJson('/memory/batch?wait=false', { memories: memories(300) }, { token: sessionToken });
    expect(accepted.status).toBe(202);
    const location = accepted.headers.get('Location');
    expect(location).toBe(`/api/v1/memory/batch/${accepted.body.batch_id}`);
    expect(await openApiProblems('BatchMemoryResponse', accepted.body)).toEqual([]);
    const done = await waitFor('the batch to complete', async () => {
      const polled = await rest(`/memory/batch/${accepted.body.batch_id}`, { token: sessionToken });
      expect(polled.status).toBe(200);
      return polled.body.status === 'completed' ? polled : undefined;
    });
    expect(done.body).toMatchObject({ batch_id: accepted.body.batch_id, status: 'completed', total: 300, processed: 300, failed: 0 });
    expect(await openApiProblems('BatchStatusResponse', done.body)).toEqual([]);
    const results = await rest(`/memory/batch/${accepted.body.batch_id}/results`, { token: sessionToken });
    expect(results.status).toBe(200);
    expect(results.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    const lines = results.text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.map((r) => r.index)).toEqual([...Array(300).keys()]);
    for (const line of lines.slice(0, 5)) expect(await openApiProblems('MemoryProcessingResult', line)).toEqual([]);
  });

  test('Prefer: respond-async also answers at once; results of an unfinished batch are 409', async () => {
    const { sessionToken } = await newUser();
    const accepted = await postJson('/memory/batch', { memories: memories(2000, 100) }, { token: sessionToken, headers: { Prefer: 'respond-async' } });
    expect(accepted.status).toBe(202);
    await expectError(await rest(`/memory/batch/${accepted.body.batch_id}/results`, { token: sessionToken }), 409, /has not finished/);
  });

  test('400: invalid input names the item index, field and limit; malformed JSON too; nothing stored', async () => {
    const user = await newUser();
    const invalid = await postJson('/memory/batch', { memories: [{ content: 'ok' }, { content: 'x', tags: 'not-a-list' }, { content: '' }] }, { token: user.sessionToken });
    await expectError(invalid, 400, /memories\[1\]\.tags must be an array of strings; memories\[2\]\.content must not be empty/);
    expect(invalid.body.error.details).toEqual([
      { path: 'memories[1].tags', index: 1, field: 'tags', message: 'must be an array of strings' },
      { path: 'memories[2].content', index: 2, field: 'content', message: 'must not be empty' },
    ]);
    await expectError(await rest('/memory/batch', { method: 'POST', token: user.sessionToken, headers: { 'Content-Type': 'application/json' }, body: '{"memories": [' }), 400, /not valid JSON/);
    await expectError(await postJson('/memory/batch', { memories: [{ content: 'ok' }], webhook_url: 'ftp://x' }, { token: user.sessionToken }), 400, /webhook_url must be an http\(s\) URL/);
    expect(await new (parse().Query)('BatchMemoryRequest').equalTo('user', user.user).count({ useMasterKey: true })).toBe(0);
  });

  test('401 without or with a bad session; the master key acts for a named user', async () => {
    await expectError(await postJson('/memory/batch', { memories: [{ content: 'x' }] }), 401, /authentication required/);
    await expectError(await postJson('/memory/batch', { memories: [{ content: 'x' }] }, { token: 'r:not-a-session' }), 401, /invalid or expired/);
    await expectError(await postJson('/memory/batch', { memories: [{ content: 'x' }] }, { headers: { 'X-Parse-Master-Key': 'wrong-key-wrong-key' } }), 401, /master key is not accepted/);
    const owner = await newUser();
    const asMaster = await postJson('/memory/batch', { memories: [{ content: 'x' }], user_id: owner.id }, { headers: { 'X-Parse-Master-Key': info.masterKey } });
    expect(asMaster.status).toBe(200);
    expect((await getBatch(asMaster.body.batch_id)).get('user').id).toBe(owner.id);
  });

  test("404 for another user's batch, on every batch path, without revealing it exists", async () => {
    const owner = await newUser();
    const other = await newUser();
    const { body } = await postJson('/memory/batch', { memories: [{ content: 'private' }] }, { token: owner.sessionToken });
    for (const [method, path] of [
      ['GET', ''],
      ['GET', '/results'],
      ['GET', '/events'],
      ['POST', '/cancel'],
    ]) {
      await expectError(await rest(`/memory/batch/${body.batch_id}${path}`, { method, token: other.sessionToken }), 404, new RegExp(`batch ${body.batch_id} not found`));
    }
    await expectError(await rest('/memory/batch/nonexistent1', { token: other.sessionToken }), 404, /not found/);
  });

  test('idempotency: same key and body replay the same batch; same key, different body → 409', async () => {
    const { sessionToken } = await newUser();
    const headers = { 'Idempotency-Key': 'rest-import-1' };
    const first = await postJson('/memory/batch', { memories: memories(20) }, { token: sessionToken, headers });
    const replay = await postJson('/memory/batch', { memories: memories(20) }, { token: sessionToken, headers });
    expect(first.status).toBe(200);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expect(replay.headers.get('Idempotent-Replayed')).toBe('true');
    expect(await countMemories(first.body.batch_id)).toBe(20);
    await expectError(await postJson('/memory/batch', { memories: memories(21) }, { token: sessionToken, headers }), 409, /different request body/);
  });

  test('413: over MAX_BATCH_SIZE, over the JSON body limit, and an NDJSON line over MAX_MEMORY_SIZE, each naming the limit', async () => {
    const { sessionToken } = await newUser();
    const max = Number(info.env.MAX_BATCH_SIZE);
    const tooMany = await postJson('/memory/batch', { memories: Array.from({ length: max + 1 }, () => ({ content: 'm' })) }, { token: sessionToken });
    await expectError(tooMany, 413, new RegExp(`at most MAX_BATCH_SIZE = ${max}`));
    const limit = Number(info.env.REST_MAX_JSON_BYTES);
    const huge = await rest('/memory/batch', { method: 'POST', token: sessionToken, headers: { 'Content-Type': 'application/json' }, body: `{"memories":[{"content":"${'a'.repeat(limit)}"}]}` });
    await expectError(huge, 413, new RegExp(`REST_MAX_JSON_BYTES = ${limit} bytes`));
    const bigLine = await rest('/memory/batch', {
      method: 'POST',
      token: sessionToken,
      headers: { 'Content-Type': 'application/x-ndjson' },
      body: ndjson([{ content: 'ok' }, { content: 'b'.repeat(10 * 1024 * 1024 + 1) }]),
    });
    await expectError(bigLine, 413, /memories\[1\] is 10485775 bytes, over MAX_MEMORY_SIZE of 10485760 bytes/);
    expect(bigLine.body.error.details[0]).toMatchObject({ index: 1, limit: 10485760 });
    await expect(orphanFiles()).resolves.toEqual([]);
  });

  test('415 for an unsupported Content-Type or Content-Encoding', async () => {
    const { sessionToken } = await newUser();
    await expectError(await rest('/memory/batch', { method: 'POST', token: sessionToken, headers: { 'Content-Type': 'text/plain' }, body: 'hello' }), 415, /Content-Type must be/);
    await expectError(
      await rest('/memory/batch', { method: 'POST', token: sessionToken, headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'br' }, body: 'x' }),
      415,
      /Content-Encoding br is not supported/,
    );
  });
});

describe('NDJSON uploads', () => {
  test('a gzip NDJSON upload is stored part by part and processed, options from the query', async () => {
    const { sessionToken } = await newUser();
    const body = gzipSync(ndjson(memories(1500, 200)));
    const response = await rest('/memory/batch?namespace=ndjson-import', {
      method: 'POST',
      token: sessionToken,
      headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' },
      body,
    });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ success: true, total: 1500, processed: 1500, failed: 0 });
    const batch = await getBatch(response.body.batch_id);
    expect(batch.get('partCount')).toBe(15);
    expect((await batch.get('namespace').fetch({ useMasterKey: true })).get('name')).toBe('ndjson-import');
  });

  test.each([
    ['a bad line', ndjson([{ content: 'ok' }, { content: 'ok' }]) + '{"content": \n', 400, /memories\[2\] \(line 3\) is not valid JSON/],
    ['an invalid memory', ndjson([{ content: 'ok' }, { content: 'ok', tags: [1] }]), 400, /memories\[1\]\.tags\[0\] must be a string/],
    ['a prototype key', '{"content":"ok","metadata":{"__proto__":{"x":1}}}\n', 400, /memories\[0\]\.metadata\.__proto__ is not an allowed key/],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"content":"ok"}\n{"content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]), 400, /memories\[1\] \(line 2\) is not valid UTF-8/],
    ['an empty body', '', 400, /at least 1 memory/],
  ])('%s is refused with its line and nothing is left stored', async (_name, body, status, message) => {
    const user = await newUser();
    await expectError(await rest('/memory/batch', { method: 'POST', token: user.sessionToken, headers: { 'Content-Type': 'application/x-ndjson' }, body }), status, message);
    expect(await new (parse().Query)('BatchMemoryRequest').equalTo('user', user.user).count({ useMasterKey: true })).toBe(0);
    await expect(orphanFiles()).resolves.toEqual([]);
  });

  test.each([
    ['garbled gzip', Buffer.from('this is not gzip at all')],
    ['truncated gzip', gzipSync(ndjson(memories(500))).subarray(0, 2000)],
  ])('%s is refused with 400 and nothing is left stored', async (_name, body) => {
    const user = await newUser();
    const answer = await rest('/memory/batch', { method: 'POST', token: user.sessionToken, headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' }, body });
    await expectError(answer, 400, /not valid gzip/);
    expect(await new (parse().Query)('BatchMemoryRequest').equalTo('user', user.user).count({ useMasterKey: true })).toBe(0);
    await expect(orphanFiles()).resolves.toEqual([]);
  });
});

test('POST /api/v1/memory/batch/:id/cancel stops a running batch in the middle of its parts: cancelled, no memory written after the answer', async () => {
  const { sessionToken } = await newUser();
  const accepted = await postJson('/memory/batch?wait=false', { memories: heldMemories(400, newGate()) }, { token: sessionToken });
  await waitFor('the first memories to be written', async () => (await countMemories(accepted.body.batch_id)) > 0, 60_000);
  const cancelled = await rest(`/memory/batch/${accepted.body.batch_id}/cancel`, { method: 'POST', token: sessionToken });
  expect(cancelled.status).toBe(200);
  expect(cancelled.body.status).toBe('cancelled');
  expect(await openApiProblems('BatchMemoryResponse', cancelled.body)).toEqual([]);
  const rows = await countMemories(accepted.body.batch_id);
  expect((await (await temporal()).workflow.getHandle(workflowIdFor(accepted.body.batch_id)).describe()).status.name).toBe('CANCELLED');
  expect(rows).toBeLessThan(400);
  // Counted again once Temporal's history shows every activity closed (some stopped mid-part by the cancel).
  const activities = await untilActivitiesClosed(accepted.body.batch_id);
  expect(activities.cancelled).toBeGreaterThan(0);
  expect(await countMemories(accepted.body.batch_id)).toBe(rows);
  expect(cancelled.body.processed).toBe(rows);
});

test('the OpenAPI 3.1 document is served and describes every path', async () => {
  const document = await rest('/openapi.json');
  expect(document.status).toBe(200);
  expect(document.body.openapi).toBe('3.1.0');
  expect(Object.keys(document.body.paths).sort()).toEqual([
    '/api/v1/memory/batch',
    '/api/v1/memory/batch/{id}',
    '/api/v1/memory/batch/{id}/cancel',
    '/api/v1/memory/batch/{id}/events',
    '/api/v1/memory/batch/{id}/results',
    '/api/v1/memory/batch/{id}/retry',
  ]);
  // OpenAPI requires a description of every response; and the answers the routes give are documented.
  const responses = Object.entries(document.body.paths as Record<string, Record<string, { responses: Record<string, { description?: string }> }>>).flatMap(([route, operations]) =>
    Object.entries(operations).flatMap(([method, { responses: byCode }]) =>
      Object.entries(byCode).map(([code, response]) => ({ at: `${method} ${route} ${code}`, described: Boolean(response.description) })),
    ),
  );
  expect(responses.filter(({ described }) => !described)).toEqual([]);
  const codes = (method: string, route: string) => Object.keys(document.body.paths[route][method].responses);
  expect(codes('post', '/api/v1/memory/batch')).toEqual(expect.arrayContaining(['403', '408']));
  for (const route of ['/api/v1/memory/batch/{id}/results', '/api/v1/memory/batch/{id}/cancel', '/api/v1/memory/batch/{id}/retry']) {
    expect(codes(route.endsWith('results') ? 'get' : 'post', route)).toEqual(expect.arrayContaining(['403', '404']));
  }
});

test('the OpenAPI document is valid OpenAPI 3.1, as a validator library checks it', () => {
  // The validator is an ES module: it runs in a Node.js process of its own on the document the route serves.
  const script = `
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const document = await (await fetch(process.argv[1])).json();
    const validator = new Validator();
    const result = await validator.validate(document);
    process.stdout.write(JSON.stringify({ valid: result.valid, version: validator.version, errors: result.errors ?? [] }));`;
  const checked = execFileSync(process.execPath, ['--input-type=module', '-e', script, `${REST}/openapi.json`], { cwd: PROJECT_ROOT, encoding: 'utf8' });
  expect(JSON.parse(checked)).toEqual({ valid: true, version: '3.1', errors: [] });
});
