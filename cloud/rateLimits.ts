/**
 * The rate-limit policy of every door, in one place; the numbers come from the configuration.
 *
 * - Sign-up and log-in, per client address: Parse Server's own `rateLimit` option, which counts before
 *   authentication and also covers those routes inside `/parse/batch`.
 * - Cloud Functions, the REST route and the MCP door, per user: one count for all three, so that switching between
 *   doors does not multiply the allowance. Parse Server's option cannot share a count with a route outside
 *   `/parse` (each of its limits keeps its own store) nor answer Parse's REQUEST_LIMIT_EXCEEDED, so this
 *   count is kept here and applied inside Parse Server through its `requestContextMiddleware` option.
 * - Failed authentications, per client address, on every door: an address past the limit is answered 429
 *   before any credential it sends is looked at, so it learns nothing more until its window ends.
 *
 * Every count lives in an express-rate-limit store, the library Parse Server's limiter is built on: in
 * memory, per process, without REDIS_URL; in Redis (rate-limit-redis, as Parse Server's own limits with
 * `redisUrl`) with it, so that several instances keep one count.
 */
import path from 'node:path';
import type express from 'express';
import { type ClientRateLimitInfo, MemoryStore, type Options, type Store, ipKeyGenerator } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import { createClient } from 'redis';
import Parse from '../schema/parseSdk';
import type { RateLimitOptions } from 'parse-server/types/Options';
import type { Config } from '../config';
import { BatchError } from './errors';
import { sendError } from './httpErrors';

type RedisClient = ReturnType<typeof createClient>;

/** Over a limit: which one, and how long until its window ends. */
export interface Refusal {
  message: string;
  retryAfterSeconds: number;
}

/** One limit: `limit` hits per key and window, counted in an express-rate-limit store. */
export class Limit {
  constructor(
    private readonly store: Store,
    private readonly describe: (limit: number, window: string) => string,
    private readonly limit: number,
    private readonly windowMs: number,
  ) {
    void this.store.init?.({ windowMs } as Options);
  }

  /** Counts `hits` for the key (stopping once over); the refusal when that went past the limit. */
  async count(key: string, hits = 1): Promise<Refusal | undefined> {
    let info: ClientRateLimitInfo | undefined;
    for (let hit = 0; hit < hits && !(info && info.totalHits > this.limit); hit++) info = await this.store.increment(key);
    return info && info.totalHits > this.limit ? this.refusal(info) : undefined;
  }

  /** Forgets the key's hits (a success that ends a run of failures). */
  async reset(key: string): Promise<void> {
    await this.store.resetKey(key);
  }

  /** The refusal when the key is already past the limit, without counting. */
  async check(key: string): Promise<Refusal | undefined> {
    const info = await this.store.get?.(key);
    if (!info?.resetTime || info.resetTime.getTime() <= Date.now()) return undefined;
    return info.totalHits >= this.limit ? this.refusal(info) : undefined;
  }

  private refusal(info: ClientRateLimitInfo): Refusal {
    const resetAt = info.resetTime?.getTime() ?? Date.now() + this.windowMs;
    const retryAfterSeconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000));
    return { message: `${this.describe(this.limit, `${this.windowMs / 1000} s`)}; retry after ${retryAfterSeconds} seconds (Retry-After)`, retryAfterSeconds };
  }
}

/** What Parse Server's middlewares leave on a request: the credentials sent (`info`) and what it accepted (`auth`). */
interface ParseRequest extends express.Request {
  info?: { sessionToken?: string; masterKey?: string };
  auth?: { isMaster?: boolean; isMaintenance?: boolean; user?: { id: string } };
}

/** Routes that check a password; Parse Server answers a wrong one with 404 (OBJECT_NOT_FOUND). */
const PASSWORD_ROUTES = /^\/(login|verifypassword)\/?$/i;

/**
 * The client address a per-address count is kept for (an IPv6 client by its /56, as express-rate-limit does):
 * Express's `req.ip`, the connection's address unless the app trusts a proxy in front (TRUST_PROXY).
 */
export function clientAddress(req: express.Request): string {
  return ipKeyGenerator(req.ip ?? 'unknown');
}

