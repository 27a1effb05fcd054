/**
 * Authentication of the routes beside Parse Server (the REST route, the bulk write route and the MCP door): a Parse
 * session token, or the master key from an address in PARSE_MASTER_KEY_IPS. Every refused credential
 * counts toward its address's AUTH_FAILURE_LIMIT, and a refused master key gets one answer whatever the
 * reason, so that the answer tells a guesser nothing.
 */
import { timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';
import type express from 'express';
import type { Config } from '../config';
import { idOf } from '../schema/classes';
import { BatchError, retryRead } from './errors';
import { sendError } from './httpErrors';
import type { RateLimits } from './rateLimits';

/** Who is asking: a user with a session, or the master key (acting for a user when one is named). */
export interface Actor {
  user?: Parse.User;
  sessionToken?: string;
  master: boolean;
}

/** Parse Server's session lookup: the user of a session token, or undefined when it is invalid or expired. */
export interface Sessions {
  userOfSession(sessionToken: string): Promise<Parse.User | undefined>;
}

export interface AuthedRequest extends express.Request {
  actor?: Actor;
}

/** The one answer to a refused master key: a wrong key, or the right one from an address outside PARSE_MASTER_KEY_IPS. */
export const MASTER_KEY_REFUSED = 'the master key is not accepted (it must be PARSE_MASTER_KEY, sent from an address in PARSE_MASTER_KEY_IPS)';

function bearerToken(req: express.Request): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.get('Authorization') ?? '')?.[1];
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Which addresses may use the master key: PARSE_MASTER_KEY_IPS, as Parse Server itself applies it. Built once, checked per request. */
export function masterKeyIps(allowed: string): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const entry of allowed
    .split(',')
    .map((ip) => ip.trim())
    .filter(Boolean)) {
    const [ip, bits] = entry.split('/');
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (address) => {
    if (!address) return false;
    const candidate = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
    return list.check(candidate, isIPv4(candidate) ? 'ipv4' : 'ipv6');
  };
}

export class RouteAuthentication {
  private readonly masterKeyAllowedFrom: (address: string | undefined) => boolean;

  constructor(
    private readonly config: Config,
    private readonly sessions: Sessions,
    private readonly limits: RateLimits,
  ) {
    this.masterKeyAllowedFrom = masterKeyIps(config.PARSE_MASTER_KEY_IPS);
  }

  /** Whether the request's X-Parse-Master-Key is accepted; a refused one is answered here (401, MASTER_KEY_REFUSED) and counted. */
  masterKeyAccepted(req: express.Request, res: express.Response): boolean {
    // Both checks always run, so a wrong key and a disallowed address cost the same.
    const rightKey = safeEqual(req.get('X-Parse-Master-Key') ?? '', this.config.PARSE_MASTER_KEY);
    const allowedAddress = this.masterKeyAllowedFrom(req.ip);
    if (rightKey && allowedAddress) return true;
    this.countFailure(req, res);
    sendError(res, new BatchError(401, 'unauthorized', MASTER_KEY_REFUSED));
    return false;
  }

  /** The REST route's authentication: sets `actor`, then counts the user's request toward USER_RATE_LIMIT. */
  readonly rest: express.RequestHandler = (req, res, next) => {
    (async () => {
      const request = req as AuthedRequest;
      if (req.get('X-Parse-Master-Key') !== undefined) {
        if (!this.masterKeyAccepted(req, res)) return false;
        request.actor = { master: true };
        return true;
      }
      const token = req.get('X-Parse-Session-Token') ?? bearerToken(req);
      if (!token) throw new BatchError(401, 'unauthorized', 'authentication required: send X-Parse-Session-Token or Authorization: Bearer <session token>');
      await this.sessionActor(request, res, token);
      return true;
    })().then((authenticated) => authenticated && next(), next);
  };

  /**
   * The MCP door's authentication, on every request: `Authorization: Bearer <session token>` only. A missing
   * token counts as a failed authentication too, since an MCP client that sends none is not configured for
   * this server; the user's request counts toward USER_RATE_LIMIT as on the REST route.
   */
  readonly mcp: express.RequestHandler = (req, res, next) => {
    (async () => {
      const token = bearerToken(req);
      if (!token) {
        this.countFailure(req, res);
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new BatchError(401, 'unauthorized', 'authentication required: send Authorization: Bearer <session token>');
      }
      await this.sessionActor(req as AuthedRequest, res, token);
    })().then(() => next(), next);
  };

  /**
   * A request that carries several calls (a JSON-RPC array on the MCP door) counts each toward the user's
   * USER_RATE_LIMIT: the request itself was counted when it was authenticated, the others are counted here.
   */
  async countFurtherCalls(actor: Actor, calls: number): Promise<void> {
    if (calls > 1 && actor.user) await this.limits.countRestRequest(idOf(actor.user), calls - 1);
  }

  /** Sets the actor of a session token and counts the user's request; an unknown or expired token is a counted 401. */
  private async sessionActor(req: AuthedRequest, res: express.Response, token: string): Promise<void> {
    const user = await retryRead(() => this.sessions.userOfSession(token));
    if (!user) {
      this.countFailure(req, res);
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new BatchError(401, 'unauthorized', 'the session token is invalid or expired');
    }
    req.actor = { master: false, user, sessionToken: token };
    await this.limits.countRestRequest(idOf(user));
  }

  private countFailure(req: express.Request, res: express.Response): void {
    // Counted in memory (or a shared store) while the answer goes out; a store error must not fail the request.
    this.limits.authenticationFailed(req, res).catch(() => undefined);
  }
}
