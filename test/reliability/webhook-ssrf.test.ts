/**
 * Webhook SSRF. A webhook_url naming a loopback, private or metadata address in any spelling is
 * refused at submit when the address is written out, on every door; a host name that resolves to one
 * is accepted and refused at delivery. An "internal service" listening on loopback (127.0.0.1 and
 * ::1, one port) proves nothing reached it; a redirect from an allowed receiver is not followed; the
 * recorded error does not tell an open port from a closed one. Private and metadata addresses are
 * only ever refused before any connection: no test sends traffic beyond loopback.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config';
import { webhookUrlProblems } from '../../schema/memory';
import { type IpNetwork, parseIp, parseNetwork, restrictedRange } from '../../schema/network';
import { webhookAddress } from '../../worker/webhookDelivery';
import { memories, newUser, type TestUser, waitFor } from '../support/helpers';
import { postJson, rest } from '../support/rest';
import { WEBHOOK_TEST_HOST, stackInfo } from '../support/stackInfo';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { recordAttack, stackApi, tally } from './stackApi';

const SECRET = 'webhook-secret-of-the-attacker-01';
const GENERIC_ERROR = 'webhook delivery failed';
const networks = (...cidrs: string[]): IpNetwork[] => cidrs.map((cidr) => parseNetwork(cidr) as IpNetwork);

/** Spellings of loopback addresses, each with the restricted range the URL parser's canonical form falls in. */
const loopbackSpellings = (port: number): [string, string][] => [
  [`http://127.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://2130706433:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://0x7f000001:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://0X7F.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://0177.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://017700000001:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.000.000.001:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.0.0.1.:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://%31%32%37.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://１２７.０.０.１:${port}/`, 'loopback 127.0.0.0/8'],
  [`HTTP://127.0.0.1:${port}/HOOK`, 'loopback 127.0.0.0/8'],
  [`https://127.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.0.0.2:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.255.255.254:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://evil@127.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://receiver.example:443@127.0.0.1:${port}/`, 'loopback 127.0.0.0/8'],
  [`http://127.0.0.1:${port}#@receiver.example/`, 'loopback 127.0.0.0/8'],
  [`http://127.0.0.1:${port}\\@receiver.example/`, 'loopback 127.0.0.0/8'],
  [`http://0:${port}/`, 'unspecified (this network) 0.0.0.0/8'],
  [`http://0.0.0.0:${port}/`, 'unspecified (this network) 0.0.0.0/8'],
  [`http://[::1]:${port}/`, 'loopback ::1/128'],
  [`http://[0:0:0:0:0:0:0:1]:${port}/`, 'loopback ::1/128'],
  [`http://[0000::0001]:${port}/`, 'loopback ::1/128'],
  [`http://[::]:${port}/`, 'unspecified ::/128'],
  [`http://[::ffff:7f00:1]:${port}/`, 'IPv4-mapped ::ffff:0:0/96'],
  [`http://[::ffff:127.0.0.1]:${port}/`, 'IPv4-mapped ::ffff:0:0/96'],
  [`http://[::FFFF:127.0.0.3]:${port}/`, 'IPv4-mapped ::ffff:0:0/96'],
  [`http://[::127.0.0.1]:${port}/`, 'IPv4-compatible ::/96'],
  [`http://[64:ff9b::7f00:1]:${port}/`, 'NAT64 64:ff9b::/96'],
  [`http://[2002:7f00:1::]:${port}/`, '6to4 2002::/16'],
];