/** Parse Server's answer to a refused master key, whatever the reason: the same for a wrong key and a key from the wrong address. */
function refuseParseMasterKey(res: express.Response): void {
  res.status(403).json({ error: 'unauthorized' });
}

function refuseParse(res: express.Response, refusal: Refusal): void {
  res.status(429).setHeader('Retry-After', String(refusal.retryAfterSeconds));
  res.json({ code: Parse.Error.REQUEST_LIMIT_EXCEEDED, error: refusal.message });
}

function refuseRest(res: express.Response, refusal: Refusal): void {
  sendError(res, new BatchError(429, 'rate_limited', refusal.message, [], refusal.retryAfterSeconds));
}

/** `res.locals` flag: a door has counted this request's failed authentication already. */
const FAILED = 'authenticationFailed';

/** The window of DASHBOARD_LOGIN_MAX_FAILURES. */
const DASHBOARD_LOGIN_WINDOW_MS = 15 * 60_000;

export class RateLimits {
  private readonly perUser: Limit;
  private readonly authFailures: Limit;
  /** Failed Dashboard logins per client address, in the same store as the rest (shared through Redis). */
  readonly dashboardLogins: Limit;
  /** The connection the counts are kept through when REDIS_URL is set. */
  private readonly redis?: RedisClient;

  constructor(
    private readonly config: Config,
    /** Where Parse Server is mounted on the app. */
    private readonly parseMount: string,
  ) {
    const window = config.RATE_LIMIT_WINDOW;
    let store: (name: string) => Store = () => new MemoryStore();
    if (config.REDIS_URL) {
      const redis = createClient({ url: config.REDIS_URL });
      this.redis = redis;
      // Reported to the caller by the command that fails; the client reconnects on its own.
      redis.on('error', () => undefined);
      const connected = redis.connect();
      connected.catch(() => undefined);
      // Each limit under its own prefix: Parse Server's limits use rate-limit-redis's default, `rl:`.
      store = (name) => new RedisStore({ prefix: `batch-memory:${name}:`, sendCommand: async (...args: string[]) => (await connected, redis.sendCommand(args)) });
    }
    this.perUser = new Limit(
      store('user'),
      (limit, span) => `rate limit of ${limit} requests per ${span} exceeded (USER_RATE_LIMIT, Cloud Functions, the REST route and the MCP door together)`,
      config.USER_RATE_LIMIT,
      window,
    );
    this.authFailures = new Limit(
      store('auth-failures'),
      (limit, span) => `too many failed authentications from this address (AUTH_FAILURE_LIMIT: ${limit} per ${span})`,
      config.AUTH_FAILURE_LIMIT,
      window,
    );
    this.dashboardLogins = new Limit(
      store('dashboard-logins'),
      (limit, span) => `too many failed Dashboard logins from this address (DASHBOARD_LOGIN_MAX_FAILURES: ${limit} per ${span})`,
      config.DASHBOARD_LOGIN_MAX_FAILURES,
      DASHBOARD_LOGIN_WINDOW_MS,
    );
  }

  /** Parse Server's `rateLimit` option: sign-ups and log-ins per client address. */
  parseServerRateLimits(): RateLimitOptions[] {
    const { RATE_LIMIT_WINDOW: window, SIGNUP_RATE_LIMIT: signUps, LOGIN_RATE_LIMIT: logIns } = this.config;
    // Counted for loopback clients too: a reverse proxy on the same host would otherwise exempt everyone.
    const common = { requestTimeWindow: window, includeInternalRequests: true, zone: 'ip', ...(this.config.REDIS_URL ? { redisUrl: this.config.REDIS_URL } : {}) };
    const span = `${window / 1000} s`;
    return [
      { ...common, requestPath: '/users', requestMethods: ['POST'], requestCount: signUps, errorResponseMessage: `too many sign-ups from this address (SIGNUP_RATE_LIMIT: ${signUps} per ${span})` },
      { ...common, requestPath: '/login', requestCount: logIns, errorResponseMessage: `too many log-ins from this address (LOGIN_RATE_LIMIT: ${logIns} per ${span})` },
      { ...common, requestPath: '/verifyPassword', requestCount: logIns, errorResponseMessage: `too many password checks from this address (LOGIN_RATE_LIMIT: ${logIns} per ${span})` },
    ];
  }

