/**
 * One rate-limit policy over every door, tried as an attacker would on a private stack with low limits:
 * one user calling addMemoryBatch again and again, through the Cloud Function, the REST route and
 * /parse/batch; bad session tokens, master keys and passwords from one address; sign-up and log-in
 * floods; anonymous users; and master-key guesses from an address outside PARSE_MASTER_KEY_IPS. Each
 * attack comes from a loopback address of its own (127.0.0.0/8 all reaches the server), so that the
 * per-address counts of one do not reach the others.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { BULK_WRITE_PATH } from '../../schema/batchFile';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackInfo } from '../support/stackInfo';
import { recordAttack, requestFrom, stackApi, tally, type WireAnswer } from './stackApi';

const LIMITS = { USER_RATE_LIMIT: 5, SIGNUP_RATE_LIMIT: 10, LOGIN_RATE_LIMIT: 6, AUTH_FAILURE_LIMIT: 6 };
const REQUEST_LIMIT_EXCEEDED = 155;
const CONNECTION_FAILED = 100;
/** Allowed to use the master key besides the stack itself: the address the master-key guesses come from. */
const MASTER_KEY_GUESSER = '127.0.0.13';
/** Outside PARSE_MASTER_KEY_IPS. */
const DISALLOWED = '127.0.0.2';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  stack = await startPrivateStack('ratelimit', {
    ...Object.fromEntries(Object.entries(LIMITS).map(([key, value]) => [key, String(value)])),
    // Longer than the file runs: no count is reset half-way through an attack.
    RATE_LIMIT_WINDOW: '30m',
    PARSE_MASTER_KEY_IPS: `127.0.0.1/32,${MASTER_KEY_GUESSER}/32,::1/128`,
    // On here, to show that even then an anonymous user submits nothing; the shared stack keeps the default (off).
    ALLOW_ANONYMOUS_USERS: 'true',
  });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

interface SendOptions {
  method?: string;
  body?: unknown;
  token?: string;
  masterKey?: string;
  headers?: Record<string, string>;
  agent?: http.Agent;
  serverURL?: string;
}

/** One request from a chosen loopback address. */
function send(from: string, route: string, options: SendOptions = {}): Promise<WireAnswer> {
  const { port } = new URL(options.serverURL ?? stack.info.serverURL);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    'X-Parse-Application-Id': stack.info.appId,
    ...(payload === undefined ? {} : { 'Content-Type': 'application/json' }),
    ...(options.token ? { 'X-Parse-Session-Token': options.token } : {}),
    ...(options.masterKey !== undefined ? { 'X-Parse-Master-Key': options.masterKey } : {}),
    ...options.headers,
  };
  return requestFrom(`http://127.0.0.1:${port}${route}`, { method: options.method, headers, body: payload, from, agent: options.agent });
}

const oneMemory = (label: string) => ({ memories: [{ content: `rate limit test ${label}` }], wait: false });
const batchesOf = (userId: string) => api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: userId } });
const sessionsOf = (userId: string) => api.count('_Session', { user: { __type: 'Pointer', className: '_User', objectId: userId } });

function expectRetryAfter(answer: WireAnswer): void {
  expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
}

function expectParseLimited(answer: WireAnswer, setting: string): void {
  expect(answer.status).toBe(429);
  expect(answer.body).toMatchObject({ code: REQUEST_LIMIT_EXCEEDED, error: expect.stringContaining(setting) });
  expectRetryAfter(answer);
}

function expectRestLimited(answer: WireAnswer, setting: string): void {
  expect(answer.status).toBe(429);
  expect(answer.body).toMatchObject({ error: { code: 'rate_limited', message: expect.stringContaining(setting) } });
  expectRetryAfter(answer);
}

async function signUp(from: string, prefix: string): Promise<WireAnswer> {
  return send(from, '/parse/users', { body: { username: `${prefix}-${randomUUID()}`, password: 'test-password-123' } });
}

