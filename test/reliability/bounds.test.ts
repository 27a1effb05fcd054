/**
 * Bounds on every input, tried as a hostile client would: a gzip bomb of blank lines, a body that
 * inflates too much, a body that trickles in, more uploads and event streams at once than allowed,
 * bulk writes without the master key, and malformed JSON on every product route. Each is refused at
 * once with the status and the setting that says so, and nothing is stored.
 * Low limits on a private stack (its Parse Server's CPU is this file's alone); the error shapes on the shared one.
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { waitFor } from '../../scripts/processes';
import { MASTER_KEY_REFUSED } from '../../cloud/auth';
import { BULK_WRITE_PATH } from '../../schema/batchFile';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackInfo } from '../support/stackInfo';
import { recordAttack, recordAttackChecked, stackApi, tally } from './stackApi';

const LIMITS = {
  // The inflate ratio is checked past the longest allowed line (2 × MAX_MEMORY_SIZE + 1 KiB) or 1 MiB: here 1 MiB.
  MAX_MEMORY_SIZE: 64 * 1024,
  REST_MAX_UPLOADS: 3,
  REST_MAX_UPLOADS_PER_USER: 2,
  REST_MAX_EVENT_STREAMS: 3,
  REST_MAX_EVENT_STREAMS_PER_USER: 2,
};
const BODY_TIMEOUT_MS = 5_000;
const EVENT_STREAM_MAX_AGE_MS = 12_000;
const CLOCK_TICKS = Number(execSync('getconf CLK_TCK').toString().trim());

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let origin: string;

beforeAll(async () => {
  stack = await startPrivateStack('bounds', {
    ...Object.fromEntries(Object.entries(LIMITS).map(([key, value]) => [key, String(value)])),
    REST_BODY_TIMEOUT: String(BODY_TIMEOUT_MS),
    REST_EVENT_STREAM_MAX_AGE: String(EVENT_STREAM_MAX_AGE_MS),
  });
  api = stackApi(stack.info);
  origin = stack.info.serverURL.replace(/\/parse$/, '');
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** User plus system CPU seconds a process has used (/proc/<pid>/stat fields 14 and 15). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A request whose body the test sends piece by piece (or never), on its own connection. */
function openRequest(url: string, options: { method?: string; headers: Record<string, string | number>; localAddress?: string }) {
  const request = http.request(url, { method: options.method ?? 'POST', headers: options.headers, agent: false, localAddress: options.localAddress });
  // A refused request's connection closes while the test may still be writing: that is the point.
  request.on('error', () => undefined);
  const headers = new Promise<{ status: number; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    request.once('response', (response) => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
    request.once('close', () => reject(new Error('the connection closed without an answer')));
  });
  headers.catch(() => undefined);
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    request.once('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (piece: string) => (text += piece));
      const done = () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: kept as text
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, body });
      };
      response.once('end', done);
      response.once('aborted', done);
      response.once('error', done);
    });
    request.once('close', () => reject(new Error('the connection closed without an answer')));
  });
  answer.catch(() => undefined);
  request.flushHeaders();
  return {
    /** The status line and headers, as soon as they arrive (an event stream's never end). */
    headers,
    answer,
    /** Resolves with the answer if it came within `ms`, else undefined. */
    answeredWithin: (ms: number) => Promise.race([answer, new Promise<undefined>((resolve) => setTimeout(resolve, ms))]),
    write: (data: string | Buffer) => request.write(data),
    end: (data?: string | Buffer) => request.end(data),
    abort: () => request.destroy(),
  };
}

const ndjsonHeaders = (token: string, extra: Record<string, string> = {}) => ({ 'X-Parse-Session-Token': token, 'Content-Type': 'application/x-ndjson', ...extra });
const upload = (token: string, query = 'wait=false') => openRequest(`${origin}/api/v1/memory/batch?${query}`, { headers: ndjsonHeaders(token) });
const eventStream = (batchId: string, auth: Record<string, string>) => openRequest(`${origin}/api/v1/memory/batch/${batchId}/events`, { method: 'GET', headers: auth });

