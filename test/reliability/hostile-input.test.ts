/**
 * Hostile input, generated with fast-check, against both doors (the Cloud Function and the REST
 * route) of a private stack with small limits: every request is answered with a 4xx and a clear
 * message, never a 5xx, and nothing is left behind (rows and stored files counted before and after).
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { waitFor } from '../../scripts/processes';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { type Answer, type CallOptions, recordScenario, stackApi } from './stackApi';

const LIMITS = { MAX_BATCH_SIZE: 20, MAX_MEMORY_SIZE: 2048, MAX_STREAM_BATCH_SIZE: 20 };
const CLASSES = ['BatchMemoryRequest', 'BatchMemoryPart', 'BatchMemoryChunk', 'Memory'];

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let token: string;

beforeAll(async () => {
  stack = await startPrivateStack('hostile', {
    ...Object.fromEntries(Object.entries(LIMITS).map(([key, value]) => [key, String(value)])),
    REST_MAX_JSON_BYTES: String(64 * 1024),
    REST_MAX_STREAM_BYTES: String(64 * 1024),
  });
  api = stackApi(stack.info);
  token = (await api.signUp('hostile')).token;
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** One malformed request: where it goes and how it is sent. */
interface Hostile {
  kind: string;
  door: 'cloud' | 'rest-json' | 'rest-ndjson' | 'rest-raw';
  body?: unknown;
  raw?: Buffer | string;
  headers?: Record<string, string>;
}

const word = fc.string({ minLength: 1, maxLength: 12 });
const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(word, { maxLength: 3 }), fc.dictionary(word, word, { maxKeys: 2 }));
const notAnObject = fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }));
const good = (content = 'a memory') => ({ content });
const nested = (depth: number): unknown => (depth === 0 ? 'leaf' : { level: nested(depth - 1) });

/** Memories lists that are wrong in one place, at a random index among good ones. */
const badMemoryLists: fc.Arbitrary<{ kind: string; memories: unknown[] }> = fc
  .tuple(
    fc.oneof(
      notAString.map((content) => ({ kind: 'content of a wrong type', item: { content } as unknown })),
      fc.constantFrom({ kind: 'missing content', item: { metadata: { a: 1 } } }, { kind: 'empty content', item: { content: '' } }, { kind: 'blank content', item: { content: ' \n\t ' } }),
      notAnObject.map((item) => ({ kind: 'memory of a wrong type', item })),
      fc.integer({ min: LIMITS.MAX_MEMORY_SIZE + 1, max: LIMITS.MAX_MEMORY_SIZE * 4 }).map((size) => ({ kind: 'oversized content', item: { content: 'x'.repeat(size) } })),
      fc.integer({ min: LIMITS.MAX_MEMORY_SIZE, max: LIMITS.MAX_MEMORY_SIZE * 2 }).map((size) => ({ kind: 'oversized metadata', item: { content: 'ok', metadata: { blob: 'y'.repeat(size) } } })),
      fc.integer({ min: 17, max: 200 }).map((depth) => ({ kind: 'deeply nested metadata', item: { content: 'ok', metadata: nested(depth) } })),
      fc.constantFrom('__proto__', 'constructor', 'prototype', '$where', 'a.b').map((key) => ({ kind: 'forbidden key', item: { content: 'ok', metadata: JSON.parse(`{"${key}": {"polluted": true}}`) } })),
      notAnObject.filter((m) => m !== null).map((metadata) => ({ kind: 'metadata of a wrong type', item: { content: 'ok', metadata } })),
      fc.oneof(fc.integer(), fc.boolean(), fc.string(), fc.dictionary(word, fc.integer(), { maxKeys: 2 }), fc.array(fc.string(), { minLength: 1, maxLength: 3 })).map((embedding) => ({ kind: 'embedding of a wrong type', item: { content: 'ok', embedding } })),
      word.map((extra) => ({ kind: 'unknown field', item: { content: 'ok', [`x_${extra}`]: 1 } })),
      fc.constantFrom('\uD800', 'a\uDFFFb').map((lone) => ({ kind: 'lone surrogate', item: { content: `text ${lone}` } })),
    ),
    fc.integer({ min: 0, max: 5 }),
  )
  .map(([{ kind, item }, position]) => ({ kind, memories: [...Array.from({ length: position }, () => good()), item] }));

