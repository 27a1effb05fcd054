/**
 * The entry point for a Parse Server app of its own: the host keeps its Parse Server instance, Express
 * app, files adapter, classes and permissions, and adds the batch pipeline with a few lines:
 *
 *   const batch = createBatchMemory();
 *   const parseServer = new ParseServer(batch.parseServerOptions({ ...yourOptions, cloud: yourCloud }));
 *   await parseServer.start();
 *   app.use(batch.router);            // before Parse Server: it also guards Parse Server's routes
 *   app.use('/parse', parseServer.app);
 *   app.listen(port, async () => { const stop = await batch.start(parseServer); });
 *
 * The product's own server (cloud/server.ts) is built from this same entry point.
 */
import path from 'node:path';
import express from 'express';
import Parse from '../schema/parseSdk';
import type ParseServer from 'parse-server';
import { type Config, loadConfig, parseEndpoint, publicServerURL, serverURL } from '../config';
import { createLogger, type Logger } from '../config/log';
import { BULK_WRITE_PATH } from '../schema/batchFile';
import { CLASS, classDefinitions, masterOnly, uniqueKeys } from '../schema/classes';
import { masterRequest } from '../storage/http';
import { RouteAuthentication, safeEqual } from './auth';
import { BatchService } from './batchService';
import { type ParseDatabase, bulkWriteRoute } from './bulkWriter';
import { onFerretDB } from './ferretdb';
import { isMongoAdapter } from './mongoBulkWriter';
import { jsonErrorHandler, notFound } from './httpErrors';
import { defaultFilesAdapter } from './filesAdapter';
import { registerCloudCode } from './main';
import { unguardedTriggers } from './triggerGuards';
import { BatchMaintenance } from './maintenance';
import { BatchMetrics } from './metrics';
import { type OwnershipResolver, defaultOwnershipResolver } from './organizations';
import { ParseLogAdapter } from './parseLogger';
import { concurrencySlots } from './inputBounds';
import { MCP_PATH, mcpRoute } from './mcpRoute';
import { RateLimits } from './rateLimits';
import { batchRouter } from './router';
import { BatchWorkflows } from './temporal';

// A plain CommonJS module of Parse Server, without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { RedisCacheAdapter } = require('parse-server/lib/Adapters/Cache/RedisCacheAdapter') as { RedisCacheAdapter: new (options: { url: string }) => object };

export interface BatchMemoryOptions {
  /** The plugin's configuration; defaults to `loadConfig()` (the environment, as the workers read it). */
  config?: Config;
  /** Decides organization, workspace and namespace of a batch (default: the user's organization or a personal one). */
  resolveOwnership?: OwnershipResolver;
  logger?: Logger;
  /** Serve Prometheus metrics at `/metrics` on `router` (behind METRICS_TOKEN when set). */
  metrics?: boolean;
}

/** Parse Server's options as a host passes them: an open record, since hosts use options its types lack. */
export type HostParseServerOptions = Record<string, unknown>;
/** What `new ParseServer(…)` takes. */
export type ParseServerOptions = ConstructorParameters<typeof ParseServer>[0];
type CloudCode = string | ((parse: typeof Parse) => unknown);

export interface BatchMemory {
  config: Config;
  service: BatchService;
  metrics: BatchMetrics;
  maintenance: BatchMaintenance;
  /** The host's options with what the plugin needs merged in; the host's own classes, fields and permissions win. */
  parseServerOptions(hostOptions?: HostParseServerOptions): ParseServerOptions;
  /** Options of the LiveQuery server (`ParseServer.createLiveQueryServer`): with REDIS_URL, its events come through Redis. */
  liveQueryServerOptions(hostOptions?: Record<string, unknown>): Record<string, unknown>;
  /** Host-wide Parse Server hardening the product's own server uses; opt in with `parseServerOptions({ ...batch.hardenedOptions(), ...yours })`. */
  hardenedOptions(): Record<string, unknown>;
  /** Parse Server's `cloud` option: the plugin's Cloud Code, then the host's (a function, or a file path as Parse Server takes it). */
  cloud(hostCloud?: CloudCode): (parse: typeof Parse) => Promise<void>;
  /** The REST route, its events and OpenAPI document, the worker's bulk route (and `/metrics` when asked): mount at the app's root, before Parse Server. */
  router: express.Router;
  /**
   * Once the app listens: checks Parse Server's `/batch` endpoint, creates the unique indexes, the expiry
   * Schedule and starts the reconciler. Every step is idempotent (several instances may run it). Resolves to a stop.
   */
  start(parseServer: unknown): Promise<() => Promise<void>>;
  /** Closes the plugin's Temporal connection (after `start`'s stop, or when it never started). */
  close(): Promise<void>;
  /** The rate limits' counts (in Redis with REDIS_URL), which the Dashboard's login throttle shares. */
  limits: RateLimits;
}

