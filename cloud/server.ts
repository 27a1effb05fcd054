/**
 * One Express app on one port: Parse Server (with this plugin's Cloud Code and
 * class definitions), LiveQuery, Parse Dashboard and the REST route.
 */
import http from 'node:http';
import path from 'node:path';
import express from 'express';
import ParseServer from 'parse-server';
import { type Config, databaseURI, parseEndpoint, publicServerURL, serverURL } from '../config';
import { createLogger, type Logger } from '../config/log';
import { BULK_WRITE_PATH } from '../schema/batchFile';
import { CLASS, classDefinitions, uniqueKeys } from '../schema/classes';
import { BatchService } from './batchService';
import { BatchMaintenance } from './maintenance';
import { registerCloudCode } from './main';
import { BatchMetrics } from './metrics';
import { type ParseDatabase, bulkWriteRoute } from './bulkWriter';
import { jsonErrorHandler, notFound } from './httpErrors';
import { batchRouter } from './router';
import { type OwnershipResolver, defaultOwnershipResolver } from './organizations';
import { BatchWorkflows } from './temporal';

// Plain CommonJS packages without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FSFilesAdapter = require('@parse/fs-files-adapter') as new (options: { filesSubDirectory?: string; encryptionKey?: string }) => object;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { GridFSBucketAdapter } = require('parse-server/lib/Adapters/Files/GridFSBucketAdapter') as {
  GridFSBucketAdapter: new (databaseURI: string, options: object, encryptionKey?: string) => object;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ParseDashboard = require('parse-dashboard') as new (config: object, options: object) => express.Handler;

export interface ParseAppOptions {
  /** Decides organization, workspace and namespace of a batch (default: the user's organization or a personal one). */
  resolveOwnership?: OwnershipResolver;
  /** Extra Parse Server options, merged over the defaults. */
  parseServerOptions?: Record<string, unknown>;
  /** Options of the LiveQuery server (e.g. `redisURL`, with the same in `parseServerOptions.liveQuery`, for several instances). */
  liveQueryServerOptions?: Record<string, unknown>;
  /** Files adapter; defaults to encrypted GridFS on MongoDB, encrypted file-system storage under DATA_DIR/files otherwise. */
  filesAdapter?: object;
  logger?: Logger;
}

export interface ParseApp {
  app: express.Express;
  httpServer: http.Server;
  service: BatchService;
  metrics: BatchMetrics;
  /** Starts pending batches and keeps the expiry Schedule in place (also runs every RECONCILE_INTERVAL). */
  maintenance: BatchMaintenance;
  close(): Promise<void>;
}

/** Encrypted files: in GridFS on MongoDB (Parse Server's `fileKey` encryption), otherwise on disk under DATA_DIR/files. */
export function defaultFilesAdapter(config: Config): object {
  if (config.DATABASE_URI?.startsWith('mongodb')) return new GridFSBucketAdapter(config.DATABASE_URI, {}, config.FILES_ENCRYPTION_KEY);
  const filesDir = path.resolve(config.DATA_DIR, 'files');
  // The adapter resolves its folder under ./files of the working directory.
  return new FSFilesAdapter({ filesSubDirectory: path.relative(path.resolve('files'), filesDir), encryptionKey: config.FILES_ENCRYPTION_KEY });
}