/** Private, metadata and other restricted addresses: refused at submit, never connected to. */
const privateSpellings: [string, string][] = [
  ['http://10.0.0.1/', 'private 10.0.0.0/8'],
  ['http://167772161/', 'private 10.0.0.0/8'],
  ['http://172.16.0.1/', 'private 172.16.0.0/12'],
  ['http://172.31.255.255/', 'private 172.16.0.0/12'],
  ['http://192.168.1.1/', 'private 192.168.0.0/16'],
  ['http://0xc0a80101/', 'private 192.168.0.0/16'],
  ['http://100.64.0.1/', 'CGNAT shared 100.64.0.0/10'],
  ['http://169.254.169.254/latest/meta-data/', 'link-local 169.254.0.0/16'],
  ['http://0251.0376.0251.0376/', 'link-local 169.254.0.0/16'],
  ['http://2852039166/', 'link-local 169.254.0.0/16'],
  ['http://[::ffff:a9fe:a9fe]/', 'IPv4-mapped ::ffff:0:0/96'],
  ['http://[64:ff9b::a9fe:a9fe]/', 'NAT64 64:ff9b::/96'],
  ['http://[fd00:ec2::254]/', 'unique local fc00::/7'],
  ['http://[FD00:EC2:0:0:0:0:0:254]/', 'unique local fc00::/7'],
  ['http://[fc00::1]/', 'unique local fc00::/7'],
  ['http://[fe80::1]/', 'link-local fe80::/10'],
  ['http://[fec0::1]/', 'site-local fec0::/10'],
  ['http://[ff02::1]/', 'multicast ff00::/8'],
  ['http://224.0.0.1/', 'multicast 224.0.0.0/4'],
  ['http://255.255.255.255/', 'reserved and broadcast 240.0.0.0/4'],
  ['http://198.18.0.1/', 'benchmarking 198.18.0.0/15'],
  ['http://192.0.2.1/', 'documentation 192.0.2.0/24'],
  ['http://192.0.0.170/', 'IETF protocol assignments 192.0.0.0/24'],
  ['http://[2001:db8::1]/', 'documentation 2001:db8::/32'],
  ['http://[2001::1]/', 'IETF protocol assignments 2001::/23'],
  ['http://[100::1]/', 'discard 100::/64'],
  ['http://[1::1]/', 'not global unicast (outside 2000::/3)'],
];