interface ClassDefinition {
  className: string;
  fields?: Record<string, { type: string; targetClass?: string } | undefined>;
  classLevelPermissions?: Record<string, unknown> & { protectedFields?: Record<string, string[]> };
  indexes?: Record<string, unknown>;
}

export function createBatchMemory(options: BatchMemoryOptions = {}): BatchMemory {
  const config = options.config ?? loadConfig();
  const log = options.logger ?? createLogger(config.LOG_LEVEL, { component: 'parse-server' });
  const endpoint = parseEndpoint(config);
  const workflows = new BatchWorkflows(config);
  const service = new BatchService(config, endpoint, workflows, options.resolveOwnership ?? defaultOwnershipResolver, log);
  const metrics = new BatchMetrics();
  const limits = new RateLimits(config, new URL(endpoint.serverURL).pathname.replace(/\/$/, ''));
  const authentication = new RouteAuthentication(config, service.parse, limits);
  const maintenance = new BatchMaintenance(config, service, workflows, log);

  // Upload and event-stream slots, shared by the REST route, the MCP door and the Cloud Functions.
  const slots = concurrencySlots(config);
  const cloud = (hostCloud?: CloudCode) => async (parse: typeof Parse) => {
    registerCloudCode(parse.Cloud, config.PARSE_APP_ID, service, log, metrics, slots);
    if (typeof hostCloud === 'function') await hostCloud(parse);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    else if (typeof hostCloud === 'string') require(path.resolve(hostCloud));
  };

  const router = express.Router();
  router.use(limits.authFailureGuard);
  router.use(BULK_WRITE_PATH, bulkWriteRoute(service.parse, authentication));
  router.use('/api/v1', batchRouter(service, config, log, authentication, slots));
  router.use(MCP_PATH, mcpRoute(service, config, log, authentication, slots));
  if (options.metrics) router.get('/metrics', metricsHandler(metrics, config.METRICS_TOKEN));
  // Under the plugin's path, whatever no route answered and any error: JSON, never Express's HTML page.
  router.use('/api/v1', notFound);
  router.use('/api/v1', jsonErrorHandler(log));

  let started: Promise<() => Promise<void>> | undefined;
  /** Host-wide hardening the host's options left out (said once at start). */
  let leftToHost: string[] = [];
  return {
    config,
    service,
    metrics,
    maintenance,
    limits,
    parseServerOptions: (hostOptions = {}) => {
      leftToHost = Object.keys(hardenedParseServerOptions(config, log)).filter((option) => !(option in hostOptions));
      return mergeParseServerOptions(config, hostOptions, { cloud, limits, log });
    },
    hardenedOptions: () => hardenedParseServerOptions(config, log),
    liveQueryServerOptions: (hostOptions = {}) => ({ ...(config.REDIS_URL ? { redisURL: config.REDIS_URL } : {}), ...hostOptions }),
    cloud,
    router,
    start(parseServer) {
      started ??= (async () => {
        if (!parseServer) throw new Error('batch.start(parseServer): pass the started ParseServer instance');
        if (!service.parse.serving) {
          // A second copy of parse-server (the plugin's own next to the app's) keeps its own, empty, registry of apps.
          throw new Error(
            `batch.start: no started Parse Server serves app ${config.PARSE_APP_ID} in the parse-server package this plugin loads (${require.resolve('parse-server')}). ` +
              'Start Parse Server first; if it is started, your app has two copies of parse-server: it is a peer dependency of the plugin, so keep one (npm ls parse-server).',
          );
        }
        const unguarded = unguardedTriggers(config.PARSE_APP_ID);
        if (unguarded.length > 0) {
          throw new Error(
            `batch.start: the plugin's ${unguarded.join(', ')} trigger${unguarded.length > 1 ? 's were' : ' was'} replaced without going through Parse.Cloud; ` +
              'register your own triggers for these classes with Parse.Cloud in your Cloud Code, where the plugin composes them with its own',
          );
        }
        await checkBatchEndpoint(endpoint);
        await ensureUniqueKeys(service.parse.database);
        maintenance.start();
        if (leftToHost.length > 0) {
          log.warn('host-wide Parse Server hardening left to the app', {
            options: leftToHost,
            advice: "to opt in: batch.parseServerOptions({ ...batch.hardenedOptions(), ...yourOptions }) (docs/security.md, 'In a host app')",
          });
        }
        log.info('batch memory plugin started', { taskQueue: config.TEMPORAL_TASK_QUEUE });
        return () => maintenance.stop();
      })();
      return started;
    },
    close: async () => {
      await limits.close();
      await workflows.close();
    },
  };
}