async function batchesOf(userId: string): Promise<number> {
  return api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: userId } });
}

test('a 65 KB gzip body of one memory and 64 MiB of newlines is refused (413, MAX_STREAM_BATCH_SIZE) within 2 s of server CPU; nothing stored', async () => {
  const user = await api.signUp('bomb');
  const bomb = gzipSync(Buffer.concat([Buffer.from('{"content":"the only memory"}\n'), Buffer.alloc(64 * 1024 * 1024, 0x0a)]), { level: 9 });
  expect(bomb.length).toBeLessThan(70 * 1024);
  const filesBefore = (await api.storedFiles()).length;
  const cpuBefore = cpuSeconds(stack.info.serverPid);
  const answer = await api.call('/api/v1/memory/batch?wait=false', { token: user.token, headers: ndjsonHeaders(user.token, { 'Content-Encoding': 'gzip' }), raw: new Uint8Array(bomb) });
  const cpu = cpuSeconds(stack.info.serverPid) - cpuBefore;
  process.stdout.write(`gzip bomb of ${bomb.length} bytes: answered ${answer.status} after ${cpu.toFixed(2)} s of server CPU\n`);
  expect(answer.status).toBe(413);
  expect(answer.body.error).toMatchObject({ code: 'too_large', details: [expect.objectContaining({ limit: 1_000_000 })] });
  expect(answer.body.error.message).toContain('MAX_STREAM_BATCH_SIZE = 1000000 lines');
  expect(cpu).toBeLessThan(2);
  expect(await batchesOf(user.id)).toBe(0);
  expect((await api.storedFiles()).length).toBe(filesBefore);
  recordAttack({ attack: 'gzip bomb: 65 KB of gzip holding one memory and 64 MiB of blank lines', requests: 1, answers: tally([answer.status]), refused: answer.status === 413 && cpu < 2 });
});

test('a gzip body that inflates over REST_MAX_INFLATE_RATIO (valid memories, under every other bound) is refused with 413; nothing stored', async () => {
  const user = await api.signUp('inflate');
  const inflated = `${Array.from({ length: 64 }, () => `{"content":"${'a'.repeat(60_000)}"}`).join('\n')}\n`;
  const body = gzipSync(inflated, { level: 9 });
  const filesBefore = (await api.storedFiles()).length;
  const cpuBefore = cpuSeconds(stack.info.serverPid);
  const answer = await api.call('/api/v1/memory/batch?wait=false', { token: user.token, headers: ndjsonHeaders(user.token, { 'Content-Encoding': 'gzip' }), raw: new Uint8Array(body) });
  const cpu = cpuSeconds(stack.info.serverPid) - cpuBefore;
  expect(answer.status).toBe(413);
  expect(answer.body.error).toMatchObject({ code: 'too_large', details: [expect.objectContaining({ path: 'body', limit: 100 })] });
  expect(answer.body.error.message).toBe('request body inflates more than REST_MAX_INFLATE_RATIO = 100 times its compressed size');
  expect(cpu).toBeLessThan(2);
  expect(await batchesOf(user.id)).toBe(0);
  expect((await api.storedFiles()).length).toBe(filesBefore);
  recordAttack({
    attack: `gzip body inflating ${Math.round(inflated.length / body.length)} times (over REST_MAX_INFLATE_RATIO)`,
    requests: 1,
    answers: tally([answer.status]),
    refused: answer.status === 413,
  });
});

