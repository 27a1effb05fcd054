/**
 * The operator's doors, attacked on a private stack booted as `npm start` boots it (NODE_ENV
 * development, LOG_LEVEL info): Dashboard logins are throttled per address, the master key is given
 * only after a login, the Dashboard's cookie is not signed with the master key, /metrics wants its
 * token, and the server's log holds no session token and no DeprecationWarning.
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { REDACTED } from '../../cloud/parseLogger';
import { parse, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { recordAttack, recordAttackChecked, requestFrom, stackApi, tally, type WireAnswer, type WireOptions } from './stackApi';

// ws (Parse Server's and the Parse SDK's WebSocket client) has no type declarations here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const WebSocket = require('ws') as new (url: string) => { once(event: 'open' | 'close', listener: () => void): void; send(data: string): void; close(): void };

const METRICS_TOKEN = `metrics-${randomBytes(12).toString('hex')}`;
const MAX_FAILURES = 5;
/** Loopback addresses of their own, so that one client's throttled logins do not touch another's. */
const OPERATOR = '127.0.0.1';
const GUESSER = '127.0.0.2';
const CONCURRENT_GUESSER = '127.0.0.3';

let stack: PrivateStack;
let origin: string;
let api: ReturnType<typeof stackApi>;
/** Every session token the stack handed out or was sent in this file: none may reach the log. */
const sessionTokens: string[] = [];

beforeAll(async () => {
  stack = await startPrivateStack('operator', { NODE_ENV: 'development', LOG_LEVEL: 'info', METRICS_TOKEN, DASHBOARD_LOGIN_MAX_FAILURES: String(MAX_FAILURES) });
  origin = stack.info.serverURL.replace(/\/parse$/, '');
  api = stackApi(stack.info);
});

afterAll(async () => {
  await stack?.shutdown();
});

/** One HTTP request to the stack from a chosen loopback source address. */
function request(route: string, options: WireOptions = {}): Promise<WireAnswer> {
  return requestFrom(`${origin}${route}`, { from: OPERATOR, ...options });
}

/** The Dashboard's session cookie (`parse_dash=s:<id>.<signature>`) an answer sets, if any. */
function sessionCookie(answer: WireAnswer): string | undefined {
  return answer.headers['set-cookie']?.map((cookie) => cookie.split(';')[0]).find((cookie) => cookie.startsWith('parse_dash='));
}

interface DashboardSession {
  cookie: string;
  csrf: string;
  from: string;
}

/** What a browser gets from the login page: a session cookie and the form's CSRF token. */
async function loginPage(from: string): Promise<DashboardSession> {
  const page = await request('/dashboard/login', { from });
  expect(page.status).toBe(200);
  const cookie = sessionCookie(page);
  const csrf = /<script id="csrf" type="application\/json">"([^"]+)"<\/script>/.exec(page.text)?.[1];
  if (!cookie || !csrf) throw new Error('the login page set no session cookie or CSRF token');
  return { cookie, csrf, from };
}

/** Submits the login form; a successful login's answer carries the session's new cookie. */
async function logIn(session: DashboardSession, password: string): Promise<WireAnswer> {
  const answer = await request('/dashboard/login', {
    method: 'POST',
    from: session.from,
    headers: { Cookie: session.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: stack.info.env.DASHBOARD_USER ?? 'admin', password, _csrf: session.csrf }).toString(),
  });
  session.cookie = sessionCookie(answer) ?? session.cookie;
  return answer;
}

function dashboardConfig(cookie?: string, from = OPERATOR): Promise<WireAnswer> {
  return request('/dashboard/parse-dashboard-config.json', { from, headers: cookie ? { Cookie: cookie } : {} });
}

const password = () => stack.info.env.DASHBOARD_PASSWORD ?? 'local-dashboard-password';

/** express-session's signature of a session id: HMAC-SHA256 with the secret, base64 without padding. */
function sign(sessionId: string, secret: string): string {
  return createHmac('sha256', secret).update(sessionId).digest('base64').replace(/=+$/, '');
}

function parseSessionCookie(cookie: string): { id: string; signature: string } {
  const value = decodeURIComponent(cookie.slice('parse_dash='.length));
  const match = /^s:(.+)\.([^.]+)$/.exec(value);
  if (!match) throw new Error(`not a signed session cookie: ${value}`);
  return { id: match[1], signature: match[2] };
}