describe('the address classifier (no stack)', () => {
  test.each([...loopbackSpellings(8080), ...privateSpellings])('%s is refused at submit as %s', (url, range) => {
    const [problem] = webhookUrlProblems(url, networks(`${WEBHOOK_TEST_HOST}/32`));
    expect(problem).toContain(`(${range}): webhooks reach public addresses only`);
  });

  test.each([
    'http://8.8.8.8/',
    'https://1.1.1.1/hook',
    'http://172.32.0.1/',
    'http://100.128.0.1/',
    'http://192.169.0.1/',
    'http://11.0.0.1/',
    'http://223.255.255.255/',
    'http://[2606:4700:4700::1111]/',
    'http://[2a00:1450:4001::200e]:8443/',
  ])('public address %s passes', (url) => expect(webhookUrlProblems(url, [])).toEqual([]));

  test.each(['http://localhost/', 'http://LOCALHOST./', 'http://ｌｏｃａｌｈｏｓｔ/', 'https://receiver.example/hook', 'http://127.0.0.1.nip.io/', 'http://0x7f.example/'])(
    'host name %s passes at submit (it is checked where it resolves, at delivery)',
    (url) => expect(webhookUrlProblems(url, [])).toEqual([]),
  );

  test('WEBHOOK_ALLOWED_NETWORKS lets exactly its networks through, in their own family', () => {
    const allowed = networks('127.0.0.3/32', '10.20.0.0/16', 'fd12:3456::/32');
    for (const url of ['http://127.0.0.3:9/', 'http://2130706435/', 'http://10.20.255.1/', 'http://[fd12:3456:1::1]/']) expect(webhookUrlProblems(url, allowed)).toEqual([]);
    for (const url of ['http://127.0.0.4/', 'http://127.0.0.2/', 'http://[::ffff:127.0.0.3]/', 'http://10.21.0.1/', 'http://[fd12:3457::1]/', 'http://[::1]/'])
      expect(webhookUrlProblems(url, allowed)).toHaveLength(1);
  });

  test('credentials in the URL are refused; a malformed URL is left to the field check', () => {
    expect(webhookUrlProblems('https://user:pass@receiver.example/', [])).toEqual(['must not contain a user name or password']);
    expect(webhookUrlProblems('not a url', [])).toEqual([]);
  });

  test('parseIp reads canonical addresses only; restrictedRange classifies what resolvers return', () => {
    expect(parseIp('::ffff:127.0.0.1')).toEqual(parseIp('::ffff:7f00:1'));
    expect(parseIp('[::1]')).toEqual({ family: 6, value: 1n });
    expect(parseIp('fe80::1%lo')).toEqual(parseIp('fe80::1'));
    expect(parseIp('1:2:3:4:5:6:7:8')).toEqual({ family: 6, value: 0x00010002000300040005000600070008n });
    // Octal, hex and short forms are the URL parser's to canonicalise, never guessed here.
    for (const text of ['0177.0.0.1', '0x7f.0.0.1', '127.1', '2130706433', '256.0.0.1', '1.2.3.4.5', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '::1.2.3', ':1', 'localhost', ''])
      expect(parseIp(text)).toBeUndefined();
    expect(restrictedRange(parseIp('93.184.215.14')!)).toBeUndefined();
    expect(restrictedRange(parseIp('2001:4860:4860::8888')!)).toBeUndefined();
    expect(restrictedRange(parseIp('fe80::1%eth0')!)).toBe('link-local fe80::/10');
    expect(restrictedRange(parseIp('::ffff:8.8.8.8')!)).toBe('IPv4-mapped ::ffff:0:0/96');
  });

  test('WEBHOOK_ALLOWED_NETWORKS is validated at start-up; unset allows nothing', () => {
    expect(loadConfig({}).WEBHOOK_ALLOWED_NETWORKS).toBeUndefined();
    expect(loadConfig({ WEBHOOK_ALLOWED_NETWORKS: ' 127.0.0.3/32, fd12::/48,10.1.2.3 ' }).WEBHOOK_ALLOWED_NETWORKS).toEqual(networks('127.0.0.3/32', 'fd12::/48', '10.1.2.3/32'));
    for (const bad of ['127.0.0.1/33', 'localhost', '0177.0.0.1/32', '10.0.0.0/8,,']) {
      expect(() => loadConfig({ WEBHOOK_ALLOWED_NETWORKS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ WEBHOOK_ALLOWED_NETWORKS: bad })).toThrow(/WEBHOOK_ALLOWED_NETWORKS must be comma-separated CIDRs/);
    }
  });

  test('delivery checks every address a name resolves to, and connects to the one it checked', async () => {
    const answers =
      (...addresses: string[]) =>
      async () =>
        addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    // A name that answers with a public and a loopback address (rebinding in one answer) is refused whole.
    await expect(webhookAddress('rebind.example', [], answers('93.184.215.14', '127.0.0.1'))).rejects.toThrow('rebind.example resolves to 127.0.0.1, loopback 127.0.0.0/8');
    await expect(webhookAddress('metadata.example', [], answers('fd00:ec2::254'))).rejects.toThrow('unique local fc00::/7');
    await expect(webhookAddress('v4mapped.example', [], answers('::ffff:169.254.169.254'))).rejects.toThrow('IPv4-mapped');
    await expect(webhookAddress('empty.example', [], answers())).rejects.toThrow('resolves to no address');
    await expect(webhookAddress('receiver.example', [], answers('93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'))).resolves.toEqual({ address: '93.184.215.14', family: 4 });
    // The system resolver (/etc/hosts for these): literal and named loopback, and the one allowed test address.
    await expect(webhookAddress('localhost', [])).rejects.toThrow(/resolves to (127\.\d+\.\d+\.\d+|::1), loopback/);
    await expect(webhookAddress('[::1]', [])).rejects.toThrow('[::1] resolves to ::1, loopback ::1/128');
    await expect(webhookAddress(WEBHOOK_TEST_HOST, networks(`${WEBHOOK_TEST_HOST}/32`))).resolves.toEqual({ address: WEBHOOK_TEST_HOST, family: 4 });
  });
});

