/**
 * Parse Dashboard, mounted at /dashboard: its session cookie is signed with a secret of its own (never
 * the master key, which a signed cookie would let anyone test guesses of offline), and failed logins
 * are throttled per client address before the Dashboard checks the password.
 */
import express from 'express';
import { type Config, isLoopbackHost, publicServerURL } from '../config';
import { CLASS } from '../schema/classes';
import { type Limit, clientAddress } from './rateLimits';

type ParseDashboard = new (config: object, options: object) => express.Handler;

/**
 * parse-dashboard (about 400 packages) serves the product's own server only: an optional peer, loaded when
 * the Dashboard is mounted, so that a host that adopts the plugin neither installs nor loads it.
 */
function loadParseDashboard(): ParseDashboard {
  try {
    // A plain CommonJS package without type declarations.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('parse-dashboard') as ParseDashboard;
  } catch (error) {
    if ((error as { code?: string }).code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error('the Dashboard needs the package parse-dashboard: npm install parse-dashboard@9', { cause: error });
  }
}

/** Actions on selected BatchMemoryRequest rows in the Dashboard's data browser, run through Cloud Functions. */
const DASHBOARD_SCRIPTS = [
  { title: 'Cancel batch', classes: [CLASS.batch], cloudCodeFunction: 'dashboardCancelBatch', showConfirmationDialog: true, confirmationDialogStyle: 'critical' },
  { title: 'Retry failed items', classes: [CLASS.batch], cloudCodeFunction: 'dashboardRetryFailedItems', showConfirmationDialog: true },
  { title: 'Delete batch (undo the import)', classes: [CLASS.batch], cloudCodeFunction: 'dashboardDeleteBatch', showConfirmationDialog: true, confirmationDialogStyle: 'critical' },
];

/** Data browser columns of BatchMemoryRequest: what an operator reads first; internal keys hidden. */
const BATCH_COLUMNS = [
  ...['objectId', 'status', 'totalMemories', 'processedMemories', 'failedMemories', 'user', 'namespace', 'createdAt', 'startedAt', 'completedAt', 'error'],
  ...['webhookStatus', 'webhookAttempts', 'filesExpiredAt', 'deletedMemories', 'deletedAt', 'retryOf', 'workflowId', 'organization', 'workspace', 'partCount', 'rawBytes', 'storedBytes', 'expiresAt'],
]
  .map((name) => ({ name, visible: true }))
  .concat(
    ['batchFile', 'resultsFile', 'resultsParts', 'partsKey', 'requestHash', 'idempotencyKey', 'webhookUrl', 'webhookSecret', 'webhookDeliveredAt', 'webhookError', 'updatedAt', 'ACL'].map((name) => ({
      name,
      visible: false,
    })),
  );

/**
 * The Dashboard behind its login throttle, which counts in `logins` (RateLimits' store: one count across
 * instances with REDIS_URL); mount on the app itself with `app.use('/dashboard', ...)`.
 */
export function dashboardHandlers(config: Config, logins: Limit): express.Handler[] {
  const ParseDashboard = loadParseDashboard();
  const dashboard = new ParseDashboard(
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
    {
      // The configuration it serves holds the master key: plain HTTP to another machine only in development on
      // loopback (where no other machine connects), never once the server is reachable from outside.
      allowInsecureHTTP: config.NODE_ENV !== 'production' && isLoopbackHost(config.HOST),
      // Unset, the Dashboard draws a random secret per process: its sessions live in the process's memory, so a
      // restart ends them either way.
      cookieSessionSecret: config.DASHBOARD_COOKIE_SECRET,
    },
  );
  return [loginThrottle(logins), dashboard];
}

/**
 * Answers `POST /login` with 429 once an address has failed DASHBOARD_LOGIN_MAX_FAILURES times in the
 * window. Every attempt counts when it arrives, so that concurrent guesses cannot overtake the count; a
 * successful login clears its address. The address is the client's as Express sees it (`req.ip`, which
 * believes the X-Forwarded-For of a proxy in TRUST_PROXY only).
 */
function loginThrottle(logins: Limit): express.Router {
  // A router matches paths as the Dashboard's own routes do (case-insensitive, trailing slash optional).
  const router = express.Router();
  router.post('/login', (req, res, next) => {
    const address = clientAddress(req);
    logins.count(address).then((refusal) => {
      if (refusal) {
        res.setHeader('Retry-After', String(refusal.retryAfterSeconds));
        res.status(429).json({ error: { code: 'rate_limited', message: refusal.message } });
        return;
      }
      res.on('finish', () => {
        // Passport sets req.user once the session is logged in (by this request or an earlier one).
        if ((req as { user?: unknown }).user) void logins.reset(address).catch(() => undefined);
      });
      next();
    }, next);
  });
  return router;
}