const jsonRequests: fc.Arbitrary<Hostile> = fc.oneof(
  fc.tuple(badMemoryLists, fc.constantFrom<'cloud' | 'rest-json'>('cloud', 'rest-json')).map(([{ kind, memories }, door]) => ({ kind, door, body: { memories } })),
  fc.constantFrom<'cloud' | 'rest-json'>('cloud', 'rest-json').chain((door) =>
    fc.oneof(
      fc.constant({ kind: 'no memories', door, body: { memories: [] } }),
      fc.constant({ kind: `MAX_BATCH_SIZE + 1 memories`, door, body: { memories: Array.from({ length: LIMITS.MAX_BATCH_SIZE + 1 }, () => good()) } }),
      notAnObject.filter((m) => !Array.isArray(m)).map((memories) => ({ kind: 'memories of a wrong type', door, body: { memories } })),
      fc.constant({ kind: 'memories missing', door, body: { namespace: 'n' } }),
      fc.record({ namespace: notAString }).map((options) => ({ kind: 'option of a wrong type', door, body: { memories: [good()], ...options } })),
      fc.constant({ kind: 'webhook_url without secret', door, body: { memories: [good()], webhook_url: 'https://receiver.example/hook' } }),
      fc.webUrl().map((url) => ({ kind: 'webhook_url not http(s)', door, body: { memories: [good()], webhook_url: url.replace(/^https?/, 'ftp'), webhook_secret: 'a-secret-of-enough-length' } })),
      word.map((key) => ({ kind: 'unknown option', door, body: { memories: [good()], [`opt_${key}`]: true } })),
    ),
  ),
);