describe('USER_RATE_LIMIT: one count per user over Cloud Functions and the REST route', () => {
  test('one user calling addMemoryBatch through /parse/functions past the limit: exactly the calls over it get 429 (155), none of them stores a batch', async () => {
    const user = await api.signUp('caller');
    const answers: WireAnswer[] = [];
    for (let call = 0; call < LIMITS.USER_RATE_LIMIT + 3; call++) answers.push(await send('127.0.0.1', '/parse/functions/addMemoryBatch', { token: user.token, body: oneMemory(`call ${call}`) }));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses).toEqual([...Array(LIMITS.USER_RATE_LIMIT).fill(200), 429, 429, 429]);
    for (const answer of answers.slice(LIMITS.USER_RATE_LIMIT)) expectParseLimited(answer, 'USER_RATE_LIMIT');
    const stored = await batchesOf(user.id);
    expect(stored).toBe(LIMITS.USER_RATE_LIMIT);
    recordAttack({
      attack: 'rate limit: one user calls addMemoryBatch through /parse/functions past USER_RATE_LIMIT',
      requests: answers.length,
      answers: tally(statuses),
      refused: stored === LIMITS.USER_RATE_LIMIT,
    });
  });

  test('mixing the REST route and the Cloud Function does not double the allowance', async () => {
    const user = await api.signUp('mixer');
    const answers: WireAnswer[] = [];
    for (let call = 0; call < LIMITS.USER_RATE_LIMIT * 2; call++) {
      answers.push(
        call % 2 === 0
          ? await send('127.0.0.1', '/api/v1/memory/batch', { token: user.token, body: oneMemory(`rest ${call}`) })
          : await send('127.0.0.1', '/parse/functions/addMemoryBatch', { token: user.token, body: oneMemory(`function ${call}`) }),
      );
    }
    expect(answers.map((answer) => answer.status)).toEqual([202, 200, 202, 200, 202, 429, 429, 429, 429, 429]);
    answers.slice(LIMITS.USER_RATE_LIMIT).forEach((answer, index) => (index % 2 === 0 ? expectParseLimited(answer, 'USER_RATE_LIMIT') : expectRestLimited(answer, 'USER_RATE_LIMIT')));
    const stored = await batchesOf(user.id);
    expect(stored).toBe(LIMITS.USER_RATE_LIMIT);
    recordAttack({
      attack: 'rate limit: one user alternates the REST route and the Cloud Function past USER_RATE_LIMIT',
      requests: answers.length,
      answers: tally(answers.map((a) => a.status)),
      refused: stored === LIMITS.USER_RATE_LIMIT,
    });
  });

  test('Cloud Function calls inside /parse/batch count one each', async () => {
    const user = await api.signUp('batcher');
    const requests = Array.from({ length: LIMITS.USER_RATE_LIMIT + 2 }, (_, index) => ({ method: 'POST', path: '/parse/functions/addMemoryBatch', body: oneMemory(`sub-request ${index}`) }));
    const answer = await send('127.0.0.1', '/parse/batch', { token: user.token, body: { requests } });
    expectParseLimited(answer, 'USER_RATE_LIMIT');
    const stored = await batchesOf(user.id);
    expect(stored).toBe(0);
    recordAttack({ attack: `rate limit: ${requests.length} addMemoryBatch calls in one /parse/batch`, requests: 1, answers: tally([answer.status]), refused: stored === 0 });
  });
});