function serverLog(): string {
  return fs.readFileSync(path.join(stack.info.logDir, 'server.log'), 'utf8');
}

test(`Dashboard logins: after ${MAX_FAILURES} wrong passwords an address gets 429, even with the right password, and nothing is granted`, async () => {
  const guesser = await loginPage(GUESSER);
  const statuses: number[] = [];
  await recordAttackChecked(
    () => ({
      attack: `Dashboard password guessing from one address (${MAX_FAILURES} allowed, then the right password; ${4 * MAX_FAILURES} at once from another)`,
      requests: statuses.length,
      answers: tally(statuses),
    }),
    async () => {
      for (let i = 0; i < MAX_FAILURES; i++) {
        const answer = await logIn(guesser, `guess-${i}-${randomBytes(4).toString('hex')}`);
        statuses.push(answer.status);
        // The Dashboard's own answer to a wrong password: back to the login page.
        expect(answer.status).toBe(302);
        expect(answer.headers.location).toBe('/dashboard/login');
      }
      for (const guess of ['guess-after-limit', password()]) {
        const answer = await logIn(guesser, guess);
        statuses.push(answer.status);
        expect(answer.status).toBe(429);
        expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'rate_limited' } });
        expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
        expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(15 * 60);
      }
      // The same path spelled otherwise reaches the same Dashboard route, and the same throttle.
      for (const route of ['/dashboard/LOGIN', '/dashboard/login/']) {
        const answer = await request(route, {
          method: 'POST',
          from: GUESSER,
          headers: { Cookie: guesser.cookie, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username: 'admin', password: password(), _csrf: guesser.csrf }).toString(),
        });
        statuses.push(answer.status);
        expect(answer.status).toBe(429);
      }
      const granted = await dashboardConfig(guesser.cookie, GUESSER);
      statuses.push(granted.status);
      expect(granted.status).toBe(401);
      expect(granted.text).not.toContain(stack.info.masterKey);

      // Guesses sent at once count as they arrive: no more than the limit reach the password check.
      const concurrent = await loginPage(CONCURRENT_GUESSER);
      const answers = await Promise.all(Array.from({ length: 4 * MAX_FAILURES }, (_, i) => logIn({ ...concurrent }, `parallel-guess-${i}`)));
      const concurrentStatuses = answers.map((answer) => answer.status);
      statuses.push(...concurrentStatuses);
      expect(concurrentStatuses.filter((status) => status === 302)).toHaveLength(MAX_FAILURES);
      expect(concurrentStatuses.filter((status) => status === 429)).toHaveLength(3 * MAX_FAILURES);

      // Another address is not locked out: the operator logs in and gets the master key.
      const operator = await loginPage(OPERATOR);
      const login = await logIn(operator, password());
      expect(login.status).toBe(302);
      expect(login.headers.location).toBe('/dashboard/apps');
      const config = await dashboardConfig(operator.cookie);
      expect(config.status).toBe(200);
      expect(JSON.parse(config.text).apps[0].masterKey).toBe(stack.info.masterKey);
    },
  );
});

test('the master key only after a login: the Dashboard config answers 401 without one, and the session cookie is not signed with the master key', async () => {
  const statuses: number[] = [];
  await recordAttackChecked(
    () => ({ attack: 'Dashboard config (master key) without a login, with a visitor cookie, and with a cookie signed with the master key', requests: statuses.length, answers: tally(statuses) }),
    async () => {
      const anonymous = await dashboardConfig();
      statuses.push(anonymous.status);
      expect(anonymous.status).toBe(401);
      expect(anonymous.text).not.toContain(stack.info.masterKey);

      // The cookie an unauthenticated visitor gets: its signature does not verify with the master key, so it
      // cannot serve to test master-key guesses offline.
      const visitor = await loginPage(GUESSER);
      const unauthenticated = parseSessionCookie(visitor.cookie);
      expect(unauthenticated.signature).not.toBe(sign(unauthenticated.id, stack.info.masterKey));
      const withVisitorCookie = await dashboardConfig(visitor.cookie, GUESSER);
      statuses.push(withVisitorCookie.status);
      expect(withVisitorCookie.status).toBe(401);

      // A logged-in session's id, signed with the master key instead of the cookie secret, is not accepted.
      const operator = await loginPage(OPERATOR);
      expect((await logIn(operator, password())).status).toBe(302);
      const loggedIn = parseSessionCookie(operator.cookie);
      expect(loggedIn.signature).not.toBe(sign(loggedIn.id, stack.info.masterKey));
      const forged = `parse_dash=${encodeURIComponent(`s:${loggedIn.id}.${sign(loggedIn.id, stack.info.masterKey)}`)}`;
      const withForgedCookie = await dashboardConfig(forged);
      statuses.push(withForgedCookie.status);
      expect(withForgedCookie.status).toBe(401);
      expect(withForgedCookie.text).not.toContain(stack.info.masterKey);
      // The genuine cookie of that session does get the key: the forged one failed on its signature alone.
      const genuine = await dashboardConfig(operator.cookie);
      expect(genuine.status).toBe(200);
      expect(JSON.parse(genuine.text).apps[0].masterKey).toBe(stack.info.masterKey);
    },
  );
});