  /**
   * First middleware of the app, before any door authenticates: an address past AUTH_FAILURE_LIMIT is
   * answered 429. Failures are counted as each door finds them: the REST and bulk write routes say so
   * (`authenticationFailed`); Parse Server's are read from the request once it has been answered.
   */
  readonly authFailureGuard: express.RequestHandler = (req, res, next) => {
    const address = clientAddress(req);
    // Decided on arrival: Parse Server's routing rewrites req.url on the way in.
    const parsePath = this.parsePath(req.path);
    this.authFailures.check(address).then((refusal) => {
      if (refusal) {
        if (parsePath === undefined) refuseRest(res, refusal);
        else refuseParse(res, refusal);
        return;
      }
      res.once('close', () => {
        if (!res.locals[FAILED] && parsePath !== undefined && parseRefusedCredentials(req as ParseRequest, res, parsePath)) void this.authFailures.count(address);
      });
      next();
    }, next);
  };

  /** Counts a refused credential (bad session token, refused master key) of the request's address. */
  async authenticationFailed(req: express.Request, res: express.Response): Promise<void> {
    res.locals[FAILED] = true;
    await this.authFailures.count(clientAddress(req));
  }

  /**
   * Parse Server's `requestContextMiddleware`: runs once Parse Server has authenticated the request.
   * Any refused master key gets Parse Server's answer to a key from an address outside masterKeyIps,
   * and Cloud Function calls (also those inside /batch) count toward the caller's USER_RATE_LIMIT.
   */
  readonly parseRequestGate: express.RequestHandler = (req, res, next) => {
    const { info, auth } = req as ParseRequest;
    if (auth?.isMaster || auth?.isMaintenance) return next();
    if (info?.masterKey !== undefined) return refuseParseMasterKey(res);
    const calls = functionCalls(req);
    if (calls === 0) return next();
    const key = auth?.user ? `user:${auth.user.id}` : `address:${clientAddress(req)}`;
    this.perUser.count(key, calls).then((refusal) => (refusal ? refuseParse(res, refusal) : next()), next);
  };

  /** The REST route's share of USER_RATE_LIMIT (`calls` of them), after authentication; master-key requests are not counted. */
  async countRestRequest(userId: string, calls = 1): Promise<void> {
    const refusal = await this.perUser.count(`user:${userId}`, calls);
    if (refusal) throw new BatchError(429, 'rate_limited', refusal.message, [], refusal.retryAfterSeconds);
  }

  /** Closes the Redis connection, if any. */
  async close(): Promise<void> {
    if (this.redis?.isOpen) await this.redis.close();
  }

  /** The route inside Parse Server (doubled slashes folded, as Parse Server does), or undefined for another door. */
  private parsePath(appPath: string): string | undefined {
    const folded = appPath.replace(/\/{2,}/g, '/');
    if (folded.toLowerCase() === this.parseMount) return '/';
    return folded.toLowerCase().startsWith(`${this.parseMount}/`) ? folded.slice(this.parseMount.length) : undefined;
  }
}

/** Whether Parse Server refused the credentials a request sent: a master key it did not accept, a session token it could not resolve, a wrong password. */
function parseRefusedCredentials(req: ParseRequest, res: express.Response, route: string): boolean {
  if (res.statusCode === 429) return false;
  const auth = req.auth;
  const masterKey = req.info?.masterKey ?? req.get('X-Parse-Master-Key');
  if (masterKey !== undefined && !auth?.isMaster && !auth?.isMaintenance) return true;
  if (req.info?.sessionToken && !auth && res.statusCode >= 400) return true;
  return res.statusCode === 404 && PASSWORD_ROUTES.test(route);
}

/** How many Cloud Function calls a request to Parse Server makes: one, or each sub-request of a /batch to a function. */
function functionCalls(req: express.Request): number {
  if (/^\/functions\//i.test(req.path)) return 1;
  if (!/^\/batch\/?$/i.test(req.path)) return 0;
  const requests = (req.body as { requests?: unknown } | undefined)?.requests;
  if (!Array.isArray(requests)) return 0;
  return requests.filter((sub: { path?: unknown } | null) => typeof sub?.path === 'string' && /\/functions\//i.test(path.posix.normalize(sub.path))).length;
}