/** A size as Parse Server's maxUploadSize takes it: bytes, or text such as `20mb` (read as the `bytes` package does); undefined when unreadable. */
function uploadSizeBytes(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*$/i.exec(value) : null;
  if (!match) return undefined;
  const units: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };
  return Math.floor(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]);
}

/** What the plugin sets; `hostOptions` wins everywhere except where both are needed (merged). */
function mergeParseServerOptions(
  config: Config,
  hostOptions: HostParseServerOptions,
  plugin: { cloud: (hostCloud?: CloudCode) => (parse: typeof Parse) => Promise<void>; limits: RateLimits; log: Logger },
): ParseServerOptions {
  // The workers and the plugin's own requests reach Parse Server with PARSE_APP_ID, PARSE_MASTER_KEY and PARSE_SERVER_URL.
  for (const [option, variable, value] of [
    ['appId', 'PARSE_APP_ID', config.PARSE_APP_ID],
    ['masterKey', 'PARSE_MASTER_KEY', config.PARSE_MASTER_KEY],
    ['serverURL', 'PARSE_SERVER_URL (default http://127.0.0.1:PORT/parse)', serverURL(config)],
  ] as const) {
    if (hostOptions[option] !== undefined && hostOptions[option] !== value) {
      const shown = (text: unknown) => (option === 'masterKey' ? '(hidden)' : JSON.stringify(text));
      throw new Error(
        `parseServerOptions: ${option} ${shown(hostOptions[option])} differs from ${variable} ${shown(value)}; the plugin and its workers use ${variable}, so set it to your app's ${option}`,
      );
    }
  }
  // The workers upload each batch's results in files up to PARSE_MAX_UPLOAD_SIZE: a smaller limit of the host's
  // would refuse them, and the batch would never finish.
  const hostUploadSize = (hostOptions as { maxUploadSize?: unknown }).maxUploadSize;
  if (hostUploadSize !== undefined && !((uploadSizeBytes(hostUploadSize) ?? 0) >= config.PARSE_MAX_UPLOAD_SIZE)) {
    throw new Error(
      `parseServerOptions: maxUploadSize ${JSON.stringify(hostUploadSize)} is below PARSE_MAX_UPLOAD_SIZE (${config.PARSE_MAX_UPLOAD_SIZE} bytes), the size of the results files the workers upload; set PARSE_MAX_UPLOAD_SIZE to your maxUploadSize in bytes, here and on the workers`,
    );
  }
  const host = hostOptions as {
    schema?: { definitions?: ClassDefinition[] } & Record<string, unknown>;
    liveQuery?: { classNames?: string[] } & Record<string, unknown>;
    rateLimit?: unknown;
    requestContextMiddleware?: express.RequestHandler;
    cloud?: CloudCode;
  };
  const hostRateLimits = host.rateLimit === undefined ? [] : Array.isArray(host.rateLimit) ? host.rateLimit : [host.rateLimit];
  const hostGate = host.requestContextMiddleware;
  const gate: express.RequestHandler = hostGate
    ? (req, res, next) => plugin.limits.parseRequestGate(req, res, (error?: unknown) => (error ? next(error) : hostGate(req, res, next)))
    : plugin.limits.parseRequestGate;
  const options = {
    appId: config.PARSE_APP_ID,
    masterKey: config.PARSE_MASTER_KEY,
    masterKeyIps: config.PARSE_MASTER_KEY_IPS.split(',').map((ip) => ip.trim()),
    serverURL: serverURL(config),
    publicServerURL: publicServerURL(config),
    // Results files go through Parse Server's files route (20 MB by default); the worker keeps each below this.
    maxUploadSize: `${config.PARSE_MAX_UPLOAD_SIZE}b`,
    ...sharedStateOptions(config),
    ...(needsFilesAdapter(config, hostOptions) ? { filesAdapter: defaultFilesAdapter(config, typeof hostOptions.databaseURI === 'string' ? hostOptions.databaseURI : undefined) } : {}),
    ...hostOptions,
    cloud: plugin.cloud(host.cloud),
    schema: {
      lockSchemas: false,
      strict: false,
      deleteExtraFields: false,
      recreateModifiedFields: false,
      ...host.schema,
      definitions: mergeClassDefinitions(
        storesInMongo(hostOptions) ? withMongoIndexKeys(classDefinitions as ClassDefinition[]) : (classDefinitions as ClassDefinition[]),
        host.schema?.definitions ?? [],
      ),
    },
    liveQuery: { ...(config.REDIS_URL ? { redisURL: config.REDIS_URL } : {}), ...host.liveQuery, classNames: [...new Set([...(host.liveQuery?.classNames ?? []), CLASS.batch])] },
    rateLimit: [...plugin.limits.parseServerRateLimits(), ...hostRateLimits],
    // Not in Parse Server's option types, but read by ParseServer.app: runs once a request is authenticated.
    requestContextMiddleware: gate,
  };
  // Parse Server's types take `cloud` as a path only and lack requestContextMiddleware; both are read.
  return (config.DATABASE_FERRETDB ? onFerretDB(options) : options) as unknown as ParseServerOptions;
}