describe('AUTH_FAILURE_LIMIT: failed authentications of one address, counted before authentication', () => {
  test('bad session tokens on both doors; then even a valid token from that address is refused unread', async () => {
    const from = '127.0.0.11';
    const user = await api.signUp('victim');
    const answers: WireAnswer[] = [];
    for (let attempt = 0; attempt < LIMITS.AUTH_FAILURE_LIMIT; attempt++) {
      const token = `r:${randomUUID().replace(/-/g, '')}`;
      answers.push(
        attempt % 2 === 0 ? await send(from, '/api/v1/memory/batch', { token, body: oneMemory('guess') }) : await send(from, '/parse/functions/addMemoryBatch', { token, body: oneMemory('guess') }),
      );
    }
    const viaRest = await send(from, '/api/v1/memory/batch', { token: user.token, body: oneMemory('valid') });
    const viaFunction = await send(from, '/parse/functions/addMemoryBatch', { token: user.token, body: oneMemory('valid') });
    const stored = await batchesOf(user.id);
    const statuses = [...answers, viaRest, viaFunction].map((a) => a.status);
    recordAttack({
      attack: 'rate limit: bad session tokens from one address (REST route and Cloud Function)',
      requests: statuses.length,
      answers: tally(statuses),
      refused: answers.every((answer) => answer.status === 401 || answer.status === 400) && viaRest.status === 429 && viaFunction.status === 429 && stored === 0,
    });
    answers.forEach((answer, index) => {
      if (index % 2 === 0) expect([answer.status, answer.body.error.message]).toEqual([401, 'the session token is invalid or expired']);
      else expect([answer.status, answer.body.code]).toEqual([400, 209]);
    });
    expectRestLimited(viaRest, 'AUTH_FAILURE_LIMIT');
    expectParseLimited(viaFunction, 'AUTH_FAILURE_LIMIT');
    expect(stored).toBe(0);
    // Another address is not affected.
    expect((await send('127.0.0.12', '/api/v1/memory/batch/unknown00001', { token: user.token })).status).toBe(404);
  });

  test('bad master keys on the REST route, the bulk write route and Parse Server; then the right key from that address is refused unread', async () => {
    const wrong = () => `wrong-${randomUUID()}`;
    const guesses = [
      () => send(MASTER_KEY_GUESSER, '/api/v1/memory/batch/unknown00001', { masterKey: wrong() }),
      () => send(MASTER_KEY_GUESSER, `${BULK_WRITE_PATH}/Memory`, { masterKey: wrong(), body: { objects: [] } }),
      () => send(MASTER_KEY_GUESSER, '/parse/classes/BatchMemoryRequest', { masterKey: wrong() }),
    ];
    const answers: WireAnswer[] = [];
    for (let attempt = 0; attempt < LIMITS.AUTH_FAILURE_LIMIT; attempt++) answers.push(await guesses[attempt % guesses.length]());
    const rest = await send(MASTER_KEY_GUESSER, '/api/v1/memory/batch/unknown00001', { masterKey: stack.info.masterKey });
    const parse = await send(MASTER_KEY_GUESSER, '/parse/classes/BatchMemoryRequest', { masterKey: stack.info.masterKey });
    const statuses = [...answers, rest, parse].map((a) => a.status);
    recordAttack({
      attack: 'rate limit: master-key guesses from one address (REST, bulk write, Parse Server)',
      requests: statuses.length,
      answers: tally(statuses),
      refused: answers.every((answer) => answer.status === 401 || answer.status === 403) && rest.status === 429 && parse.status === 429,
    });
    expect(answers.map((answer) => answer.status)).toEqual([401, 401, 403, 401, 401, 403]);
    expectRestLimited(rest, 'AUTH_FAILURE_LIMIT');
    expectParseLimited(parse, 'AUTH_FAILURE_LIMIT');
  });

  test('wrong passwords; then the right password from that address is refused unread', async () => {
    const from = '127.0.0.14';
    const username = `owner-${randomUUID()}`;
    const created = await send('127.0.0.1', '/parse/users', { body: { username, password: 'the-right-password' } });
    expect(created.status).toBe(201);
    const answers: WireAnswer[] = [];
    for (let attempt = 0; attempt < LIMITS.AUTH_FAILURE_LIMIT; attempt++) {
      const password = `guess-${attempt}`;
      answers.push(attempt % 2 === 0 ? await send(from, '/parse/login', { body: { username, password } }) : await send(from, `/parse/login?${new URLSearchParams({ username, password })}`));
    }
    const right = await send(from, '/parse/login', { body: { username, password: 'the-right-password' } });
    const sessions = await sessionsOf(created.body.objectId);
    const statuses = [...answers, right].map((a) => a.status);
    recordAttack({
      attack: 'rate limit: wrong passwords from one address',
      requests: statuses.length,
      answers: tally(statuses),
      refused: answers.every((answer) => answer.status === 404) && right.status === 429 && !right.text.includes('sessionToken') && sessions === 1,
    });
    for (const answer of answers) expect([answer.status, answer.body.code]).toEqual([404, 101]);
    expectParseLimited(right, 'AUTH_FAILURE_LIMIT');
    expect(right.text).not.toContain('sessionToken');
    expect(sessions).toBe(1);
  });
});