/** The attacker's target: an "internal service" on 127.0.0.1 and ::1, the same port on both, counting connections. */
async function internalService(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const make = () => http.createServer((_req, res) => res.end('internal')).on('connection', () => connections++);
  for (let attempt = 0; ; attempt++) {
    const v4 = make();
    await new Promise<void>((resolve) => v4.listen(0, '127.0.0.1', resolve));
    const { port } = v4.address() as AddressInfo;
    const v6 = make();
    const listening = await new Promise<boolean>((resolve) => {
      v6.once('error', () => resolve(false));
      v6.listen(port, '::1', () => resolve(true));
    });
    const close = (server: http.Server) => new Promise<void>((resolve) => server.close(() => resolve()));
    if (listening) {
      return {
        port,
        connections: () => connections,
        close: async () => {
          await Promise.all([close(v4), close(v6)]);
        },
      };
    }
    await close(v4);
    if (attempt > 20) throw new Error('no port free on both 127.0.0.1 and ::1');
  }
}

/** A port on WEBHOOK_TEST_HOST nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, WEBHOOK_TEST_HOST, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Names that resolve to loopback without asking a DNS server: localhost in several spellings, and up
 * to three other /etc/hosts names (such as this machine's own name) that every entry maps to loopback.
 */
function loopbackNames(): string[] {
  const hosts = fs.existsSync('/etc/hosts') ? fs.readFileSync('/etc/hosts', 'utf8') : '';
  const entries = hosts
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim().toLowerCase().split(/\s+/))
    .filter((fields) => fields.length > 1);
  const loopback = (address: string) => {
    const ip = parseIp(address);
    return ip !== undefined && restrictedRange(ip)?.startsWith('loopback') === true;
  };
  const names = new Set(entries.flatMap(([, ...names]) => names));
  const listed = [...names].filter((name) => name !== 'localhost' && /^[a-z0-9.-]+$/.test(name) && entries.every(([address, ...names]) => !names.includes(name) || loopback(address)));
  return ['localhost', 'LOCALHOST', 'LocalHost', 'ｌｏｃａｌｈｏｓｔ', ...listed.slice(0, 3)];
}

async function webhookOutcome(user: TestUser, batchId: string): Promise<{ status: string; attempts: number; error?: string }> {
  return waitFor(
    `the webhook of ${batchId} to finish`,
    async () => {
      const answer = await rest(`/memory/batch/${batchId}`, { token: user.sessionToken });
      return answer.body?.webhook?.status === 'failed' || answer.body?.webhook?.status === 'delivered' ? answer.body.webhook : undefined;
    },
    120_000,
  );
}