/**
 * The plugin's class definitions with the host's: a class both define gets the fields of both and the
 * host's permission for each operation it sets (protected fields: both lists); a field both define with
 * different types is refused, since either the host's code or the plugin's would break on it.
 */
export function mergeClassDefinitions(pluginClasses: readonly ClassDefinition[], hostClasses: readonly ClassDefinition[]): ClassDefinition[] {
  const merged = new Map<string, ClassDefinition>(pluginClasses.map((definition) => [definition.className, definition]));
  for (const hostClass of hostClasses) {
    const pluginClass = merged.get(hostClass.className);
    if (!pluginClass) {
      merged.set(hostClass.className, hostClass);
      continue;
    }
    for (const [field, type] of Object.entries(hostClass.fields ?? {})) {
      const needed = pluginClass.fields?.[field];
      if (needed && type && (needed.type !== type.type || needed.targetClass !== type.targetClass)) {
        throw new Error(
          `schema.definitions: ${hostClass.className}.${field} is ${describeType(type)} in your app and ${describeType(needed)} in the batch memory plugin; rename yours or drop it from the definition`,
        );
      }
    }
    const pluginPermissions = pluginClass.classLevelPermissions ?? {};
    const hostPermissions = hostClass.classLevelPermissions;
    const protectedFields = { ...pluginPermissions.protectedFields };
    for (const [scope, fields] of Object.entries(hostPermissions?.protectedFields ?? {})) protectedFields[scope] = [...new Set([...(protectedFields[scope] ?? []), ...fields])];
    merged.set(hostClass.className, {
      className: hostClass.className,
      fields: { ...pluginClass.fields, ...hostClass.fields },
      classLevelPermissions: { ...pluginPermissions, ...hostPermissions, ...(Object.keys(protectedFields).length ? { protectedFields } : {}) },
      indexes: { ...pluginClass.indexes, ...hostClass.indexes },
    });
  }
  return [...merged.values()];
}

/**
 * Whether the plugin supplies the files adapter (FILES_ADAPTER's, or encrypted files on disk / in GridFS):
 * the host named none, and Parse Server's default (GridFS on the database URI) would not do: on PostgreSQL
 * every batch would fail, and with an explicit database adapter (the host's, or FerretDB's) Parse Server
 * refuses to start without a files adapter.
 */
function needsFilesAdapter(config: Config, hostOptions: HostParseServerOptions): boolean {
  if (hostOptions.filesAdapter) return false;
  return config.FILES_ADAPTER === 's3' || config.DATABASE_FERRETDB || Boolean(hostOptions.databaseAdapter) || !storesInMongo(hostOptions);
}

/** Whether Parse Server stores through its MongoDB adapter: the host's adapter is one, or (as Parse Server chooses) the URI is not postgres:. */
function storesInMongo(options: HostParseServerOptions): boolean {
  const { databaseAdapter, databaseURI } = options as { databaseAdapter?: object; databaseURI?: unknown };
  if (databaseAdapter) return isMongoAdapter(databaseAdapter);
  return typeof databaseURI !== 'string' || !/^postgres(ql)?:/.test(databaseURI);
}

/**
 * The plugin's indexes with the keys MongoDB documents have: Parse Server's MongoDB adapter stores a pointer
 * `batch` as `_p_batch` but creates a declared index on the key as written, so `{ batch: 1 }` would index a
 * field no document has, and every query by batch would scan the collection. PostgreSQL's adapter takes the
 * field's own name.
 */
function withMongoIndexKeys(definitions: ClassDefinition[]): ClassDefinition[] {
  return definitions.map((definition) => {
    if (!definition.indexes) return definition;
    const mongoKey = (field: string) => (definition.fields?.[field]?.type === 'Pointer' ? `_p_${field}` : field);
    const indexes = Object.fromEntries(
      Object.entries(definition.indexes).map(([name, keys]) => [name, Object.fromEntries(Object.entries(keys as Record<string, unknown>).map(([field, order]) => [mongoKey(field), order]))]),
    );
    return { ...definition, indexes };
  });
}