describe("sign-up and log-in floods: Parse Server's own rateLimit per address", () => {
  test('a sign-up flood: the sign-ups over SIGNUP_RATE_LIMIT get 429 and create nobody', async () => {
    const from = '127.0.0.15';
    const prefix = `flood${randomUUID().slice(0, 8)}`;
    const answers: WireAnswer[] = [];
    for (let attempt = 0; attempt < LIMITS.SIGNUP_RATE_LIMIT + 3; attempt++) answers.push(await signUp(from, prefix));
    expect(answers.map((answer) => answer.status)).toEqual([...Array(LIMITS.SIGNUP_RATE_LIMIT).fill(201), 429, 429, 429]);
    for (const answer of answers.slice(LIMITS.SIGNUP_RATE_LIMIT)) {
      // Parse Server answers its own limits with CONNECTION_FAILED.
      expect(answer.body).toEqual({ code: CONNECTION_FAILED, error: expect.stringContaining('SIGNUP_RATE_LIMIT') });
      expectRetryAfter(answer);
    }
    const created = await api.count('_User', { username: { $regex: `^${prefix}-` } });
    expect(created).toBe(LIMITS.SIGNUP_RATE_LIMIT);
    recordAttack({ attack: 'rate limit: sign-up flood from one address', requests: answers.length, answers: tally(answers.map((a) => a.status)), refused: created === LIMITS.SIGNUP_RATE_LIMIT });
  });

  test('a log-in flood: the log-ins over LOGIN_RATE_LIMIT get 429 and open no session', async () => {
    const from = '127.0.0.16';
    const username = `login-${randomUUID()}`;
    const created = await send('127.0.0.1', '/parse/users', { body: { username, password: 'test-password-123' } });
    const answers: WireAnswer[] = [];
    for (let attempt = 0; attempt < LIMITS.LOGIN_RATE_LIMIT + 2; attempt++) answers.push(await send(from, '/parse/login', { body: { username, password: 'test-password-123' } }));
    expect(answers.map((answer) => answer.status)).toEqual([...Array(LIMITS.LOGIN_RATE_LIMIT).fill(200), 429, 429]);
    for (const answer of answers.slice(LIMITS.LOGIN_RATE_LIMIT)) {
      expect(answer.body).toEqual({ code: CONNECTION_FAILED, error: expect.stringContaining('LOGIN_RATE_LIMIT') });
      expectRetryAfter(answer);
    }
    const sessions = await sessionsOf(created.body.objectId);
    expect(sessions).toBe(1 + LIMITS.LOGIN_RATE_LIMIT);
    recordAttack({ attack: 'rate limit: log-in flood from one address', requests: answers.length, answers: tally(answers.map((a) => a.status)), refused: sessions === 1 + LIMITS.LOGIN_RATE_LIMIT });
  });
});

