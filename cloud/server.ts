/**
 * The product's own server: one Express app on one port with Parse Server, LiveQuery, Parse Dashboard,
 * and the plugin mounted through the same entry point a host uses (cloud/plugin.ts).
 */
import http from 'node:http';
import express from 'express';
import ParseServer from 'parse-server';
import { type Config, databaseURI, serverURL } from '../config';
import { createLogger, type Logger } from '../config/log';
import type { BatchService } from './batchService';
import { dashboardHandlers } from './dashboard';
import type { BatchMaintenance } from './maintenance';
import type { BatchMetrics } from './metrics';
import { jsonErrorHandler, notFound } from './httpErrors';
import type { OwnershipResolver } from './organizations';
import { createBatchMemory } from './plugin';
import { defaultFilesAdapter } from './filesAdapter';

/** Where Parse Server is mounted on the app. */
const PARSE_MOUNT = '/parse';
/** Longer than a load balancer's idle timeout (60 s on common ones); see the HTTP server below. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

export interface ParseAppOptions {
  /** Decides organization, workspace and namespace of a batch (default: the user's organization or a personal one). */
  resolveOwnership?: OwnershipResolver;
  /** Extra Parse Server options, merged as a host's are (cloud/plugin.ts parseServerOptions). */
  parseServerOptions?: Record<string, unknown>;
  /** Options of the LiveQuery server, over the plugin's (REDIS_URL's `redisURL`). */
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

/** Builds and starts the app through the plugin's entry point (cloud/plugin.ts); resolves once it listens on config.PORT. */
export async function startParseApp(config: Config, options: ParseAppOptions = {}): Promise<ParseApp> {
  const log = options.logger ?? createLogger(config.LOG_LEVEL, { component: 'parse-server' });
  const batch = createBatchMemory({ config, resolveOwnership: options.resolveOwnership, logger: log, metrics: true });
  const parseServer = new ParseServer(
    batch.parseServerOptions({
      // The product's own server takes the host-wide hardening a host may opt into.
      ...batch.hardenedOptions(),
      databaseURI: databaseURI(config),
      filesAdapter: options.filesAdapter ?? defaultFilesAdapter(config),
      ...options.parseServerOptions,
    }),
  );
  await parseServer.start();

  const app = express();
  app.disable('x-powered-by');
  // Parse Server's app, mounted below, inherits it: its masterKeyIps and rate limits see the same client address.
  if (config.TRUST_PROXY)
    app.set(
      'trust proxy',
      config.TRUST_PROXY.split(',').map((address) => address.trim()),
    );
  app.use(batch.router);
  app.use(PARSE_MOUNT, parseServer.app);
  // Parse Server passes some errors on after answering them (a refused master key among them); Express's
  // final handler would then drop the connection, which would tell that answer apart from any other.
  app.use(PARSE_MOUNT, (error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => (res.headersSent ? undefined : next(error)));
  app.use('/dashboard', ...dashboardHandlers(config, batch.limits.dashboardLogins));
  // Whatever no route answered, and any error no route handled: JSON, never Express's HTML page or a stack trace.
  app.use(notFound);
  app.use(jsonErrorHandler(log));

  const httpServer = http.createServer(app);
  // Node's own cut-off for a request that has not fully arrived (a bare 408 on any route), kept behind
  // REST_BODY_TIMEOUT so that the REST route answers first, in JSON, and an upload may use the whole of it.
  httpServer.requestTimeout = config.REST_BODY_TIMEOUT + 5_000;
  // Idle keep-alive connections outlive a load balancer's (60 s on common ones) and a client's own cut-off, so
  // that the client closes them: a request sent as the server closes its connection fails ("other side closed").
  httpServer.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  httpServer.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.PORT, config.HOST, () => resolve());
  });
  // handleShutdown closes the server it knows about.
  (parseServer as unknown as { server: http.Server }).server = httpServer;
  const liveQuery = await ParseServer.createLiveQueryServer(httpServer, batch.liveQueryServerOptions(options.liveQueryServerOptions), {
    appId: config.PARSE_APP_ID,
    masterKey: config.PARSE_MASTER_KEY,
    serverURL: serverURL(config),
  } as never);
  const stopBatch = await batch.start(parseServer);
  log.info('parse server listening', { port: config.PORT });

  return {
    app,
    httpServer,
    service: batch.service,
    metrics: batch.metrics,
    maintenance: batch.maintenance,
    async close() {
      await stopBatch();
      await (liveQuery as unknown as { shutdown(): Promise<void> }).shutdown();
      await parseServer.handleShutdown();
      await batch.close();
    },
  };
}
