/**
 * Parse Dashboard, mounted at /dashboard: its session cookie is signed with a secret of its own (never
 * the master key, which a signed cookie would let anyone test guesses of offline), and failed logins
 * are throttled per client address before the Dashboard checks the password.
 */
import express from 'express';
import { type Config, isLoopbackHost, publicServerURL } from '../config';
import { CLASS } from '../schema/classes';

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

/** How long failed logins of one address are remembered (and a throttled address waits at most). */
const LOGIN_FAILURE_WINDOW_MS = 15 * 60_000;
/** Addresses remembered at most: beyond it expired windows are dropped, and if none has expired, all. */
const MAX_TRACKED_ADDRESSES = 100_000;

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
  .concat(
    ['batchFile', 'resultsFile', 'partsKey', 'requestHash', 'idempotencyKey', 'webhookUrl', 'webhookSecret', 'webhookDeliveredAt', 'webhookError', 'updatedAt', 'ACL'].map((name) => ({
      name,
      visible: false,
    })),
  );

/** The Dashboard behind its login throttle; mount on the app itself with `app.use('/dashboard', ...)`. */
export function dashboardHandlers(config: Config): express.Handler[] {
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
  return [loginThrottle(config.DASHBOARD_LOGIN_MAX_FAILURES), dashboard];
}

/**
 * Answers `POST /login` with 429 once an address has failed DASHBOARD_LOGIN_MAX_FAILURES times in the
 * window. Every attempt counts when it arrives, so that concurrent guesses cannot overtake the count; a
 * successful login clears its address: the client's as Express sees it (`req.ip`, which believes the
 * X-Forwarded-For of a proxy in TRUST_PROXY only).
 */
function loginThrottle(maxFailures: number): express.Router {
  const failures = new Map<string, { start: number; count: number }>();
  let lastSweep = Date.now();
  // A router matches paths as the Dashboard's own routes do (case-insensitive, trailing slash optional).
  const router = express.Router();
  router.post('/login', (req, res, next) => {
    const address = req.ip ?? 'unknown';
    const now = Date.now();
    if (now - lastSweep >= LOGIN_FAILURE_WINDOW_MS || failures.size >= MAX_TRACKED_ADDRESSES) {
      for (const [key, { start }] of failures) if (now - start >= LOGIN_FAILURE_WINDOW_MS) failures.delete(key);
      if (failures.size >= MAX_TRACKED_ADDRESSES) failures.clear();
      lastSweep = now;
    }
    let entry = failures.get(address);
    if (!entry || now - entry.start >= LOGIN_FAILURE_WINDOW_MS) {
      entry = { start: now, count: 0 };
      failures.set(address, entry);
    }
    if (entry.count >= maxFailures) {
      const retryAfter = Math.ceil((entry.start + LOGIN_FAILURE_WINDOW_MS - now) / 1000);
      res.setHeader('Retry-After', String(retryAfter));
      res.status(429).json({
        error: { code: 'rate_limited', message: `too many failed Dashboard logins from this address (DASHBOARD_LOGIN_MAX_FAILURES is ${maxFailures}); retry after ${retryAfter} seconds` },
      });
      return;
    }
    entry.count++;
    res.on('finish', () => {
      // Passport sets req.user once the session is logged in (by this request or an earlier one).
      if ((req as { user?: unknown }).user) failures.delete(address);
    });
    next();
  });
  return router;
}