test('a body that trickles in (NDJSON and JSON) is answered 408 naming REST_BODY_TIMEOUT; nothing stored', async () => {
  const user = await api.signUp('trickle');
  const filesBefore = (await api.storedFiles()).length;
  const trickles = [
    { kind: 'NDJSON', request: upload(user.token), first: '{"content":"a first memory arrives"}\n{"content":"' },
    {
      kind: 'JSON',
      request: openRequest(`${origin}/api/v1/memory/batch`, { headers: { 'X-Parse-Session-Token': user.token, 'Content-Type': 'application/json' } }),
      first: '{"memories":[{"content":"',
    },
  ];
  const timers = trickles.map(({ request, first }) => {
    request.write(first);
    return setInterval(() => request.write('x'), 200);
  });
  let answers: RawAnswer[];
  try {
    answers = await Promise.all(trickles.map(({ request }) => request.answer));
  } finally {
    for (const timer of timers) clearInterval(timer);
  }
  for (const answer of answers) {
    expect(answer.status).toBe(408);
    expect(answer.headers.connection).toBe('close');
    expect(answer.body.error).toMatchObject({
      code: 'timeout',
      message: `request body did not arrive within REST_BODY_TIMEOUT = ${BODY_TIMEOUT_MS} ms`,
      details: [expect.objectContaining({ limit: BODY_TIMEOUT_MS })],
    });
  }
  expect(await batchesOf(user.id)).toBe(0);
  expect((await api.storedFiles()).length).toBe(filesBefore);
  recordAttack({ attack: 'slow-trickle body (a byte every 200 ms), NDJSON and JSON', requests: 2, answers: tally(answers.map((a) => a.status)), refused: answers.every((a) => a.status === 408) });
}, 60_000);

/** Opens uploads at once, each sending a first line and holding its body open; resolves once one of them is answered. */
async function heldUploads(tokens: string[]) {
  const requests = tokens.map((token) => upload(token));
  for (const request of requests) request.write('{"content":"held open"}\n');
  const first = await Promise.race(requests.map((request, index) => request.answer.then((answer) => ({ index, answer }))));
  return { requests, refused: first.index, refusal: first.answer };
}

test('uploads per user and in total: N + 1 at once gets exactly one 429 with Retry-After naming the setting; after the others end a new one is accepted', async () => {
  const [a, b, c, d] = await Promise.all(['uploads-a', 'uploads-b', 'uploads-c', 'uploads-d'].map((name) => api.signUp(name)));
  const statuses: number[] = [];

  // One user, REST_MAX_UPLOADS_PER_USER + 1 at once.
  const perUser = await heldUploads(Array.from({ length: LIMITS.REST_MAX_UPLOADS_PER_USER + 1 }, () => a.token));
  expect(perUser.refusal.status).toBe(429);
  expect(perUser.refusal.headers['retry-after']).toBe('5');
  expect(perUser.refusal.body.error.code).toBe('rate_limited');
  expect(perUser.refusal.body.error.message).toContain(`(REST_MAX_UPLOADS_PER_USER = ${LIMITS.REST_MAX_UPLOADS_PER_USER})`);
  const held = perUser.requests.filter((_, index) => index !== perUser.refused);
  for (const request of held) request.end();
  const finished = await Promise.all(held.map((request) => request.answer));
  statuses.push(perUser.refusal.status, ...finished.map((answer) => answer.status));
  expect(finished.map((answer) => answer.status)).toEqual(held.map(() => 202));
  const again = upload(a.token);
  again.end('{"content":"after the others ended"}\n');
  statuses.push((await again.answer).status);
  expect((await again.answer).status).toBe(202);
  expect(await batchesOf(a.id)).toBe(LIMITS.REST_MAX_UPLOADS_PER_USER + 1);

  // Several users, REST_MAX_UPLOADS + 1 at once, none over its own bound.
  const total = await heldUploads([b.token, c.token, d.token, b.token]);
  expect(total.refusal.status).toBe(429);
  expect(total.refusal.headers['retry-after']).toBe('5');
  expect(total.refusal.body.error.message).toContain(`(REST_MAX_UPLOADS = ${LIMITS.REST_MAX_UPLOADS})`);
  const others = total.requests.filter((_, index) => index !== total.refused);
  for (const request of others) request.end();
  const done = await Promise.all(others.map((request) => request.answer));
  statuses.push(total.refusal.status, ...done.map((answer) => answer.status));
  expect(done.map((answer) => answer.status)).toEqual(others.map(() => 202));
  const afterTotal = upload(c.token);
  afterTotal.end('{"content":"after the others ended"}\n');
  statuses.push((await afterTotal.answer).status);
  expect((await afterTotal.answer).status).toBe(202);

  const refusals = statuses.filter((status) => status === 429).length;
  recordAttack({ attack: 'more concurrent uploads than REST_MAX_UPLOADS_PER_USER / REST_MAX_UPLOADS', requests: statuses.length, answers: tally(statuses), refused: refusals === 2 });
  expect(refusals).toBe(2);
});

