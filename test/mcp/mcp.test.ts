/**
 * The MCP door, driven by the SDK's own client over both transports: stdio (the built `memory-batch mcp`
 * as a subprocess) and Streamable HTTP at /mcp. Tools, progress, failures, cancel, resources, refusals,
 * and the rows it stores compared with the REST route's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { RESOURCE_MAX_RESULTS } from '../../mcp/server';
import { CALL, MCP_URL, McpClients, TRANSPORTS, call, textContent, textOf } from '../support/mcpClient';
import { recordAttack, tally } from '../reliability/stackApi';
import { closeTemporal, countMemories, getBatch, master, memories, newUser, parse, untilActivitiesClosed, waitFor } from '../support/helpers';
import { postJson } from '../support/rest';
import { stackInfo } from '../support/stackInfo';

const TOOLS = ['cancel_batch', 'check_memories', 'delete_batch', 'get_batch', 'get_batch_failures', 'import_memories', 'list_batches', 'retry_failed'];
const MAX_MEMORY_SIZE = Number(stackInfo().env.MAX_MEMORY_SIZE ?? 10 * 1024 * 1024);

const mcp = new McpClients();
const { dir } = mcp;
const connect = mcp.connect.bind(mcp);
afterAll(async () => {
  await closeTemporal();
  await mcp.close();
});

function writeJsonl(name: string, items: unknown[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, items.map((item) => `${JSON.stringify(item)}\n`).join(''));
  return file;
}

async function batchesOf(user: Parse.User): Promise<number> {
  return new (parse().Query)('BatchMemoryRequest').equalTo('user', user).count(master);
}

/** A raw JSON-RPC request to /mcp, as any HTTP client could send it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function rawMcp(headers: Record<string, string>, body: unknown = { jsonrpc: '2.0', id: 1, method: 'tools/list' }): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(MCP_URL, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

describe.each(TRANSPORTS)('over %s', (transport) => {
  test('lists the eight tools with their input and output schemas, taken from the product schemas', async () => {
    const { sessionToken } = await newUser(`mcp-tools-${transport}`);
    const client = await connect(transport, sessionToken);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]));
    const importInput = byName.import_memories.inputSchema as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(Object.keys(importInput.properties).sort()).toEqual(['format', 'idempotency_key', 'memories', 'metadata', 'namespace', 'path', 'wait', 'workspace_id']);
    // The memory item is the product's: strict, content required, its limits declared.
    const item = importInput.properties.memories.items;
    expect(item.required).toEqual(['content']);
    expect(item.additionalProperties).toBe(false);
    expect(item.properties.tags.maxItems).toBe(100);
    expect(item.properties.metadata.type).toBe('object');
    expect(importInput.properties.namespace.maxLength).toBe(512);
    // The server's MAX_BATCH_SIZE is declared where the door knows it (HTTP, in process).
    expect(importInput.properties.memories.maxItems).toBe(transport === 'http' ? Number(stackInfo().env.MAX_BATCH_SIZE) : undefined);
    expect(Object.keys((byName.import_memories.outputSchema as any).properties).sort()).toEqual(['batch_id', 'error', 'failed', 'processed', 'status', 'total']); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect((byName.list_batches.inputSchema as any).properties.limit.maximum).toBe(100); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect((byName.get_batch.outputSchema as any).required).toEqual(expect.arrayContaining(['batch_id', 'status', 'total', 'created_at'])); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect((byName.get_batch_failures.outputSchema as any).properties.failures.items.required).toEqual(expect.arrayContaining(['index', 'success'])); // eslint-disable-line @typescript-eslint/no-explicit-any
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate).sort()).toEqual(['batch://{id}', 'batch://{id}/results']);
  });

  test(
    'imports 1,000 memories and sends progress that rises to 1,000; the batch is listed newest first',
    async () => {
      const { user, sessionToken } = await newUser(`mcp-import-${transport}`);
      const client = await connect(transport, sessionToken);
      const items = memories(1000, 200);
      const file = writeJsonl(`import-${transport}.jsonl`, items);
      const older = await call(client, 'import_memories', { memories: memories(2, 50), wait: true });
      expect(older.structuredContent).toMatchObject({ status: 'completed', total: 2 });

      const progress: { progress: number; total?: number }[] = [];
      // Over stdio the file is read where the server runs; over HTTP the same memories go inline.
      const source = transport === 'stdio' ? { path: file } : { memories: JSON.parse(`[${fs.readFileSync(file, 'utf8').trim().split('\n').join(',')}]`) };
      const answer = await call(client, 'import_memories', { ...source, namespace: `mcp-${transport}`, wait: true }, { ...CALL, onprogress: (p) => progress.push(p) });

      expect(answer.isError).toBeFalsy();
      expect(answer.structuredContent).toMatchObject({ status: 'completed', total: 1000, processed: 1000, failed: 0 });
      const batchId = answer.structuredContent?.batch_id as string;
      expect(textOf(answer)).toBe(`batch ${batchId}: completed, 1000 of 1000 stored, 0 failed`);
      expect(progress.length).toBeGreaterThan(0);
      // The counts reach 1,000 as the last chunk is recorded, possibly before the status says completed.
      expect(progress.at(-1)).toMatchObject({ progress: 1000, total: 1000 });
      for (let i = 1; i < progress.length; i++) expect(progress[i].progress).toBeGreaterThan(progress[i - 1].progress);
      expect(await countMemories(batchId)).toBe(1000);
      expect((await (await getBatch(batchId)).get('namespace').fetch(master)).get('name')).toBe(`mcp-${transport}`);
      expect(await batchesOf(user)).toBe(2);

      const firstPage = await call(client, 'list_batches', { limit: 1 });
      expect(firstPage.structuredContent).toMatchObject({ batches: [{ batch_id: batchId, status: 'completed', total: 1000 }], next_offset: 1 });
      const secondPage = await call(client, 'list_batches', { offset: 1, limit: 1 });
      expect(secondPage.structuredContent).toEqual({ batches: [expect.objectContaining({ batch_id: older.structuredContent?.batch_id, total: 2 })] });
    },
    10 * 60_000,
  );

  test(
    "lists a batch's failed items with index and error, a page at a time; retry_failed makes a batch of them",
    async () => {
      const { sessionToken } = await newUser(`mcp-failures-${transport}`);
      const client = await connect(transport, sessionToken);
      const items = memories(6, 80, (index) => (index === 1 || index === 4 ? { metadata: { test_reject: `bad item ${index}` } } : {}));
      const answer = await call(client, 'import_memories', { memories: items, wait: true });
      expect(answer.structuredContent).toMatchObject({ status: 'completed', total: 6, processed: 4, failed: 2 });
      const batchId = answer.structuredContent?.batch_id as string;

      const first = await call(client, 'get_batch_failures', { batch_id: batchId, limit: 1 });
      expect(first.structuredContent).toEqual({ batch_id: batchId, failures: [{ index: 1, success: false, error: expect.stringContaining('bad item 1'), code: 'rejected' }], next_offset: 1 });
      expect(textOf(first)).toMatch(/^1 failed items: \[1\] .*bad item 1.*; more from offset 1$/);
      const second = await call(client, 'get_batch_failures', { batch_id: batchId, offset: 1, limit: 1 });
      expect(second.structuredContent).toEqual({ batch_id: batchId, failures: [{ index: 4, success: false, error: expect.stringContaining('bad item 4'), code: 'rejected' }] });

      const retry = await call(client, 'retry_failed', { batch_id: batchId });
      expect(retry.isError).toBeFalsy();
      expect(retry.structuredContent).toMatchObject({ total: 2 });
      expect(retry.structuredContent?.batch_id).not.toBe(batchId);
    },
    5 * 60_000,
  );

  test(
    'delete_batch undoes an import: the batch ends deleted, its memories are gone, and a repeat answers the same',
    async () => {
      const { sessionToken } = await newUser(`mcp-delete-${transport}`);
      const client = await connect(transport, sessionToken);
      const imported = await call(client, 'import_memories', { memories: memories(12), wait: true });
      const batchId = imported.structuredContent?.batch_id as string;
      expect(await countMemories(batchId)).toBe(12);
      const answer = await call(client, 'delete_batch', { batch_id: batchId });
      expect(answer.isError).toBeFalsy();
      expect(answer.structuredContent).toMatchObject({ batch_id: batchId, status: expect.stringMatching(/^delet(ing|ed)$/), total: 12 });
      await waitFor('the batch to be deleted', async () => (await getBatch(batchId)).get('status') === 'deleted');
      expect(await countMemories(batchId)).toBe(0);
      const repeat = await call(client, 'delete_batch', { batch_id: batchId });
      expect(repeat.structuredContent).toMatchObject({ batch_id: batchId, status: 'deleted' });
    },
    5 * 60_000,
  );

  test(
    'cancels a running batch: it stops with fewer memories than it was given, and none is written after the answer',
    async () => {
      const { sessionToken } = await newUser(`mcp-cancel-${transport}`);
      const client = await connect(transport, sessionToken);
      const accepted = await call(client, 'import_memories', { memories: memories(300, 50, () => ({ metadata: { test_slow_ms: 100 } })) });
      const batchId = accepted.structuredContent?.batch_id as string;
      expect(accepted.structuredContent).toMatchObject({ total: 300 });
      await waitFor('the batch to be processing', async () => (await getBatch(batchId)).get('status') === 'processing', 60_000);

      const cancelled = await call(client, 'cancel_batch', { batch_id: batchId });
      expect(cancelled.isError).toBeFalsy();
      expect(cancelled.structuredContent).toMatchObject({ batch_id: batchId, status: 'cancelled', total: 300 });
      expect((await getBatch(batchId)).get('status')).toBe('cancelled');
      const rows = await countMemories(batchId);
      expect(rows).toBeLessThan(300);
      // Counted again once Temporal's history shows every activity of the batch closed: nothing more was written.
      await untilActivitiesClosed(batchId);
      expect(await countMemories(batchId)).toBe(rows);
      expect(cancelled.structuredContent?.processed).toBe(rows);
    },
    5 * 60_000,
  );

  test(
    'reads batch://{id} (status) and batch://{id}/results (JSON Lines)',
    async () => {
      const { sessionToken } = await newUser(`mcp-resources-${transport}`);
      const client = await connect(transport, sessionToken);
      const answer = await call(client, 'import_memories', { memories: memories(5, 60, (index) => (index === 2 ? { metadata: { test_reject: 'no' } } : {})), wait: true });
      const batchId = answer.structuredContent?.batch_id as string;

      const status = await client.readResource({ uri: `batch://${batchId}` });
      expect(status.contents).toHaveLength(1);
      expect(status.contents[0]).toMatchObject({ uri: `batch://${batchId}`, mimeType: 'application/json' });
      expect(JSON.parse(textContent(status.contents[0]))).toMatchObject({ batch_id: batchId, status: 'completed', total: 5, processed: 4, failed: 1 });

      const results = await client.readResource({ uri: `batch://${batchId}/results` });
      expect(results.contents[0].mimeType).toBe('application/x-ndjson');
      const lines = textContent(results.contents[0]).split('\n');
      expect(lines.pop()).toBe('');
      const parsed = lines.map((line) => JSON.parse(line));
      expect(parsed.map((result) => [result.index, result.success])).toEqual([
        [0, true],
        [1, true],
        [2, false],
        [3, true],
        [4, true],
      ]);
      expect(parsed[0].memory_id).toMatch(/^\w+$/);
    },
    5 * 60_000,
  );

  test(
    `batch://{id}/results answers at most ${RESOURCE_MAX_RESULTS} results, saying more exist; get_batch_failures pages past them`,
    async () => {
      const { sessionToken } = await newUser(`mcp-bounded-${transport}`);
      const client = await connect(transport, sessionToken);
      const total = RESOURCE_MAX_RESULTS + 5;
      const answer = await call(client, 'import_memories', { memories: memories(total, 40, (index) => (index === total - 1 ? { metadata: { test_reject: 'no' } } : {})), wait: true });
      const batchId = answer.structuredContent?.batch_id as string;
      const results = await client.readResource({ uri: `batch://${batchId}/results` });
      const lines = textContent(results.contents[0]).split('\n').filter(Boolean);
      expect(lines).toHaveLength(RESOURCE_MAX_RESULTS);
      expect(lines.map((line) => (JSON.parse(line) as { index: number }).index)).toEqual([...Array(RESOURCE_MAX_RESULTS).keys()]);
      expect(results.contents[0]._meta).toMatchObject({ truncated: true, shown: RESOURCE_MAX_RESULTS });
      // The one failure, past the resource's bound, is a page of get_batch_failures.
      const failures = await call(client, 'get_batch_failures', { batch_id: batchId });
      expect(failures.structuredContent).toMatchObject({ batch_id: batchId, failures: [{ index: total - 1, success: false }] });
    },
    5 * 60_000,
  );

  test(
    "refusals: another user's batch is not found; an oversized memory names its index and the limit; nothing is stored or changed",
    async () => {
      const owner = await newUser(`mcp-owner-${transport}`);
      const intruder = await newUser(`mcp-intruder-${transport}`);
      const ownerClient = await connect(transport, owner.sessionToken);
      const running = await call(ownerClient, 'import_memories', { memories: memories(100, 50, () => ({ metadata: { test_slow_ms: 200 } })) });
      const batchId = running.structuredContent?.batch_id as string;

      const client = await connect(transport, intruder.sessionToken);
      const notFound = `batch ${batchId} not found`;
      const tools = [
        ['get_batch', { batch_id: batchId }],
        ['cancel_batch', { batch_id: batchId }],
        ['retry_failed', { batch_id: batchId }],
        ['get_batch_failures', { batch_id: batchId }],
        ['delete_batch', { batch_id: batchId }],
      ] as const;
      const toolAnswers = [];
      for (const [tool, args] of tools) toolAnswers.push(await call(client, tool, args));
      const resourceAnswers: unknown[] = [];
      for (const uri of [`batch://${batchId}`, `batch://${batchId}/results`]) resourceAnswers.push(await client.readResource({ uri }).catch((error: unknown) => error));
      const listed = await call(client, 'list_batches', {});
      const status = (await getBatch(batchId)).get('status');
      const outcomes = [
        ...toolAnswers.map((answer) => (answer.isError && textOf(answer) === notFound ? 'not found' : 'answered')),
        ...resourceAnswers.map((answer) => (answer instanceof McpError && answer.message.includes(notFound) ? 'not found' : 'answered')),
      ];
      recordAttack({
        attack: `MCP over ${transport}: a second user reads, cancels, retries, deletes and reads the resources of another user's batch`,
        requests: outcomes.length,
        answers: tally(outcomes),
        refused: outcomes.every((outcome) => outcome === 'not found') && status !== 'cancelled',
      });
      toolAnswers.forEach((answer, index) => expect([tools[index][0], answer.isError, textOf(answer)]).toEqual([tools[index][0], true, notFound]));
      for (const refusal of resourceAnswers) {
        expect(refusal).toBeInstanceOf(McpError);
        expect(refusal).toMatchObject({ code: -32002, message: expect.stringContaining(notFound) });
      }
      expect(listed).toMatchObject({ structuredContent: { batches: [] } });
      expect(status).not.toBe('cancelled');

      const oversized = await call(client, 'import_memories', { memories: [{ content: 'fine' }, { content: 'x'.repeat(MAX_MEMORY_SIZE) }] });
      const stored = await batchesOf(intruder.user);
      recordAttack({
        attack: `MCP over ${transport}: a memory over MAX_MEMORY_SIZE`,
        requests: 1,
        answers: { [oversized.isError ? 'tool error' : 'accepted']: 1 },
        refused: Boolean(oversized.isError) && stored === 0,
      });
      expect(oversized.isError).toBe(true);
      expect(textOf(oversized)).toMatch(new RegExp(`^invalid batch: memories\\[1\\] is \\d+ bytes, over MAX_MEMORY_SIZE of ${MAX_MEMORY_SIZE} bytes$`));
      expect(textOf(oversized)).not.toMatch(/\n\s+at /);
      expect(stored).toBe(0);
    },
    5 * 60_000,
  );
});

test.each(TRANSPORTS)('over %s, idempotency_key: a repeat answers with the same batch and stores nothing twice', async (transport) => {
  const { user, sessionToken } = await newUser(`mcp-idempotent-${transport}`);
  const client = await connect(transport, sessionToken);
  const args = { memories: memories(3, 60), idempotency_key: `mcp-key-${transport}`, wait: true };
  const first = await call(client, 'import_memories', args);
  const again = await call(client, 'import_memories', args);
  expect(again.structuredContent).toEqual(first.structuredContent);
  expect(await batchesOf(user)).toBe(1);
  expect(await countMemories(first.structuredContent?.batch_id as string)).toBe(3);
  const other = await call(client, 'import_memories', { ...args, memories: memories(2, 60) });
  expect([other.isError, textOf(other)]).toEqual([true, 'this idempotency key was already used with a different request body; use a new key for a new batch']);
});

test('over stdio, a JSON document file is converted as it streams; a missing file is refused naming the path', async () => {
  const { sessionToken } = await newUser('mcp-json-file');
  const client = await connect('stdio', sessionToken);
  const file = path.join(dir, 'document.json');
  fs.writeFileSync(file, JSON.stringify({ memories: memories(25, 60) }));
  const answer = await call(client, 'import_memories', { path: file, wait: true });
  expect(answer.structuredContent).toMatchObject({ status: 'completed', total: 25, processed: 25 });
  expect(await countMemories(answer.structuredContent?.batch_id as string)).toBe(25);

  const missing = path.join(dir, 'no-such-file.jsonl');
  const refused = await call(client, 'import_memories', { path: missing });
  expect([refused.isError, textOf(refused)]).toEqual([true, `path: cannot read ${missing}: ENOENT`]);
  const both = await call(client, 'import_memories', { path: file, memories: memories(1) });
  expect([both.isError, textOf(both)]).toEqual([true, 'give either memories (inline) or path (a file, over stdio), not both or neither']);
});

describe('refusals of the HTTP door', () => {
  test('no token and a bad token: 401 before any MCP message is read, with WWW-Authenticate', async () => {
    const answers = [await rawMcp({}), await rawMcp({ Authorization: 'Bearer r:0123456789abcdef0123456789abcdef' }), await rawMcp({ Authorization: 'Basic dXNlcjpwYXNz' })];
    const sdkClient = new Client({ name: 'mcp-test', version: '1.0.0' });
    const sdkRefusal = (await sdkClient.connect(new StreamableHTTPClientTransport(new URL(MCP_URL))).then(
      () => undefined,
      (error: unknown) => error,
    )) as { code?: number; message?: string } | undefined;
    const statuses = [...answers.map((a) => a.status), sdkRefusal?.code ?? 200];
    recordAttack({
      attack: 'MCP over HTTP: no token, a bad session token, Basic credentials',
      requests: statuses.length,
      answers: tally(statuses),
      refused: statuses.every((status) => status === 401),
    });
    expect(answers.map((answer) => answer.status)).toEqual([401, 401, 401]);
    expect(answers[0].body).toEqual({ error: { code: 'unauthorized', message: 'authentication required: send Authorization: Bearer <session token>', details: [] } });
    expect(answers[1].body).toEqual({ error: { code: 'unauthorized', message: 'the session token is invalid or expired', details: [] } });
    expect(answers[0].headers.get('www-authenticate')).toBe('Bearer');
    expect(answers[1].headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    // The SDK's client cannot connect either.
    expect(sdkRefusal).toMatchObject({ code: 401, message: expect.stringContaining('authentication required') });
  });

  test('a file path is refused over HTTP: files are read only by the stdio server', async () => {
    const { user, sessionToken } = await newUser('mcp-path-http');
    const file = writeJsonl('over-http.jsonl', memories(3, 50));
    const client = await connect('http', sessionToken);
    const answer = await call(client, 'import_memories', { path: file });
    const stored = await batchesOf(user);
    recordAttack({
      attack: 'MCP over HTTP: import_memories with a path on the server',
      requests: 1,
      answers: { [answer.isError ? 'tool error' : 'imported']: 1 },
      refused: Boolean(answer.isError) && stored === 0,
    });
    expect(answer).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'path: files are read only by the stdio server (memory-batch mcp) on their own machine; over HTTP send the memories inline' }],
    });
    expect(stored).toBe(0);
  });

  test('a stateless door: GET and DELETE answer 405', async () => {
    const { sessionToken } = await newUser('mcp-methods');
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(MCP_URL, { method, headers: { Authorization: `Bearer ${sessionToken}`, Accept: 'text/event-stream' } });
      expect([method, response.status, response.headers.get('allow')]).toEqual([method, 405, 'POST']);
    }
  });
});

test(
  'the memories an MCP import stores are the rows, with the ACLs, that the REST route stores',
  async () => {
    const { sessionToken } = await newUser('mcp-same-rows');
    const items = memories(4, 80, (index) => ({ tags: [`tag-${index}`], source: 'mcp-compare' }));
    const settings = { namespace: 'compare' };
    const viaRest = await postJson('/memory/batch', { ...settings, memories: items, wait: true }, { token: sessionToken });
    expect(viaRest.status).toBe(200);
    const batchIds = [viaRest.body.batch_id as string];
    for (const transport of TRANSPORTS) {
      const client = await connect(transport, sessionToken);
      const answer = await call(client, 'import_memories', { ...settings, memories: items, wait: true });
      expect(answer.structuredContent).toMatchObject({ status: 'completed', processed: 4 });
      batchIds.push(answer.structuredContent?.batch_id as string);
    }
    const P = parse();
    const rowsOf = async (batchId: string) => {
      const rows = await new P.Query('Memory')
        .equalTo('batch', P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: batchId }))
        .ascending('batchIndex')
        .find(master);
      return rows.map((row) => {
        const { objectId: _id, createdAt: _created, updatedAt: _updated, batch, batchItem, ...fields } = row.toJSON();
        // What names the batch differs by batch; everything else must be the same.
        expect([batch.objectId, batchItem]).toEqual([batchId, `${batchId}:${fields.batchIndex}`]);
        return fields;
      });
    };
    const [rest, stdio, http] = await Promise.all(batchIds.map(rowsOf));
    expect(rest).toHaveLength(4);
    expect(rest[0].ACL).toBeDefined();
    expect(rest[0].content).toBe(items[0].content);
    expect(stdio).toEqual(rest);
    expect(http).toEqual(rest);
  },
  5 * 60_000,
);
