/**
 * createBatchMemory().parseServerOptions merges what the plugin needs into a host's own Parse Server
 * options: the host's classes, fields and permissions stay as the host wrote them. The booted host app
 * (existing-app.test.ts) shows the same on a running server; here each rule is shown on its own.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../config';
import { checkBatchEndpoint, createBatchMemory } from '../../cloud/plugin';
import { CLASS } from '../../schema/classes';

const config = loadConfig({ PARSE_APP_ID: 'host-app', PARSE_MASTER_KEY: 'host-master-key-0123456789', LOG_LEVEL: 'error' });
const batch = createBatchMemory({ config });

afterAll(() => batch.close());

/** The merged options, read as the plain record they are. */
const merge = (host: Record<string, unknown>) => batch.parseServerOptions(host) as unknown as Record<string, unknown> & { filesAdapter?: object };

type Definition = { className: string; fields: Record<string, unknown>; classLevelPermissions: Record<string, unknown> & { protectedFields?: Record<string, string[]> } };

function definitions(options: Record<string, unknown>): Map<string, Definition> {
  const schema = options.schema as { definitions: Definition[] };
  return new Map(schema.definitions.map((definition) => [definition.className, definition]));
}

const hostUser = {
  className: '_User',
  fields: { nickname: { type: 'String' } },
  classLevelPermissions: { find: { requiresAuthentication: true }, count: { requiresAuthentication: true }, protectedFields: { '*': ['nickname'] } },
};
const hostNote = {
  className: 'Note',
  fields: { text: { type: 'String', required: true } },
  classLevelPermissions: { find: { requiresAuthentication: true }, get: {}, count: {}, create: { requiresAuthentication: true }, update: {}, delete: {}, addField: {} },
};

test("a host's own _User fields and class-level permissions are kept; the plugin adds its field and the permissions the host did not set", () => {
  const merged = definitions(merge({ schema: { definitions: [hostUser, hostNote], strict: true } }));
  const user = merged.get('_User');
  expect(user?.fields).toEqual({ nickname: { type: 'String' }, organization: { type: 'Pointer', targetClass: CLASS.organization, required: false } });
  // The host's find and count; the plugin's for the operations the host left alone.
  expect(user?.classLevelPermissions).toMatchObject({
    find: { requiresAuthentication: true },
    count: { requiresAuthentication: true },
    get: { requiresAuthentication: true },
    create: { '*': true },
    addField: {},
    protectedFields: { '*': ['nickname'] },
  });
  // The host's own class exactly as written; the plugin's classes beside it.
  expect(merged.get('Note')).toEqual(hostNote);
  for (const className of Object.values(CLASS)) expect(merged.has(className)).toBe(true);
});

test("protected fields of a class both define are the union of both lists, and the host's other schema options stay", () => {
  const hostBatch = { className: CLASS.batch, fields: { label: { type: 'String' } }, classLevelPermissions: { protectedFields: { '*': ['label'] } } };
  const options = merge({ schema: { definitions: [hostBatch], strict: true } });
  const merged = definitions(options).get(CLASS.batch);
  expect(merged?.classLevelPermissions.protectedFields?.['*']).toEqual(expect.arrayContaining(['label', 'batchFile', 'webhookSecret', 'webhookUrl']));
  expect(merged?.classLevelPermissions.protectedFields?.['userField:user']).toContain('batchFile');
  expect(merged?.fields).toHaveProperty('label');
  expect(merged?.fields).toHaveProperty('batchFile');
  expect((options.schema as { strict: boolean }).strict).toBe(true);
});

test("a host's rate limits, LiveQuery classes and other options stay, next to the plugin's", () => {
  const hostLimit = { requestPath: '/functions/hello', requestTimeWindow: 1000, requestCount: 5 };
  const options = merge({ rateLimit: hostLimit, liveQuery: { classNames: ['Note'] }, maxLimit: 50, logLevel: 'info' });
  const limits = options.rateLimit as { requestPath: string }[];
  expect(limits).toContainEqual(hostLimit);
  expect(limits.map((limit) => limit.requestPath)).toEqual(expect.arrayContaining(['/users', '/login']));
  expect((options.liveQuery as { classNames: string[] }).classNames).toEqual(['Note', CLASS.batch]);
  expect(options).toMatchObject({ maxLimit: 50, logLevel: 'info', appId: 'host-app' });
  expect(typeof options.cloud).toBe('function');
  expect(typeof options.requestContextMiddleware).toBe('function');
});

test("host-wide hardening is the host's choice: none of it is set unless the host passes hardenedOptions()", () => {
  const hardened = batch.hardenedOptions();
  expect(Object.keys(hardened)).toEqual(expect.arrayContaining(['allowClientClassCreation', 'enableAnonymousUsers', 'protectedFieldsOwnerExempt', 'loggerAdapter', 'fileUpload']));
  const plain = merge({ databaseURI: 'postgres://127.0.0.1/host' });
  expect(Object.keys(hardened).filter((option) => option !== 'schema' && option in plain)).toEqual([]);
  // The plugin's own classes only: Parse's _Installation stays as the host has it.
  expect(definitions(plain).has('_Installation')).toBe(false);
  expect(definitions(merge({ ...hardened, databaseURI: 'postgres://127.0.0.1/host' })).get('_Installation')?.classLevelPermissions).toMatchObject({ create: {}, find: {}, addField: {} });
  const optedIn = merge({ ...hardened, databaseURI: 'postgres://127.0.0.1/host', enableAnonymousUsers: true });
  expect(optedIn).toMatchObject({ protectedFieldsOwnerExempt: false, allowClientClassCreation: false, enableAnonymousUsers: true });
});