test('/metrics refuses a request without the token or with a wrong one', async () => {
  const wrong = [
    undefined,
    'Bearer wrong-token',
    `Bearer ${METRICS_TOKEN}x`,
    `Bearer ${METRICS_TOKEN.slice(0, -1)}${METRICS_TOKEN.endsWith('a') ? 'b' : 'a'}`,
    `bearer ${METRICS_TOKEN}`,
    `Basic ${Buffer.from(`metrics:${METRICS_TOKEN}`).toString('base64')}`,
    METRICS_TOKEN,
  ];
  const statuses: number[] = [];
  for (const authorization of wrong) {
    const answer = await request('/metrics', { headers: authorization === undefined ? {} : { Authorization: authorization } });
    statuses.push(answer.status);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.text)).toEqual({ error: { code: 'unauthorized', message: 'metrics need Authorization: Bearer METRICS_TOKEN' } });
  }
  const scraped = await request('/metrics', { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(scraped.status).toBe(200);
  expect(scraped.text).toMatch(/^batch_memory_batches_submitted_total \d+$/m);
  recordAttack({ attack: '/metrics without its token, with wrong tokens and schemes', requests: statuses.length, answers: tally(statuses), refused: statuses.every((status) => status === 401) });
});

test('refused LiveQuery subscriptions and a malformed frame leave no session token in the log, and their refusals are still logged', async () => {
  const user = await api.signUp('livequery');
  const forgedToken = `r:${randomBytes(16).toString('hex')}`;
  const customToken = `custom-${randomBytes(8).toString('hex')}`;
  sessionTokens.push(user.token, forgedToken, customToken);
  const P = parse();
  const wsURL = origin.replace(/^http/, 'ws');
  const client = new P.LiveQueryClient({ applicationId: stack.info.appId, serverURL: wsURL, javascriptKey: '', masterKey: '', sessionToken: '', installationId: '' });
  client.open();
  const refusals: { code: number; message: string }[] = [];
  try {
    // An unknown token on a class that needs a user, and a real user's token on a master-only class.
    for (const [className, token] of [
      ['BatchMemoryRequest', forgedToken],
      ['BatchMemoryChunk', user.token],
    ]) {
      const subscription = client.subscribe(new P.Query(className), token);
      if (!subscription) throw new Error('no subscription');
      subscription.on('error', () => undefined);
      const refused = await subscription.subscribePromise.then(
        () => undefined,
        (error: Parse.Error) => ({ code: error.code, message: error.message }),
      );
      if (refused) refusals.push(refused);
    }
  } finally {
    await client.close();
  }
  expect(refusals).toEqual([
    { code: 101, message: 'Permission denied' },
    { code: 119, message: 'Permission denied' },
  ]);
  // A frame that is not JSON is logged as it came, token and all, unless redacted.
  const socket = new WebSocket(wsURL);
  await new Promise<void>((resolve) => socket.once('open', resolve));
  socket.send(`{"op":"connect","applicationId":"${stack.info.appId}","sessionToken":"${customToken}"`);

  const log = await waitFor(
    'the refusals and the malformed frame in the server log',
    async () => {
      const text = serverLog();
      return (text.match(/Failed running beforeSubscribe on (BatchMemoryRequest|BatchMemoryChunk) for session/g) ?? []).length >= 2 && text.includes('unable to parse request') ? text : undefined;
    },
    10_000,
  );
  socket.close();
  const leaked = [forgedToken, user.token, customToken].filter((token) => log.includes(token));
  expect(leaked).toEqual([]);
  expect(log).toContain(`Failed running beforeSubscribe on BatchMemoryRequest for session ${REDACTED} with`);
  expect(log).toContain(`Failed running beforeSubscribe on BatchMemoryChunk for session ${REDACTED} with`);
  expect(log).toContain(`"sessionToken\\":\\"${REDACTED}`);
  recordAttack({
    attack: 'LiveQuery subscriptions with a forged and an unauthorised session token, and a malformed frame with a token: refused, and the tokens kept out of the log',
    requests: 3,
    answers: tally([...refusals.map((r) => `error ${r.code}`), 'not parsed']),
    refused: refusals.length === 2 && leaked.length === 0,
  });
});