/** One MCP tool call over HTTP as `token`'s user; the answer's text (JSON, or server-sent events). */
async function mcpToolCall(token: string, name: string, args: Record<string, unknown>): Promise<string> {
  const call = openRequest(`${origin}/mcp`, {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
  });
  call.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }));
  return (await call.answer).text;
}

test("the MCP door's imports and retries, the Cloud Functions' submits and retries, and the REST route's retries take the user's upload slots too", async () => {
  const user = await api.signUp('mcp-slots');
  // A finished batch with a failed item, to retry.
  const finished = await api.call('/api/v1/memory/batch', { token: user.token, body: { memories: [{ content: 'kept' }, { content: 'refused', metadata: { test_reject: 'refused' } }] } });
  expect(finished.body.status).toBe('completed');

  // The user's slots held by stalled uploads (the one past the bound is refused, so the others hold theirs).
  const held = await heldUploads(Array.from({ length: LIMITS.REST_MAX_UPLOADS_PER_USER + 1 }, () => user.token));
  expect(held.refusal.status).toBe(429);
  const outcomes: string[] = [];
  await recordAttackChecked(
    () => ({ attack: 'work through the MCP door, the Cloud Functions and REST retries while the user holds every upload slot', requests: outcomes.length, answers: tally(outcomes) }),
    async () => {
      const mcpImport = await mcpToolCall(user.token, 'import_memories', { memories: [{ content: 'one more' }] });
      const mcpRetry = await mcpToolCall(user.token, 'retry_failed', { batch_id: finished.body.batch_id });
      const restRetry = await api.call(`/api/v1/memory/batch/${finished.body.batch_id}/retry`, { token: user.token, method: 'POST' });
      const functionSubmit = await api.call('/parse/functions/addMemoryBatch', { token: user.token, body: { memories: [{ content: 'one more' }] } });
      const functionRetry = await api.call('/parse/functions/retryMemoryBatch', { token: user.token, body: { batch_id: finished.body.batch_id } });
      outcomes.push(
        ...[mcpImport, mcpRetry].map((text) => (text.includes('REST_MAX_UPLOADS_PER_USER') ? 'refused' : 'served')),
        String(restRetry.status),
        ...[functionSubmit, functionRetry].map((answer) => `${answer.status} code ${answer.body.code}`),
      );
      expect(outcomes).toEqual(['refused', 'refused', '429', '400 code 155', '400 code 155']);
      expect(functionSubmit.body.error).toContain('REST_MAX_UPLOADS_PER_USER');
      // Nothing was created: the first batch is the user's only one (the held uploads store theirs once they end).
      expect(await batchesOf(user.id)).toBe(1);
    },
  );
  // Once the uploads end, the same calls are served.
  const others = held.requests.filter((_, index) => index !== held.refused);
  for (const request of others) request.end();
  expect((await Promise.all(others.map((request) => request.answer))).map((answer) => answer.status)).toEqual(others.map(() => 202));
  expect(await mcpToolCall(user.token, 'retry_failed', { batch_id: finished.body.batch_id })).toMatch(/"structuredContent":\{"batch_id":"\w+","status":/);
});

test('an aborted upload releases its slot, and the parts it had stored are removed', async () => {
  const user = await api.signUp('abort');
  const partFiles = async () => (await api.storedFiles()).filter((name) => name.includes('-part-')).length;
  const filesBefore = await partFiles();
  // Both slots taken: of three at once, one is refused.
  const first = await heldUploads([user.token, user.token, user.token]);
  expect(first.refusal.status).toBe(429);
  const [kept, aborted] = first.requests.filter((_, index) => index !== first.refused);
  // Enough lines for two full parts (BATCH_PART_MAX_ITEMS = 100 on test stacks) to be stored before the client goes.
  aborted.write(Array.from({ length: 250 }, (_, i) => `{"content":"aborted ${i}"}\n`).join(''));
  await waitFor('the aborted upload to store parts', async () => (await partFiles()) >= filesBefore + 2, 20_000);
  aborted.abort();
  // The slot comes back once the server has seen the abort: an upload sent whole is then accepted.
  const statuses = await waitFor(
    'the aborted upload to release its slot',
    async () => {
      const attempt = upload(user.token);
      attempt.end('{"content":"next"}\n');
      const { status } = await attempt.answer;
      return status === 429 ? undefined : status;
    },
    20_000,
  );
  expect(statuses).toBe(202);
  kept.end();
  expect((await kept.answer).status).toBe(202);
  expect(await batchesOf(user.id)).toBe(2);
  // Only the two stored batches' parts remain.
  const removed = await waitFor("the aborted upload's parts to be removed", async () => (await partFiles()) === filesBefore + 2, 20_000).catch(() => false);
  recordAttack({ attack: 'upload aborted by the client after two parts were stored', requests: 1, answers: { [removed ? 'slot released, parts removed' : 'parts left behind']: 1 }, refused: removed });
  expect(removed).toBe(true);
});

/** A batch of `count` memories that take `slowMs` each: it runs long enough to keep its event streams open. */
async function longRunningBatch(token: string, count: number, slowMs: number): Promise<string> {
  const submitted = await api.call('/api/v1/memory/batch?wait=false', {
    token,
    body: { memories: Array.from({ length: count }, (_, i) => ({ content: `slow ${i}`, metadata: { test_slow_ms: slowMs } })) },
  });
  expect(submitted.status).toBe(202);
  return submitted.body.batch_id as string;
}

/** Cancelled by setting the status (the afterSave hook stops the workflow), without waiting for it to stop. */
async function cancelBatch(batchId: string): Promise<void> {
  await api.call(`/parse/classes/BatchMemoryRequest/${batchId}`, { master: true, method: 'PUT', body: { status: 'cancelled' } });
}

test('event streams per user and in total: N + 1 at once gets exactly one 429 with Retry-After; a closed stream frees its slot', async () => {
  const user = await api.signUp('events');
  const batchId = await longRunningBatch(user.token, 40, 3000);
  const asUser = { 'X-Parse-Session-Token': user.token };
  const asMaster = { 'X-Parse-Master-Key': stack.info.masterKey };
  const statuses: number[] = [];
  const open: ReturnType<typeof eventStream>[] = [];
  const headersOf = (stream: ReturnType<typeof eventStream>) => stream.headers;

  try {
    const perUser = Array.from({ length: LIMITS.REST_MAX_EVENT_STREAMS_PER_USER + 1 }, () => eventStream(batchId, asUser));
    const perUserStatuses = await Promise.all(perUser.map(headersOf));
    statuses.push(...perUserStatuses.map((s) => s.status));
    expect(perUserStatuses.filter((s) => s.status === 429)).toHaveLength(1);
    expect(perUserStatuses.filter((s) => s.status === 200)).toHaveLength(LIMITS.REST_MAX_EVENT_STREAMS_PER_USER);
    const refusal = await perUser[perUserStatuses.findIndex((s) => s.status === 429)].answer;
    expect(refusal.headers['retry-after']).toBe('5');
    expect(refusal.body.error.message).toContain(`(REST_MAX_EVENT_STREAMS_PER_USER = ${LIMITS.REST_MAX_EVENT_STREAMS_PER_USER})`);
    open.push(...perUser.filter((_, i) => perUserStatuses[i].status === 200));

    // The master key is one more caller: REST_MAX_EVENT_STREAMS - 2 more fill the server, and one more is refused.
    const total = Array.from({ length: LIMITS.REST_MAX_EVENT_STREAMS - LIMITS.REST_MAX_EVENT_STREAMS_PER_USER + 1 }, () => eventStream(batchId, asMaster));
    const totalStatuses = await Promise.all(total.map(headersOf));
    statuses.push(...totalStatuses.map((s) => s.status));
    expect(totalStatuses.filter((s) => s.status === 429)).toHaveLength(1);
    const totalRefusal = await total[totalStatuses.findIndex((s) => s.status === 429)].answer;
    expect(totalRefusal.body.error.message).toContain(`(REST_MAX_EVENT_STREAMS = ${LIMITS.REST_MAX_EVENT_STREAMS})`);
    open.push(...total.filter((_, i) => totalStatuses[i].status === 200));

    // The client closes its streams: the slots come back.
    for (const stream of open.splice(0)) stream.abort();
    const reopened = await waitFor(
      'closed streams to free their slots',
      async () => {
        const stream = eventStream(batchId, asUser);
        const { status } = await headersOf(stream);
        if (status === 200) return stream;
        return undefined;
      },
      20_000,
    );
    open.push(reopened);
    statuses.push(200);
  } finally {
    for (const stream of open) stream.abort();
    await cancelBatch(batchId);
  }
  recordAttack({
    attack: 'more open event streams than REST_MAX_EVENT_STREAMS_PER_USER / REST_MAX_EVENT_STREAMS',
    requests: statuses.length,
    answers: tally(statuses),
    refused: statuses.filter((s) => s === 429).length === 2,
  });
});

test('an event stream ends by itself at REST_EVENT_STREAM_MAX_AGE while its batch still runs, and gives its slot back', async () => {
  const user = await api.signUp('stream-age');
  const batchId = await longRunningBatch(user.token, 20, 5000);
  try {
    const stream = eventStream(batchId, { 'X-Parse-Session-Token': user.token });
    expect((await stream.headers).status).toBe(200);
    const ended = await stream.answer;
    expect(ended.text).toContain(`: REST_EVENT_STREAM_MAX_AGE = ${EVENT_STREAM_MAX_AGE_MS} ms reached; follow again`);
    const status = await api.call(`/api/v1/memory/batch/${batchId}`, { token: user.token });
    expect(status.body.status).toBe('processing');
    recordAttack({ attack: 'an event stream held open on a long batch', requests: 1, answers: { 'ended at REST_EVENT_STREAM_MAX_AGE': 1 }, refused: ended.text.includes('REST_EVENT_STREAM_MAX_AGE') });
  } finally {
    await cancelBatch(batchId);
  }
}, 60_000);

describe('on the shared stack', () => {
  const shared = () => stackInfo();
  const sharedOrigin = () => shared().serverURL.replace(/\/parse$/, '');

  test('bulk writes without the master key, or from outside PARSE_MASTER_KEY_IPS, are refused 401 before a byte of a 60 MB body is sent', async () => {
    const info = shared();
    const attempts = [
      { name: 'no master key', headers: {} as Record<string, string>, localAddress: undefined },
      { name: 'a wrong master key', headers: { 'X-Parse-Master-Key': 'not-the-master-key-at-all' }, localAddress: undefined },
      { name: 'the master key from 127.0.0.2', headers: { 'X-Parse-Master-Key': info.masterKey }, localAddress: '127.0.0.2' },
    ];
    const statuses: number[] = [];
    for (const attempt of attempts) {
      // Content-Length announces 60 MB; the body is never sent. The old route parsed before it checked, and waited for it.
      const request = openRequest(`${sharedOrigin()}${BULK_WRITE_PATH}/Memory`, {
        headers: { 'Content-Type': 'application/json', 'Content-Length': 60 * 1024 * 1024, ...attempt.headers },
        localAddress: attempt.localAddress,
      });
      const answer = await request.answeredWithin(10_000);
      request.abort();
      statuses.push(answer?.status ?? 0);
      expect(answer?.status).toBe(401);
      expect(answer?.body).toEqual({ error: { code: 'unauthorized', message: MASTER_KEY_REFUSED, details: [] } });
    }
    recordAttack({
      attack: 'bulk write route: 60 MB body without the master key (none, wrong, from a disallowed address)',
      requests: attempts.length,
      answers: tally(statuses),
      refused: statuses.every((s) => s === 401),
    });
  });

  test('malformed JSON on every product route answers { error: { code, message, details } }, never HTML, a stack trace or a server path', async () => {
    const info = shared();
    const sharedApi = stackApi(info);
    const user = await sharedApi.signUp('malformed');
    const malformed = '{"memories": [{"content": "unterminated';
    const routes: { route: string; headers: Record<string, string>; status: number; code: string }[] = [
      { route: '/api/v1/memory/batch', headers: { 'X-Parse-Session-Token': user.token }, status: 400, code: 'invalid_request' },
      { route: `${BULK_WRITE_PATH}/Memory`, headers: { 'X-Parse-Master-Key': info.masterKey }, status: 400, code: 'invalid_request' },
      { route: `${BULK_WRITE_PATH}/Memory`, headers: {}, status: 401, code: 'unauthorized' },
      { route: '/api/v1/memory/batch/abc/cancel', headers: { 'X-Parse-Session-Token': user.token }, status: 404, code: 'not_found' },
      { route: '/api/v1/openapi.json', headers: {}, status: 404, code: 'not_found' },
      { route: '/api/v1/no-such-route', headers: {}, status: 404, code: 'not_found' },
      { route: '/metrics', headers: {}, status: 404, code: 'not_found' },
    ];
    const statuses: number[] = [];
    const leaks: string[] = [];
    for (const { route, headers, status, code } of routes) {
      const response = await fetch(`${sharedOrigin()}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: malformed });
      const text = await response.text();
      statuses.push(response.status);
      if (/<html|<pre>|\/work\/|node_modules|\bat [\w.<>]+ \(/i.test(text)) leaks.push(`${route}: ${text.slice(0, 200)}`);
      expect({ route, status: response.status, type: response.headers.get('content-type') }).toEqual({ route, status, type: expect.stringMatching(/^application\/json/) });
      const body = JSON.parse(text);
      expect(body).toEqual({ error: { code, message: expect.any(String), details: expect.any(Array) } });
    }
    // Parse Server's own routes keep Parse's shape, without a stack trace either.
    const parse = await fetch(`${sharedOrigin()}/parse/functions/addMemoryBatch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Parse-Application-Id': info.appId, 'X-Parse-Session-Token': user.token },
      body: malformed,
    });
    const parseText = await parse.text();
    statuses.push(parse.status);
    if (/<html|<pre>|\/work\/|node_modules|\bat [\w.<>]+ \(/i.test(parseText)) leaks.push(`/parse/functions: ${parseText.slice(0, 200)}`);
    expect(parse.status).toBe(400);
    expect(JSON.parse(parseText)).toEqual(expect.objectContaining({ error: expect.any(String) }));
    expect(leaks).toEqual([]);
    recordAttack({ attack: 'malformed JSON on every product route (REST, bulk, openapi, metrics, unknown)', requests: statuses.length, answers: tally(statuses), refused: leaks.length === 0 });
  });
});