test("a host on PostgreSQL without a files adapter gets the plugin's on-disk one; on MongoDB and with its own, the host's stands", () => {
  const onPostgres = merge({ databaseURI: 'postgres://127.0.0.1/host' });
  expect(onPostgres.filesAdapter?.constructor.name).toBe('FileSystemAdapter');
  expect(merge({ databaseURI: 'mongodb://127.0.0.1/host' })).not.toHaveProperty('filesAdapter');
  const hostAdapter = { createFile: () => undefined };
  expect(merge({ databaseURI: 'postgres://127.0.0.1/host', filesAdapter: hostAdapter }).filesAdapter).toBe(hostAdapter);
});

test("a field the host defines with another type than the plugin's is refused, naming the class and field", () => {
  const clash = { className: CLASS.memory, fields: { content: { type: 'Number' } } };
  expect(() => batch.parseServerOptions({ schema: { definitions: [clash] } })).toThrow('Memory.content is Number in your app and String in the batch memory plugin');
  const pointerClash = { className: '_User', fields: { organization: { type: 'Pointer', targetClass: 'Company' } } };
  expect(() => batch.parseServerOptions({ schema: { definitions: [pointerClash] } })).toThrow('_User.organization is Pointer<Company> in your app and Pointer<Organization>');
});

test('an appId, master key or server URL other than the configuration the workers use is refused', () => {
  expect(() => batch.parseServerOptions({ appId: 'another-app' })).toThrow('appId "another-app" differs from PARSE_APP_ID "host-app"');
  // Both values shown, except a master key's.
  expect(() => batch.parseServerOptions({ masterKey: 'another-master-key-0123456789' })).toThrow('masterKey (hidden) differs from PARSE_MASTER_KEY (hidden)');
  expect(() => batch.parseServerOptions({ serverURL: 'http://127.0.0.1:9/parse' })).toThrow(
    `serverURL "http://127.0.0.1:9/parse" differs from PARSE_SERVER_URL (default http://127.0.0.1:PORT/parse) "http://127.0.0.1:${config.PORT}/parse"`,
  );
  expect(batch.parseServerOptions({ appId: 'host-app', masterKey: config.PARSE_MASTER_KEY })).toMatchObject({ appId: 'host-app' });
});

test("a host's maxUploadSize below PARSE_MAX_UPLOAD_SIZE (the results files the workers upload) is refused; one as large or larger stands", () => {
  expect(() => batch.parseServerOptions({ maxUploadSize: '20mb' })).toThrow(`maxUploadSize "20mb" is below PARSE_MAX_UPLOAD_SIZE (${config.PARSE_MAX_UPLOAD_SIZE} bytes)`);
  expect(() => batch.parseServerOptions({ maxUploadSize: 'lots' })).toThrow('maxUploadSize "lots" is below PARSE_MAX_UPLOAD_SIZE');
  expect(batch.parseServerOptions({ maxUploadSize: '1gb' })).toMatchObject({ maxUploadSize: '1gb' });
  expect(batch.parseServerOptions({ maxUploadSize: config.PARSE_MAX_UPLOAD_SIZE })).toMatchObject({ maxUploadSize: config.PARSE_MAX_UPLOAD_SIZE });
  expect(batch.parseServerOptions({})).toMatchObject({ maxUploadSize: `${config.PARSE_MAX_UPLOAD_SIZE}b` });
});

/** A loopback server that answers Parse Server's /batch as given. */
async function fakeBatchEndpoint(status: number, body: unknown): Promise<{ serverURL: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { serverURL: `http://127.0.0.1:${port}/parse`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test("the start-up check refuses a Parse Server whose /batch is broken (router 2.3.0's answer) with what to add to the host's overrides", async () => {
  // What Parse Server 9.10 answers for every sub-request under router 2.3.0.
  const broken = await fakeBatchEndpoint(200, [{ error: { code: 111, error: 'Internal server error.' } }]);
  const healthy = await fakeBatchEndpoint(200, [{ success: { results: [] } }]);
  try {
    await expect(checkBatchEndpoint({ serverURL: broken.serverURL, appId: 'host-app', masterKey: 'k' })).rejects.toThrow(
      /\/batch endpoint at .* is broken .*add "overrides": \{ "router": "2\.2\.0" \}/,
    );
    await expect(checkBatchEndpoint({ serverURL: healthy.serverURL, appId: 'host-app', masterKey: 'k' })).resolves.toBeUndefined();
  } finally {
    await broken.close();
    await healthy.close();
  }
});

test('start refuses, saying why, when the parse-server the plugin loads serves no such app (not started, or a second copy in the host)', async () => {
  await expect(batch.start({})).rejects.toThrow(/no started Parse Server serves app host-app in the parse-server package this plugin loads .*two copies of parse-server.*npm ls parse-server/);
});