test('a File naming any host but the public server one is refused in Cloud Function parameters, before the function runs', async () => {
  const user = await api.signUp('file-url');
  sessionTokens.push(user.token);
  const urls = ['http://127.0.0.1:9/evil.txt', 'http://169.254.169.254/latest/meta-data/', 'https://files.example.net/x.txt'];
  const answers = [];
  for (const url of urls) {
    answers.push(await api.call('/parse/functions/addMemoryBatch', { token: user.token, body: { memories: [{ content: 'with a file' }], attachment: { __type: 'File', name: 'evil.txt', url } } }));
  }
  const stored = await api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: user.id } });
  const statuses = answers.map((answer) => answer.status);
  recordAttack({
    attack: 'File objects naming loopback, metadata and foreign hosts in Cloud Function parameters',
    requests: statuses.length,
    answers: tally(statuses),
    refused: statuses.every((status) => status === 400) && stored === 0,
  });
  answers.forEach((answer, index) => expect(answer).toMatchObject({ status: 400, body: { code: 130, error: `File URL domain '${new URL(urls[index]).hostname}' is not allowed.` } }));
  expect(stored).toBe(0);
});

test('booted as npm start boots it, the server logs no DeprecationWarning, and no session token after authenticated traffic', async () => {
  const username = `operator-${randomBytes(6).toString('hex')}`;
  const signedUp = await api.call('/parse/users', { body: { username, password: 'test-password-123' } });
  expect(signedUp.status).toBe(201);
  const loggedIn = await api.call('/parse/login', { body: { username, password: 'test-password-123' } });
  expect(loggedIn.status).toBe(200);
  const token = loggedIn.body.sessionToken as string;
  sessionTokens.push(signedUp.body.sessionToken, token);

  const viaRest = await api.call('/api/v1/memory/batch', { token, body: { memories: [{ content: 'first memory' }, { content: 'second memory', tags: ['demo'] }] } });
  expect(viaRest.status).toBe(200);
  const viaBearer = await api.call(`/api/v1/memory/batch/${viaRest.body.batch_id}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(viaBearer.status).toBe(200);
  const viaFunction = await api.call('/parse/functions/addMemoryBatch', { token, body: { namespace: 'demo', memories: [{ content: 'third memory' }] } });
  expect(viaFunction.status).toBe(200);
  // Refused requests log too: a bad batch, an unknown token on both doors.
  const invalid = await api.call('/parse/functions/addMemoryBatch', { token, body: { memories: [] } });
  expect(invalid.status).toBe(400);
  const unknownToken = `r:${randomBytes(16).toString('hex')}`;
  sessionTokens.push(unknownToken);
  expect((await api.call('/parse/users/me', { token: unknownToken })).status).toBe(400);
  expect((await api.call('/api/v1/memory/batch', { token: unknownToken, body: { memories: [{ content: 'x' }] } })).status).toBe(401);
  expect((await api.call('/parse/logout', { token, body: {} })).status).toBe(200);

  const log = serverLog();
  expect(log).toContain('"msg":"parse server listening"');
  expect(log.match(/.*DeprecationWarning.*/g) ?? []).toEqual([]);
  expect(sessionTokens.filter((sessionToken) => log.includes(sessionToken))).toEqual([]);
});