function describeType(field: { type: string; targetClass?: string }): string {
  return field.targetClass ? `${field.type}<${field.targetClass}>` : field.type;
}

/**
 * Parse Server options whose insecure default Parse Server itself will change (each was a
 * DeprecationWarning at start-up), set now to the secure value.
 */
/**
 * With REDIS_URL, what several instances must share beyond the database: Parse Server's cache of users,
 * roles and sessions in Redis (a log-out or a role change on one instance holds on the others), and schema
 * and class-level-permission changes announced to every instance (PostgreSQL LISTEN/NOTIFY, MongoDB change
 * streams) instead of each keeping its own copy forever. LiveQuery and the rate limits take REDIS_URL where
 * they are set up.
 */
function sharedStateOptions(config: Config): Record<string, unknown> {
  if (!config.REDIS_URL) return {};
  // FerretDB has no change streams: there each instance keeps the schema it loaded (docs/deployment.md#ferretdb).
  return { cacheAdapter: new RedisCacheAdapter({ url: config.REDIS_URL }), ...(config.DATABASE_FERRETDB ? {} : { databaseOptions: { enableSchemaHooks: true } }) };
}

/**
 * Host-wide hardening the product's own server (`npm start`) applies: a host app opts in by passing these
 * with its options (`batch.hardenedOptions()`); the plugin does not
 * change a host's options behind its back, and says once at start which of them a host left out.
 */
export function hardenedParseServerOptions(config: Config, log: Logger): Record<string, unknown> {
  return {
    allowClientClassCreation: false,
    enableAnonymousUsers: config.ALLOW_ANONYMOUS_USERS,
    enforcePrivateUsers: true,
    // Parse Server's warnings and errors, LiveQuery's included, in the structured log with session tokens and secrets redacted.
    loggerAdapter: new ParseLogAdapter(log, secretsOf(config)),
    logLevel: 'warn',
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
    // Nor does it send push or sell in-app products: Parse's _Installation and _Product classes, open to anonymous
    // clients (new columns included), are the master key's. Parse Server's other system classes are already.
    schema: {
      definitions: [
        { className: '_Installation', fields: {}, classLevelPermissions: masterOnly },
        { className: '_Product', fields: {}, classLevelPermissions: masterOnly },
      ],
    },
  };
}

/** Secret values that never appear in a log line. */
export function secretsOf(config: Config): string[] {
  return [
    config.PARSE_MASTER_KEY,
    config.FILES_ENCRYPTION_KEY,
    config.DASHBOARD_PASSWORD,
    config.DASHBOARD_COOKIE_SECRET,
    config.METRICS_TOKEN,
    config.TEMPORAL_API_KEY,
    config.S3_SECRET_ACCESS_KEY,
  ].filter((secret): secret is string => Boolean(secret));
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

/**
 * The workers write through Parse Server's `/batch` endpoint, which some versions of the `router` package
 * (router 2.3.0, pulled in by express 5) break: every sub-request answers 111 "Internal server error".
 * A one-request batch at start-up turns that into a clear refusal to start.
 */
export async function checkBatchEndpoint(endpoint: ReturnType<typeof parseEndpoint>): Promise<void> {
  const mountPath = new URL(endpoint.serverURL).pathname.replace(/\/$/, '');
  const requests = [{ method: 'GET', path: `${mountPath}/classes/${CLASS.part}`, body: { limit: 0 } }];
  const response = await masterRequest(endpoint, `${endpoint.serverURL}/batch`, { method: 'POST', body: JSON.stringify({ requests }), contentType: 'application/json' });
  const answers = (() => {
    try {
      return JSON.parse(response.body.toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  })();
  const first = Array.isArray(answers) ? (answers[0] as { success?: unknown; error?: unknown } | undefined) : undefined;
  if (response.status === 200 && first?.success !== undefined) return;
  throw new Error(
    `Parse Server's /batch endpoint at ${endpoint.serverURL}/batch is broken (HTTP ${response.status}: ${response.body.toString('utf8').slice(0, 200)}). ` +
      `The batch memory workers write through it. The usual cause is the "router" package 2.3.0, which express 5 pulls in: ` +
      `add "overrides": { "router": "2.2.0" } to your app's package.json, run npm install, and check with npm ls router.`,
  );
}

/** Unique keys cannot be declared in the `schema` option: create them through the storage adapter (PostgreSQL or MongoDB). */
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