const rawRequests: fc.Arbitrary<Hostile> = fc.oneof(
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e400', '-1e400').map((n) => ({ kind: 'NaN or Infinity in an embedding', door: 'rest-raw' as const, raw: `{"memories":[{"content":"x","embedding":[0.5,${n}]}]}`, headers: { 'Content-Type': 'application/json' } })),
  fc.constantFrom('__proto__', 'constructor').map((key) => ({ kind: 'prototype key at the top', door: 'rest-raw' as const, raw: `{"memories":[{"content":"x"}],"${key}":{"admin":true}}`, headers: { 'Content-Type': 'application/json' } })),
  fc.string({ minLength: 1, maxLength: 40 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }).map((text) => ({ kind: 'not JSON', door: 'rest-raw' as const, raw: text, headers: { 'Content-Type': 'application/json' } })),
  fc.constantFrom('text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream').map((type) => ({ kind: 'wrong content type', door: 'rest-raw' as const, raw: '{"memories":[{"content":"x"}]}', headers: { 'Content-Type': type } })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({ kind: 'invalid UTF-8 in NDJSON', door: 'rest-ndjson' as const, raw: Buffer.concat([Buffer.from('{"content":"ok"}\n{"content":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(bytes.filter((b) => b < 0x80 && b !== 0x22 && b !== 0x5c && b !== 0x0a)), Buffer.from('"}\n')]) })),
  fc.integer({ min: 2, max: 30 }).map((cut) => ({ kind: 'truncated gzip', door: 'rest-ndjson' as const, raw: gzipSync('{"content":"one"}\n{"content":"two"}\n').subarray(0, cut), headers: { 'Content-Encoding': 'gzip' } })),
  fc.uint8Array({ minLength: 4, maxLength: 64 }).map((bytes) => ({ kind: 'garbled gzip', door: 'rest-ndjson' as const, raw: Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from(bytes)]), headers: { 'Content-Encoding': 'gzip' } })),
  fc.integer({ min: 1, max: 15 }).map((cut) => ({ kind: 'truncated NDJSON line', door: 'rest-ndjson' as const, raw: `{"content":"first"}\n${'{"content":"second one"}'.slice(0, cut)}` })),
  badMemoryLists.map(({ kind, memories }) => ({ kind: `NDJSON: ${kind}`, door: 'rest-ndjson' as const, raw: `${memories.map((m) => JSON.stringify(m)).join('\n')}\n` })),
  fc.constant({ kind: 'NDJSON: MAX_STREAM_BATCH_SIZE + 1 lines', door: 'rest-ndjson' as const, raw: `${Array.from({ length: LIMITS.MAX_STREAM_BATCH_SIZE + 1 }, () => '{"content":"x"}').join('\n')}\n` }),
  fc.constant({ kind: 'NDJSON: empty body', door: 'rest-ndjson' as const, raw: '' }),
  fc.integer({ min: 17_000, max: 40_000 }).map((size) => ({ kind: 'huge header', door: 'rest-raw' as const, raw: '{"memories":[{"content":"x"}]}', headers: { 'Content-Type': 'application/json', 'X-Padding': 'p'.repeat(size) } })),
);

async function send(request: Hostile): Promise<Answer> {
  const options: CallOptions = { token, headers: request.headers };
  if (request.door === 'cloud') return api.call('/parse/functions/addMemoryBatch', { ...options, body: request.body });
  if (request.door === 'rest-json') return api.call('/api/v1/memory/batch', { ...options, body: request.body });
  const headers = request.door === 'rest-ndjson' ? { 'Content-Type': 'application/x-ndjson', ...request.headers } : request.headers;
  const raw = typeof request.raw === 'string' ? request.raw : new Uint8Array(request.raw ?? []);
  return api.call('/api/v1/memory/batch', { ...options, headers, raw });
}

/** The answer names what was wrong: REST `{ error: { code, message } }`, Parse `{ code, error }`; a 431 is Node refusing the headers. */
function messageOf(answer: Answer): string | undefined {
  if (answer.status === 431) return 'request header fields too large';
  const body = answer.body as { error?: string | { message?: string } };
  return typeof body?.error === 'string' ? body.error : body?.error?.message;
}

test('at least 1,000 generated malformed requests: all 4xx with a message, no 5xx, nothing left behind', async () => {
  const before = await Promise.all(CLASSES.map((name) => api.count(name)));
  const filesBefore = api.storedFiles().length;
  const byKind = new Map<string, number>();
  let serverErrors = 0;
  let tried = 0;
  const unclear: string[] = [];
  await fc.assert(
    fc.asyncProperty(fc.oneof({ arbitrary: jsonRequests, weight: 3 }, { arbitrary: rawRequests, weight: 2 }), async (request) => {
      const answer = await send(request);
      tried++;
      byKind.set(`${request.door} ${request.kind}`, (byKind.get(`${request.door} ${request.kind}`) ?? 0) + 1);
      if (answer.status >= 500) serverErrors++;
      const message = messageOf(answer);
      if (!message || message.length < 8) unclear.push(`${request.kind}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 120)}`);
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
    }),
    { numRuns: 1200, seed: Number(process.env.FAST_CHECK_SEED ?? Date.now() % 2 ** 31), verbose: true },
  );
  // Parts a streamed upload had stored are removed before the answer; allow the file system to catch up.
  const filesAfter = await waitFor('no stored files left', async () => (api.storedFiles().length === filesBefore ? filesBefore : undefined), 10_000).catch(() => api.storedFiles().length);
  const after = await Promise.all(CLASSES.map((name) => api.count(name)));
  recordScenario({ scenario: `hostile input (${byKind.size} kinds, Cloud Function and REST)`, faults: 0, badInputs: tried, serverErrors, lost: 0, duplicated: 0 });
  expect(tried).toBeGreaterThanOrEqual(1000);
  expect(serverErrors).toBe(0);
  expect(unclear).toEqual([]);
  expect(after).toEqual(before);
  expect(filesAfter).toBe(filesBefore);
  expect(byKind.size).toBeGreaterThan(25);
});
