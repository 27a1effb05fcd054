/**
 * A dry run (`?dry_run=true` on the REST route, `dry_run: true` to the Cloud Function) validates a body exactly as a
 * submit would, NDJSON of any size streamed line by line, and answers 200 with the total and every problem (index,
 * field, message; the first DRY_RUN_MAX_PROBLEMS named, all counted), with nothing stored and nothing started: the
 * user has no batch and no memory afterwards, and no file is left in storage without a batch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { DRY_RUN_MAX_PROBLEMS, type DryRunResponse } from '../../schema/memory';
import { newUser, orphanFiles, parse, storedBy } from '../support/helpers';
import { openApiProblems, postJson, rest } from '../support/rest';
import { McpClients, call } from '../support/mcpClient';

const mcp = new McpClients();
afterAll(() => mcp.close());

const where = (problems: DryRunResponse['problems']) => problems.map(({ index, field }) => ({ index, field }));

test('a valid JSON body: 200, valid, its total, nothing stored', async () => {
  const owner = await newUser('dry-run-valid');
  const answer = await postJson('/memory/batch?dry_run=true', { memories: [{ content: 'a' }, { content: 'b', custom_id: 'b' }], namespace: 'dry' }, { token: owner.sessionToken });
  expect({ status: answer.status, body: answer.body }).toEqual({ status: 200, body: { dry_run: true, valid: true, total: 2, problems: [], problems_count: 0 } });
  expect(await openApiProblems('DryRunResponse', answer.body)).toEqual([]);
  expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
});

test('a JSON body with problems: every one named by index and field, as a submit would refuse them; the Cloud Function agrees', async () => {
  const owner = await newUser('dry-run-problems');
  const body = {
    memories: [{ content: 'fine' }, { content: 'a\u0000b' }, { content: 'x', custom_id: 'same' }, { content: 'y', custom_id: 'same' }, { content: '' }],
    webhook_url: 'https://example.com/hook',
  };
  const answer = await postJson('/memory/batch?dry_run=true', body, { token: owner.sessionToken });
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ dry_run: true, valid: false, total: 5, problems_count: 4 });
  expect(where(answer.body.problems)).toEqual(
    expect.arrayContaining([
      { index: 1, field: 'content' },
      { index: 3, field: 'custom_id' },
      { index: 4, field: 'content' },
      { index: undefined, field: 'webhook_secret' },
    ]),
  );
  // What a submit of the same body answers: the same problems.
  const submitted = await postJson('/memory/batch', body, { token: owner.sessionToken });
  expect(submitted.status).toBe(400);
  expect(where(submitted.body.error.details).sort((a, b) => String(a.field).localeCompare(String(b.field)))).toEqual(
    where(answer.body.problems).sort((a: { field?: string }, b: { field?: string }) => String(a.field).localeCompare(String(b.field))),
  );
  const viaCloud = (await parse().Cloud.run('addMemoryBatch', { ...body, dry_run: true }, { sessionToken: owner.sessionToken })) as DryRunResponse;
  expect(viaCloud).toEqual(answer.body);
  expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
});

test('a 1,000,000-line gzip NDJSON body is read to its end: its total and its three bad lines, and nothing is stored', async () => {
  const owner = await newUser('dry-run-million');
  const TOTAL = 1_000_000;
  const bad = new Map<number, string>([
    [10, '{"content":"nul \\u0000 here"}'],
    [500_000, '{"content": not json'],
    [999_999, '{"content":"ok","custom_id":""}'],
  ]);
  const lines = Array.from({ length: TOTAL }, (_, i) => bad.get(i) ?? `{"content":"memory ${i}"}`);
  const answer = await rest('/memory/batch?dry_run=true&namespace=dry-million', {
    method: 'POST',
    token: owner.sessionToken,
    headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' },
    body: gzipSync(`${lines.join('\n')}\n`),
  });
  expect(answer.status).toBe(200);
  expect({ ...answer.body, problems: where(answer.body.problems) }).toEqual({
    dry_run: true,
    valid: false,
    total: TOTAL,
    problems: [
      { index: 10, field: 'content' },
      { index: 500_000, field: undefined },
      { index: 999_999, field: 'custom_id' },
    ],
    problems_count: 3,
  });
  expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  expect(await orphanFiles()).toEqual([]);
}, 300_000);

test(`problems past ${DRY_RUN_MAX_PROBLEMS} are counted, not named; a bad option in the query string is one`, async () => {
  const owner = await newUser('dry-run-many');
  const body = `${Array.from({ length: 250 }, () => '{"content":""}').join('\n')}\n`;
  const answer = await rest('/memory/batch?dry_run=true&process=sometime', { method: 'POST', token: owner.sessionToken, headers: { 'Content-Type': 'application/x-ndjson' }, body });
  expect(answer.status).toBe(200);
  expect({ total: answer.body.total, named: answer.body.problems.length, counted: answer.body.problems_count, first: answer.body.problems[0].path }).toEqual({
    total: 250,
    named: DRY_RUN_MAX_PROBLEMS,
    counted: 251,
    first: 'process',
  });
  // No session: refused as a submit is.
  expect((await rest('/memory/batch?dry_run=true', { method: 'POST', headers: { 'Content-Type': 'application/x-ndjson' }, body })).status).toBe(401);
});

test('MCP check_memories is the dry run of import_memories: inline over HTTP, a file over stdio; nothing stored', async () => {
  const owner = await newUser('dry-run-mcp');
  const items = [{ content: 'fine' }, { content: '' }, { content: 'x', custom_id: 'same' }, { content: 'y', custom_id: 'same' }];
  const overHttp = await call(await mcp.connect('http', owner.sessionToken), 'check_memories', { memories: items, namespace: 'dry' });
  const file = path.join(mcp.dir, 'check.jsonl');
  fs.writeFileSync(file, `${items.map((item) => JSON.stringify(item)).join('\n')}\n`);
  const overStdio = await call(await mcp.connect('stdio', owner.sessionToken), 'check_memories', { path: file });
  for (const answer of [overHttp, overStdio]) {
    expect(answer.isError ? answer.content : undefined).toBeUndefined();
    expect({ ...answer.structuredContent, problems: where(answer.structuredContent?.problems) }).toEqual({
      dry_run: true,
      valid: false,
      total: 4,
      problems: [
        { index: 1, field: 'content' },
        { index: 3, field: 'custom_id' },
      ],
      problems_count: 2,
    });
  }
  expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
});