describe('on the shared stack', () => {
  const api = stackApi(stackInfo());
  let internal: Awaited<ReturnType<typeof internalService>>;
  beforeAll(async () => {
    internal = await internalService();
  });
  afterAll(() => internal.close());

  const batchRows = (user: TestUser) => api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: user.id } });

  /** Submits every URL through the three doors (REST JSON, NDJSON query options, Cloud Function), one user per door. */
  async function submitEverywhere(urls: string[]): Promise<{ statuses: number[]; wrong: string[]; stored: number }> {
    const [restUser, ndjsonUser, cloudUser] = await Promise.all([newUser('ssrf-rest'), newUser('ssrf-ndjson'), newUser('ssrf-cloud')]);
    const statuses: number[] = [];
    const wrong: string[] = [];
    const namesField = (details: { path: string; message: string }[] | undefined) => details?.some((d) => d.path === 'webhook_url' && /^must not point to/.test(d.message)) === true;
    for (const url of urls) {
      const viaRest = await postJson('/memory/batch', { memories: memories(1), webhook_url: url, webhook_secret: SECRET }, { token: restUser.sessionToken });
      const query = new URLSearchParams({ webhook_url: url, webhook_secret: SECRET });
      const viaNdjson = await rest(`/memory/batch?${query}`, { method: 'POST', token: ndjsonUser.sessionToken, headers: { 'Content-Type': 'application/x-ndjson' }, body: '{"content":"a memory"}\n' });
      const viaCloud = await api.call('/parse/functions/addMemoryBatch', { token: cloudUser.sessionToken, body: { memories: memories(1), webhook_url: url, webhook_secret: SECRET } });
      statuses.push(viaRest.status, viaNdjson.status, viaCloud.status);
      if (viaRest.status !== 400 || viaRest.body.error.code !== 'invalid_request' || !namesField(viaRest.body.error.details)) wrong.push(`REST JSON ${url}: ${viaRest.status} ${viaRest.text}`);
      if (viaNdjson.status !== 400 || viaNdjson.body.error.code !== 'invalid_request' || !namesField(viaNdjson.body.error.details)) wrong.push(`NDJSON ${url}: ${viaNdjson.status} ${viaNdjson.text}`);
      if (viaCloud.status !== 400 || viaCloud.body.code !== 142 || !/webhook_url must not point to/.test(viaCloud.body.error))
        wrong.push(`Cloud Function ${url}: ${viaCloud.status} ${JSON.stringify(viaCloud.body)}`);
    }
    const stored = (await Promise.all([restUser, ndjsonUser, cloudUser].map(batchRows))).reduce((a, b) => a + b, 0);
    return { statuses, wrong, stored };
  }

  test(`literal loopback addresses in ${loopbackSpellings(0).length} spellings (and the server itself) are refused at submit on every door: 400 naming webhook_url, nothing stored, nothing reached`, async () => {
    const own = new URL(stackInfo().serverURL);
    const urls = [...loopbackSpellings(internal.port).map(([url]) => url), `http://127.0.0.1:${own.port}/parse/health`, `http://[::1]:${own.port}/parse/health`];
    const { statuses, wrong, stored } = await submitEverywhere(urls);
    const refused = wrong.length === 0 && stored === 0 && internal.connections() === 0;
    recordAttack({ attack: `webhook_url: literal loopback address in ${urls.length} spellings (REST JSON, NDJSON, Cloud Function)`, requests: statuses.length, answers: tally(statuses), refused });
    expect(wrong).toEqual([]);
    expect(stored).toBe(0);
    expect(internal.connections()).toBe(0);
  });

  test('literal private, metadata and other restricted addresses are refused at submit on every door, before any connection', async () => {
    const urls = privateSpellings.map(([url]) => url);
    const { statuses, wrong, stored } = await submitEverywhere(urls);
    recordAttack({
      attack: `webhook_url: literal private / metadata / reserved address in ${urls.length} spellings (REST JSON, NDJSON, Cloud Function)`,
      requests: statuses.length,
      answers: tally(statuses),
      refused: wrong.length === 0 && stored === 0,
    });
    expect(wrong).toEqual([]);
    expect(stored).toBe(0);
  });

  test('host names that resolve to loopback are accepted, the batch completes, and delivery is refused: nothing reached, the generic error recorded', async () => {
    const user = await newUser('ssrf-names');
    const names = loopbackNames();
    const urls = names.map((name) => `http://${name}:${internal.port}/hook`);
    const submitted = await Promise.all(urls.map((url) => postJson('/memory/batch', { memories: memories(2), webhook_url: url, webhook_secret: SECRET }, { token: user.sessionToken })));
    expect(submitted.map((answer) => [answer.status, answer.body.status])).toEqual(urls.map(() => [200, 'completed']));
    const outcomes = await Promise.all(submitted.map((answer) => webhookOutcome(user, answer.body.batch_id)));
    // Checked once every delivery is final: no attempt ever connected.
    const connections = internal.connections();
    const answers = outcomes.map((o) => `${o.status}: ${o.error ?? ''}`);
    recordAttack({
      attack: `webhook_url: host name resolving to loopback (${names.length} names: localhost spellings and /etc/hosts entries)`,
      requests: urls.length,
      answers: tally(answers),
      refused: connections === 0 && outcomes.every((o) => o.status === 'failed' && o.error === GENERIC_ERROR),
    });
    expect(outcomes).toEqual(urls.map(() => ({ status: 'failed', attempts: 3, error: GENERIC_ERROR })));
    expect(connections).toBe(0);
    // The cause is in the worker's structured log only.
    const workerLog = fs.readFileSync(path.join(stackInfo().logDir, 'worker.log'), 'utf8');
    const gaveUp = workerLog.split('\n').filter((line) => line.includes('"webhook delivery gave up"') && line.includes(submitted[0].body.batch_id));
    expect(gaveUp).toHaveLength(1);
    expect(JSON.parse(gaveUp[0]).error).toMatch(/^refused before connecting: localhost resolves to (127\.0\.0\.1|::1), loopback/);
  });

  test('a redirect from the allowed receiver to a loopback service is not followed (302, 307 and 308)', async () => {
    const user = await newUser('ssrf-redirect');
    const receivers = await Promise.all([302, 307, 308].map((status) => startWebhookReceiver([status], { Location: `http://127.0.0.1:${internal.port}/internal` })));
    try {
      const submitted = await Promise.all(receivers.map((hook) => postJson('/memory/batch', { memories: memories(2), webhook_url: hook.url, webhook_secret: SECRET }, { token: user.sessionToken })));
      const outcomes = await Promise.all(submitted.map((answer) => webhookOutcome(user, answer.body.batch_id)));
      const connections = internal.connections();
      recordAttack({
        attack: 'webhook redirect (302/307/308) from the allowed receiver to a loopback service',
        requests: receivers.length,
        answers: tally(outcomes.map((o) => `${o.status}: ${o.error ?? ''}`)),
        refused: connections === 0 && outcomes.every((o) => o.status === 'failed'),
      });
      expect(outcomes).toEqual(receivers.map(() => ({ status: 'failed', attempts: 3, error: GENERIC_ERROR })));
      expect(receivers.map((hook) => hook.deliveries.length)).toEqual([3, 3, 3]);
      expect(connections).toBe(0);
    } finally {
      await Promise.all(receivers.map((hook) => hook.close()));
    }
  });

  test('the recorded error does not tell an open port from a closed one, nor either from a refused address', async () => {
    const user = await newUser('ssrf-oracle');
    const open = await startWebhookReceiver([500]);
    try {
      const targets = [open.url, `http://${WEBHOOK_TEST_HOST}:${await closedPort()}/hook`, `http://localhost:${internal.port}/hook`];
      const submitted = await Promise.all(targets.map((url) => postJson('/memory/batch', { memories: memories(2), webhook_url: url, webhook_secret: SECRET }, { token: user.sessionToken })));
      const outcomes = await Promise.all(submitted.map((answer) => webhookOutcome(user, answer.body.batch_id)));
      const distinct = new Set(outcomes.map((o) => JSON.stringify(o)));
      recordAttack({
        attack: 'webhook error as a port scanner (open port answering 500, closed port, refused address)',
        requests: targets.length,
        answers: tally(outcomes.map((o) => `${o.status}: ${o.error ?? ''}`)),
        refused: distinct.size === 1,
      });
      expect(outcomes).toEqual(targets.map(() => ({ status: 'failed', attempts: 3, error: GENERIC_ERROR })));
      expect(open.deliveries.length).toBe(3);
      // Operators still see why, in the worker's log.
      const workerLog = fs.readFileSync(path.join(stackInfo().logDir, 'worker.log'), 'utf8').split('\n');
      const cause = (batchId: string) => JSON.parse(workerLog.find((line) => line.includes('"webhook delivery gave up"') && line.includes(batchId)) ?? '{}').error;
      expect(submitted.map((answer) => cause(answer.body.batch_id))).toEqual(['HTTP 500', expect.stringMatching(/ECONNREFUSED/), expect.stringMatching(/^refused before connecting/)]);
    } finally {
      await open.close();
    }
  });
});
