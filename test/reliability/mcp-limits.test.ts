/**
 * The MCP door under the product's limits, on a private stack with small ones: its requests share the
 * user's USER_RATE_LIMIT with the REST route, its refused credentials count toward AUTH_FAILURE_LIMIT,
 * and its body is bounded by REST_MAX_JSON_BYTES.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { recordAttack, stackApi, tally } from './stackApi';

const LIMITS = { USER_RATE_LIMIT: 4, AUTH_FAILURE_LIMIT: 3, REST_MAX_JSON_BYTES: 65_536 };

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  stack = await startPrivateStack('mcplimits', { ...Object.fromEntries(Object.entries(LIMITS).map(([key, value]) => [key, String(value)])), RATE_LIMIT_WINDOW: '30m' });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

interface Sent {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const listTools = { jsonrpc: '2.0', id: 1, method: 'tools/list' };

/** One request from a chosen loopback address; `bearer` is sent as Authorization: Bearer. */
function send(from: string, route: string, options: { bearer?: string; body?: unknown } = {}): Promise<Sent> {
  const { port } = new URL(stack.info.serverURL);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    'X-Parse-Application-Id': stack.info.appId,
    Accept: 'application/json, text/event-stream',
    ...(payload === undefined ? {} : { 'Content-Type': 'application/json' }),
    ...(options.bearer ? { Authorization: `Bearer ${options.bearer}` } : {}),
  };
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: route, method: payload === undefined ? 'GET' : 'POST', headers, localAddress: from }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // An MCP answer streamed as server-sent events stays text.
        }
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}

const batchesOf = (userId: string) => api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: userId } });

test('USER_RATE_LIMIT: the MCP door and the REST route share one count per user', async () => {
  const user = await api.signUp('mcp-rate');
  const answers: Sent[] = [];
  for (let call = 0; call < LIMITS.USER_RATE_LIMIT + 2; call++) {
    answers.push(call % 2 === 0 ? await send('127.0.0.1', '/mcp', { bearer: user.token, body: listTools }) : await send('127.0.0.1', '/api/v1/memory/batch', { bearer: user.token }));
  }
  const statuses = answers.map((answer) => answer.status);
  recordAttack({
    attack: 'rate limit: one user alternates the MCP door and the REST route past USER_RATE_LIMIT',
    requests: answers.length,
    answers: tally(statuses),
    refused: statuses.slice(LIMITS.USER_RATE_LIMIT).every((status) => status === 429),
  });
  expect(statuses).toEqual([...Array(LIMITS.USER_RATE_LIMIT).fill(200), 429, 429]);
  expect(answers[0].body).toContain('"name":"import_memories"');
  for (const refused of answers.slice(LIMITS.USER_RATE_LIMIT)) {
    expect(refused.body.error).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('USER_RATE_LIMIT, Cloud Functions, the REST route and the MCP door together') });
  }
});

test('a JSON-RPC array counts each of its calls toward USER_RATE_LIMIT: past the limit it is refused whole, and runs nothing', async () => {
  const importCall = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'import_memories', arguments: { memories: [{ content: `array memory ${id}` }] } } });
  const calls = <T>(count: number, make: (id: number) => T) => Array.from({ length: count }, (_, index) => make(index + 1));

  // One call past the limit: refused, and not one of its imports ran.
  const attacker = await api.signUp('mcp-array');
  const tooMany = await send('127.0.0.1', '/mcp', { bearer: attacker.token, body: calls(LIMITS.USER_RATE_LIMIT + 1, importCall) });
  const stored = await batchesOf(attacker.id);
  recordAttack({
    attack: `rate limit: ${LIMITS.USER_RATE_LIMIT + 1} MCP tool calls in one JSON-RPC array`,
    requests: 1,
    answers: tally([tooMany.status]),
    refused: tooMany.status === 429 && stored === 0,
  });
  expect({ status: tooMany.status, code: tooMany.body.error?.code, stored }).toEqual({ status: 429, code: 'rate_limited', stored: 0 });

  // One short of the limit: it runs, and the count it left carries to the REST route: one more request, then 429.
  const user = await api.signUp('mcp-array-fits');
  const fits = await send('127.0.0.1', '/mcp', { bearer: user.token, body: calls(LIMITS.USER_RATE_LIMIT - 1, (id) => ({ ...listTools, id })) });
  const rest = [await send('127.0.0.1', '/api/v1/memory/batch', { bearer: user.token }), await send('127.0.0.1', '/api/v1/memory/batch', { bearer: user.token })];
  expect([fits.status, ...rest.map((answer) => answer.status)]).toEqual([200, 200, 429]);
});

test('AUTH_FAILURE_LIMIT: no token and bad tokens at /mcp count; then even a valid token from that address is refused unread', async () => {
  const from = '127.0.0.21';
  const user = await api.signUp('mcp-victim');
  const answers = [
    await send(from, '/mcp', { body: listTools }),
    await send(from, '/mcp', { bearer: `r:${randomUUID().replace(/-/g, '')}`, body: listTools }),
    await send(from, '/mcp', { bearer: `r:${randomUUID().replace(/-/g, '')}`, body: listTools }),
  ];
  const valid = await send(from, '/mcp', { bearer: user.token, body: listTools });
  const statuses = [...answers, valid].map((answer) => answer.status);
  recordAttack({
    attack: 'rate limit: no and bad session tokens at /mcp from one address',
    requests: statuses.length,
    answers: tally(statuses),
    refused: answers.every((answer) => answer.status === 401) && valid.status === 429,
  });
  expect(answers.map((answer) => [answer.status, answer.body.error.code])).toEqual([
    [401, 'unauthorized'],
    [401, 'unauthorized'],
    [401, 'unauthorized'],
  ]);
  expect(valid.status).toBe(429);
  expect(valid.body.error).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('AUTH_FAILURE_LIMIT') });
  // Another address is not affected.
  expect((await send('127.0.0.22', '/mcp', { bearer: user.token, body: listTools })).status).toBe(200);
});

test('a body over REST_MAX_JSON_BYTES is refused with 413 naming the setting; nothing is stored', async () => {
  const user = await api.signUp('mcp-body');
  const call = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'import_memories', arguments: { memories: [{ content: 'x'.repeat(LIMITS.REST_MAX_JSON_BYTES) }] } } };
  const answer = await send('127.0.0.23', '/mcp', { bearer: user.token, body: call });
  const stored = await batchesOf(user.id);
  recordAttack({ attack: 'MCP over HTTP: a body over REST_MAX_JSON_BYTES', requests: 1, answers: tally([answer.status]), refused: answer.status === 413 && stored === 0 });
  expect(answer.status).toBe(413);
  expect(answer.body.error).toMatchObject({ code: 'too_large', message: expect.stringContaining(`REST_MAX_JSON_BYTES = ${LIMITS.REST_MAX_JSON_BYTES} bytes`) });
  expect(stored).toBe(0);
});