describe('anonymous users', () => {
  test('an anonymous sign-up is refused and creates nobody (ALLOW_ANONYMOUS_USERS off, the default: the shared stack)', async () => {
    const shared = stackInfo();
    const sharedApi = stackApi(shared);
    const id = randomUUID();
    const before = await sharedApi.count('_User');
    const answer = await send('127.0.0.1', '/parse/users', { serverURL: shared.serverURL, headers: { 'X-Parse-Application-Id': shared.appId }, body: { authData: { anonymous: { id } } } });
    const after = await sharedApi.count('_User');
    recordAttack({ attack: 'anonymous sign-up (authData.anonymous)', requests: 1, answers: tally([answer.status]), refused: answer.status === 400 && after === before });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ code: 252 });
    expect(after).toBe(before);
  });

  test('with ALLOW_ANONYMOUS_USERS on, an anonymous user still cannot submit a batch through either door', async () => {
    const signedUp = await send('127.0.0.17', '/parse/users', { body: { authData: { anonymous: { id: randomUUID() } } } });
    expect(signedUp.status).toBe(201);
    const token = signedUp.body.sessionToken as string;
    const viaFunction = await send('127.0.0.17', '/parse/functions/addMemoryBatch', { token, body: oneMemory('anonymous') });
    const viaRest = await send('127.0.0.17', '/api/v1/memory/batch', { token, body: oneMemory('anonymous') });
    expect(viaFunction.body).toEqual({ code: 119, error: expect.stringContaining('anonymous users cannot submit batches') });
    expect(viaRest.status).toBe(403);
    expect(viaRest.body.error).toMatchObject({ code: 'forbidden', message: expect.stringContaining('anonymous users cannot submit batches') });
    const stored = await batchesOf(signedUp.body.objectId);
    expect(stored).toBe(0);
    recordAttack({ attack: 'anonymous user submits a batch (Cloud Function and REST route)', requests: 2, answers: tally([viaFunction.status, viaRest.status]), refused: stored === 0 });
  });
});

test('from an address outside PARSE_MASTER_KEY_IPS the right and a wrong master key get byte-identical answers, keep or close the connection alike, and count as failures', async () => {
  const user = await api.signUp('target');
  const doors = {
    rest: (masterKey: string, agent?: http.Agent) => send(DISALLOWED, '/api/v1/memory/batch', { masterKey, agent, body: { ...oneMemory('as master'), user_id: user.id } }),
    bulk: (masterKey: string, agent?: http.Agent) => send(DISALLOWED, `${BULK_WRITE_PATH}/Memory`, { masterKey, agent, body: { objects: [{ content: 'bulk' }] } }),
    parse: (masterKey: string, agent?: http.Agent) => send(DISALLOWED, '/parse/classes/BatchMemoryRequest', { masterKey, agent }),
  };
  const probes: Record<string, string> = { rest: '/api/v1/openapi.json', bulk: '/api/v1/openapi.json', parse: '/parse/health' };
  const answers: WireAnswer[] = [];
  const pairs: { right: { answer: WireAnswer; connectionKept: boolean }; wrong: { answer: WireAnswer; connectionKept: boolean } }[] = [];
  for (const [name, door] of Object.entries(doors)) {
    // Each key on a connection of its own, then a probe on it: whether the answer kept it open must not tell the keys apart either.
    const attempt = async (masterKey: string) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const answer = await door(masterKey, agent);
      const probe = await send(DISALLOWED, probes[name], { agent });
      agent.destroy();
      return { answer, connectionKept: probe.reusedSocket };
    };
    const right = await attempt(stack.info.masterKey);
    const wrong = await attempt(`wrong-${randomUUID()}`);
    pairs.push({ right, wrong });
    answers.push(right.answer, wrong.answer);
  }
  const comparable = (answer: WireAnswer) => JSON.stringify({ status: answer.status, text: answer.text, headers: { ...answer.headers, date: undefined } });
  const alike = pairs.map(({ right, wrong }) => comparable(wrong.answer) === comparable(right.answer) && wrong.connectionKept === right.connectionKept && [401, 403].includes(right.answer.status));
  // Six refused keys: the address is now past AUTH_FAILURE_LIMIT, the right key included.
  const after = await doors.rest(stack.info.masterKey);
  const stored = (await batchesOf(user.id)) + (await api.count('Memory', { content: 'bulk' }));
  const statuses = [...answers, after].map((a) => a.status);
  recordAttack({
    attack: 'master key from an address outside PARSE_MASTER_KEY_IPS: right and wrong key answered alike',
    requests: statuses.length,
    answers: tally(statuses),
    refused: alike.every(Boolean) && after.status === 429 && stored === 0,
  });
  for (const { right, wrong } of pairs) {
    expect(JSON.parse(comparable(wrong.answer))).toEqual(JSON.parse(comparable(right.answer)));
    expect([401, 403]).toContain(right.answer.status);
    expect(wrong.connectionKept).toBe(right.connectionKept);
  }
  expectRestLimited(after, 'AUTH_FAILURE_LIMIT');
  expect(stored).toBe(0);
});
