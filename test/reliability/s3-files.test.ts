/**
 * Files in S3 (FILES_ADAPTER=s3) for instances that share no disk: a cluster stack of two Parse Server
 * instances whose files go to a real S3-compatible server (moto's, on loopback). A file stored through one
 * instance is served by the other, a batch submitted through one is processed and read back through the
 * other, nothing lands on the local disk, batch and results files stay refused to their owner and to
 * anonymous clients on both instances, and the bucket's secret never reaches a log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, terminate, waitFor } from '../../scripts/processes';
import { memories } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { recordAttack, stackApi, tally } from './stackApi';

const BUCKET = 'batch-memory-s3-test';
const S3_SECRET = `s3-secret-${process.pid}-0123456789`;

let moto: ChildProcess;
let endpoint: string;
let stack: PrivateStack;
let onA: ReturnType<typeof stackApi>;
let onB: ReturnType<typeof stackApi>;

beforeAll(async () => {
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  // moto's S3 server (PyPI moto[server], installed by scripts/setup.sh), in memory, on loopback only.
  moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  await waitFor(
    'moto_server to answer',
    async () => {
      if (moto.exitCode !== null) throw new Error(`moto_server exited with code ${moto.exitCode} (pip install 'moto[server]')`);
      return (await fetch(`${endpoint}/`).catch(() => undefined))?.ok;
    },
    30_000,
  );
  stack = await startPrivateStack(
    's3',
    { FILES_ADAPTER: 's3', S3_BUCKET: BUCKET, S3_ENDPOINT: endpoint, S3_REGION: 'eu-west-1', S3_ACCESS_KEY_ID: 'test-access-key-id', S3_SECRET_ACCESS_KEY: S3_SECRET, S3_BUCKET_PREFIX: 'files/' },
    { instances: 2, workers: 1 },
  );
  onA = stackApi({ ...stack.info, serverURL: stack.info.instanceURLs[0] });
  onB = stackApi({ ...stack.info, serverURL: stack.info.instanceURLs[1] });
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
  if (moto?.pid) await terminate(moto.pid);
});

/** The object keys in the bucket, from S3's ListObjectsV2. */
async function bucketKeys(): Promise<string[]> {
  const listing = await (await fetch(`${endpoint}/${BUCKET}?list-type=2&max-keys=1000`)).text();
  return [...listing.matchAll(/<Key>([^<]+)<\/Key>/g)].map((match) => match[1]);
}

async function download(instanceURL: string, name: string, headers: Record<string, string>): Promise<{ status: number; bytes: Buffer }> {
  const response = await fetch(`${instanceURL}/files/${stack.info.appId}/${encodeURIComponent(name)}`, { headers });
  return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
}

test('a file stored through instance A is served by instance B from the bucket, and nothing is stored on the local disk', async () => {
  const content = `stored through A at ${Date.now()}`;
  const stored = await fetch(`${stack.info.instanceURLs[0]}/files/probe.txt`, {
    method: 'POST',
    headers: { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Master-Key': stack.info.masterKey, 'Content-Type': 'text/plain' },
    body: content,
  });
  expect(stored.status).toBe(201);
  const { name } = (await stored.json()) as { name: string };
  expect(await bucketKeys()).toContain(`files/${name}`);
  const served = await download(stack.info.instanceURLs[1], name, { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Master-Key': stack.info.masterKey });
  expect(served.status).toBe(200);
  expect(served.bytes.toString()).toBe(content);
  expect(fs.existsSync(path.join(stack.info.env.DATA_DIR, 'files'))).toBe(false);
});

test('a batch submitted through A is processed from the bucket and read back through B; its files are refused to its owner and to anonymous clients on both instances', async () => {
  const user = await onA.signUp('s3');
  const count = 250;
  const accepted = await onA.call('/api/v1/memory/batch', { token: user.token, body: { memories: memories(count, 150) } });
  expect(accepted.status).toBe(200);
  expect(accepted.body).toMatchObject({ status: 'completed', processed: count, failed: 0 });
  const batchId = accepted.body.batch_id as string;

  const results = await onB.call(`/api/v1/memory/batch/${batchId}/results`, { token: user.token });
  expect(results.status).toBe(200);
  expect(String(results.body).trim().split('\n')).toHaveLength(count);
  expect(await onB.memoryRows(batchId)).toEqual({ rows: count, duplicates: 0 });

  const batch = await onB.batch(batchId);
  const parts = (await onB.call(`/parse/classes/BatchMemoryPart?where=${encodeURIComponent(JSON.stringify({ partsKey: batch.partsKey }))}&keys=name`, { master: true })).body.results as {
    name: string;
  }[];
  expect(parts.length).toBeGreaterThan(1);
  const files = [...parts.map((part) => part.name), (batch.resultsFile as { name: string }).name];
  const keys = await bucketKeys();
  for (const name of files) expect(keys).toContain(`files/${name}`);
  expect(fs.existsSync(path.join(stack.info.env.DATA_DIR, 'files'))).toBe(false);

  const statuses: number[] = [];
  for (const instanceURL of stack.info.instanceURLs) {
    for (const name of files) {
      const asMaster = await download(instanceURL, name, { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Master-Key': stack.info.masterKey });
      expect(asMaster.status).toBe(200);
      expect(asMaster.bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip
      const owner: Record<string, string> = { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Session-Token': user.token };
      for (const headers of [owner, {}]) {
        const refused = await download(instanceURL, name, headers);
        statuses.push(refused.status);
        expect(refused.status).toBe(403);
      }
    }
  }
  recordAttack({
    attack: 'batch and results files in S3 asked for by their owner and anonymously, through both instances',
    requests: statuses.length,
    answers: tally(statuses),
    refused: statuses.every((status) => status === 403),
  });

  const logs = fs.readdirSync(stack.info.logDir).map((file) => fs.readFileSync(path.join(stack.info.logDir, file), 'utf8'));
  expect(logs.filter((log) => log.includes(S3_SECRET))).toEqual([]);
});