/** Builds and starts the app; resolves once it listens on config.PORT. */
export async function startParseApp(config: Config, options: ParseAppOptions = {}): Promise<ParseApp> {
  const log = options.logger ?? createLogger(config.LOG_LEVEL, { component: 'parse-server' });
  const endpoint = parseEndpoint(config);
  const workflows = new BatchWorkflows(config);
  const service = new BatchService(config, endpoint, workflows, options.resolveOwnership ?? defaultOwnershipResolver, log);
  const metrics = new BatchMetrics();

  const parseServer = new ParseServer({
    appId: config.PARSE_APP_ID,
    masterKey: config.PARSE_MASTER_KEY,
    masterKeyIps: config.PARSE_MASTER_KEY_IPS.split(',').map((ip) => ip.trim()),
    serverURL: serverURL(config),
    publicServerURL: publicServerURL(config),
    databaseURI: databaseURI(config),
    filesAdapter: options.filesAdapter ?? defaultFilesAdapter(config),
    // The types say string; a function is accepted and keeps Cloud Code in this process's module graph.
    cloud: (() => registerCloudCode(service, log, metrics)) as unknown as string,
    schema: { definitions: classDefinitions, lockSchemas: false, strict: false, deleteExtraFields: false, recreateModifiedFields: false },
    liveQuery: { classNames: [CLASS.batch] },
    allowClientClassCreation: false,
    enforcePrivateUsers: true,
    maxUploadSize: '64mb',
    fileUpload: { enableForPublic: false, enableForAnonymousUser: false, enableForAuthenticatedUser: false },
    silent: config.LOG_LEVEL === 'silent' || config.LOG_LEVEL === 'warn' || config.LOG_LEVEL === 'error',
    logLevel: 'error',
    // null (typed as a string) turns off Parse Server's log files in the working directory; our logs go to stdout.
    logsFolder: null as unknown as string,
    ...options.parseServerOptions,
  } as ConstructorParameters<typeof ParseServer>[0]);
  await parseServer.start();
  await ensureUniqueKeys(service.parse.database);

  const app = express();
  app.disable('x-powered-by');
  app.use('/parse', parseServer.app);
  app.use(BULK_WRITE_PATH, bulkWriteRoute(service.parse.database, config));
  app.use('/api/v1', batchRouter(service, config, endpoint, log));
  app.get('/metrics', metricsHandler(metrics, config.METRICS_TOKEN));
  app.use(
    '/dashboard',
    new ParseDashboard(
      {
        apps: [
          {
            serverURL: publicServerURL(config),
            appId: config.PARSE_APP_ID,
            masterKey: config.PARSE_MASTER_KEY,
            appName: 'Batch memory',
            scripts: DASHBOARD_SCRIPTS,
            columnPreference: { [CLASS.batch]: BATCH_COLUMNS },
          },
        ],
        users: [{ user: config.DASHBOARD_USER, pass: config.DASHBOARD_PASSWORD }],
        trustProxy: 1,
      },
      { allowInsecureHTTP: config.NODE_ENV !== 'production', cookieSessionSecret: config.PARSE_MASTER_KEY },
    ),
  );
  // Whatever no route answered, and any error no route handled: JSON, never Express's HTML page or a stack trace.
  app.use(notFound);
  app.use(jsonErrorHandler(log));

  const httpServer = http.createServer(app);
  // Node's own cut-off for a request that has not fully arrived (a bare 408 on any route), kept behind
  // REST_BODY_TIMEOUT so that the REST route answers first, in JSON, and an upload may use the whole of it.
  httpServer.requestTimeout = config.REST_BODY_TIMEOUT + 5_000;
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.PORT, config.HOST, () => resolve());
  });
  // handleShutdown closes the server it knows about.
  (parseServer as unknown as { server: http.Server }).server = httpServer;
  const liveQuery = await ParseServer.createLiveQueryServer(httpServer, options.liveQueryServerOptions ?? {}, { appId: config.PARSE_APP_ID, masterKey: config.PARSE_MASTER_KEY, serverURL: serverURL(config) } as never);
  log.info('parse server listening', { port: config.PORT });
  const maintenance = new BatchMaintenance(config, service, workflows, log);
  maintenance.start();

  return {
    app,
    httpServer,
    service,
    metrics,
    maintenance,
    async close() {
      await maintenance.stop();
      await (liveQuery as unknown as { shutdown(): Promise<void> }).shutdown();
      await parseServer.handleShutdown();
      await workflows.close();
    },
  };
}

/** Actions on selected BatchMemoryRequest rows in the Dashboard's data browser, run through Cloud Functions. */
const DASHBOARD_SCRIPTS = [
  { title: 'Cancel batch', classes: [CLASS.batch], cloudCodeFunction: 'dashboardCancelBatch', showConfirmationDialog: true, confirmationDialogStyle: 'critical' },
  { title: 'Retry failed items', classes: [CLASS.batch], cloudCodeFunction: 'dashboardRetryFailedItems', showConfirmationDialog: true },
];

/** Data browser columns of BatchMemoryRequest: what an operator reads first; internal keys hidden. */
const BATCH_COLUMNS = [
  ...['objectId', 'status', 'totalMemories', 'processedMemories', 'failedMemories', 'user', 'namespace', 'createdAt', 'startedAt', 'completedAt', 'error'],
  ...['webhookStatus', 'webhookAttempts', 'filesExpiredAt', 'retryOf', 'workflowId', 'organization', 'workspace', 'partCount', 'rawBytes', 'storedBytes', 'expiresAt'],
]
  .map((name) => ({ name, visible: true }))
  .concat(['batchFile', 'resultsFile', 'partsKey', 'requestHash', 'idempotencyKey', 'webhookUrl', 'webhookSecret', 'webhookDeliveredAt', 'webhookError', 'updatedAt', 'ACL'].map((name) => ({ name, visible: false })));

/** Prometheus text format; behind a bearer token when METRICS_TOKEN is set. */
function metricsHandler(metrics: BatchMetrics, token: string | undefined): express.Handler {
  return (req, res, next) => {
    if (token && req.get('Authorization') !== `Bearer ${token}`) {
      res.status(401).json({ error: { code: 'unauthorized', message: 'metrics need Authorization: Bearer METRICS_TOKEN' } });
      return;
    }
    metrics.registry
      .metrics()
      .then((text) => res.type(metrics.registry.contentType).send(text))
      .catch(next);
  };
}

/** Unique keys cannot be declared in the `schema` option: create them through the storage adapter. */
async function ensureUniqueKeys(database: ParseDatabase): Promise<void> {
  const schemaController = await database.loadSchema();
  for (const { className, field } of uniqueKeys) {
    const schema = await schemaController.getOneSchema(className, true);
    await database.adapter.ensureUniqueness(className, schema, [field]).catch((error: { code?: number }) => {
      // Already there (Mongo answers with a duplicate-key error when the index exists under another name).
      if (error.code !== 137 && error.code !== 11000) throw error;
    });
  }
}
