/**
 * One Express app on one port: Parse Server (with this plugin's Cloud Code and
 * class definitions), LiveQuery, Parse Dashboard, the REST route and the MCP door.
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
import { dashboardHandlers } from './dashboard';
import { BatchMaintenance } from './maintenance';
import { registerCloudCode } from './main';
import { BatchMetrics } from './metrics';
import { RouteAuthentication, safeEqual } from './auth';
import { type ParseDatabase, bulkWriteRoute } from './bulkWriter';
import { concurrencySlots } from './inputBounds';
import { MCP_PATH, mcpRoute } from './mcpRoute';
import { RateLimits } from './rateLimits';
import { jsonErrorHandler, notFound } from './httpErrors';
import { batchRouter } from './router';
import { type OwnershipResolver, defaultOwnershipResolver } from './organizations';
import { ParseLogAdapter } from './parseLogger';
import { BatchWorkflows } from './temporal';

// Plain CommonJS packages without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FSFilesAdapter = require('@parse/fs-files-adapter') as new (options: { filesSubDirectory?: string; encryptionKey?: string }) => object;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { GridFSBucketAdapter } = require('parse-server/lib/Adapters/Files/GridFSBucketAdapter') as {
  GridFSBucketAdapter: new (databaseURI: string, options: object, encryptionKey?: string) => object;
};

/** Where Parse Server is mounted on the app. */
const PARSE_MOUNT = '/parse';

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
  const limits = new RateLimits(config, PARSE_MOUNT);
  const authentication = new RouteAuthentication(config, service.parse, limits);
  const slots = concurrencySlots(config);

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
    enableAnonymousUsers: config.ALLOW_ANONYMOUS_USERS,
    rateLimit: limits.parseServerRateLimits(),
    // Not in Parse Server's option types, but read by ParseServer.app: runs once a request is authenticated.
    ...({ requestContextMiddleware: limits.parseRequestGate } as object),
    enforcePrivateUsers: true,
    maxUploadSize: '64mb',
    ...hardenedParseServerOptions(config),
    // Parse Server's warnings and errors, LiveQuery's included, in the structured log with session tokens and secrets redacted.
    loggerAdapter: new ParseLogAdapter(log, secretsOf(config)),
    logLevel: 'warn',
    ...options.parseServerOptions,
  } as ConstructorParameters<typeof ParseServer>[0]);
  await parseServer.start();
  await ensureUniqueKeys(service.parse.database);

  const app = express();
  app.disable('x-powered-by');
  app.use(limits.authFailureGuard);
  app.use(PARSE_MOUNT, parseServer.app);
  // Parse Server passes some errors on after answering them (a refused master key among them); Express's
  // final handler would then drop the connection, which would tell that answer apart from any other.
  app.use(PARSE_MOUNT, (error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => (res.headersSent ? undefined : next(error)));
  app.use(BULK_WRITE_PATH, bulkWriteRoute(service.parse.database, authentication));
  app.use('/api/v1', batchRouter(service, config, endpoint, log, authentication, slots));
  app.use(MCP_PATH, mcpRoute(service, config, log, authentication, slots));
  app.get('/metrics', metricsHandler(metrics, config.METRICS_TOKEN));
  app.use('/dashboard', ...dashboardHandlers(config));
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

/**
 * Parse Server options whose insecure default Parse Server itself will change (each was a
 * DeprecationWarning at start-up), set now to the secure value.
 */
function hardenedParseServerOptions(config: Config): Record<string, unknown> {
  return {
    fileUpload: {
      enableForPublic: false,
      enableForAnonymousUser: false,
      enableForAuthenticatedUser: false,
      // A File in a saved row or in Cloud Function parameters may only name this server's public host, the one
      // Parse Server gives file URLs (schema/batchFile.ts fileField); '[]' would refuse the product's own saves,
      // since the Parse SDK sends a file's URL with it.
      allowedFileUrlDomains: [new URL(publicServerURL(config)).hostname],
    },
    pages: { encodePageParamHeaders: true },
    // No read-only master key is configured; should one be, it works from this machine only.
    readOnlyMasterKeyIps: ['127.0.0.1', '::1'],
    allowAggregationForReadOnlyMasterKey: false,
    // Parse Server's coming defaults. The product's own writes use the master key, which batchRequestLimit exempts.
    requestComplexity: { includeDepth: 10, includeCount: 100, subqueryDepth: 10, queryDepth: 10, graphQLDepth: 20, graphQLFields: 200, batchRequestLimit: 100 },
    // Protected fields stay hidden from a user's own _User row and from write responses; Cloud Code triggers
    // (server code) see whole objects.
    protectedFieldsOwnerExempt: false,
    protectedFieldsSaveResponseExempt: false,
    protectedFieldsTriggerExempt: true,
    installation: { duplicateDeviceTokenActionEnforceAuth: true },
    // The unmaintained /validate_purchase endpoint and _Product class, which this product does not use.
    enableProductPurchaseLegacyApi: false,
  };
}

/** Secret values that never appear in a log line. */
function secretsOf(config: Config): string[] {
  return [config.PARSE_MASTER_KEY, config.FILES_ENCRYPTION_KEY, config.DASHBOARD_PASSWORD, config.DASHBOARD_COOKIE_SECRET, config.METRICS_TOKEN, config.TEMPORAL_API_KEY].filter(
    (secret): secret is string => Boolean(secret),
  );
}

/** Prometheus text format; behind a bearer token (compared in constant time) when METRICS_TOKEN is set. */
function metricsHandler(metrics: BatchMetrics, token: string | undefined): express.Handler {
  return (req, res, next) => {
    if (token && !safeEqual(req.get('Authorization') ?? '', `Bearer ${token}`)) {
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
