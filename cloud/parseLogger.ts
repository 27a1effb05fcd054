/**
 * Parse Server's own log lines (LiveQuery's too) go into the structured log, with session tokens and
 * this deployment's secrets replaced: LiveQuery, for one, names the session token of every subscription
 * it refuses, and a log is read by more people than should hold a user's session.
 */
import { format } from 'node:util';
import type { Logger } from '../config/log';

export const REDACTED = '[redacted]';

/** Longest message kept: a failed request's whole body must not flood the log. */
const MAX_MESSAGE_CHARS = 4096;

const SESSION_TOKEN_PATTERNS: [RegExp, string][] = [
  // The tokens Parse Server issues.
  [/\br:[0-9a-f]{32}\b/gi, REDACTED],
  // LiveQuery's "for session <token> with" and "with session <token> with", whatever the token looks like.
  [/(\bsession )(?!token\b)[^\s,]+/gi, `$1${REDACTED}`],
  // sessionToken / X-Parse-Session-Token as JSON, header or key=value.
  [/((?:session_?token|x-parse-session-token)["']?\s*[:=]\s*["']?)[^"'\s,}&]+/gi, `$1${REDACTED}`],
];

/** The message with session tokens and the given secrets replaced by [redacted]. */
export function redactSecrets(message: string, secrets: readonly string[] = []): string {
  let text = message;
  for (const secret of secrets) if (secret) text = text.split(secret).join(REDACTED);
  for (const [pattern, replacement] of SESSION_TOKEN_PATTERNS) text = text.replace(pattern, replacement);
  return text;
}

const LEVELS: Record<string, 'debug' | 'info' | 'warn' | 'error'> = { error: 'error', warn: 'warn', info: 'info' };

/**
 * Parse error codes that say the server failed rather than that it refused a request: internal error,
 * other cause, a lost connection, and a Cloud Code function that threw something unexpected.
 */
const FAILURE_CODES = new Set([1, -1, 100, 141]);

/**
 * Refusals Parse Server logs as a bare sentence at `error` (its sanitized permission errors: the client is
 * told only "Permission denied"): an access denied, not a fault of the server.
 */
const REFUSAL_SENTENCE =
  /^(Permission denied|Clients aren't allowed|This user is not allowed|unauthorized|Invalid session token|Invalid application ID|master key is required|Master Key is required|read-only masterKey|Cannot perform a write operation when using readOnlyMasterKey|Route not allowed|Cannot modify user|Invalid object ID)/i;

/** The refusal a log call describes, if it is one: a Parse error with a client code, given as an object or as JSON after "Error: ". */
function refusalIn(args: unknown[], text: string): { code: number; error: string } | undefined {
  const candidates: unknown[] = args.flatMap((arg) => (isPlainObject(arg) && 'error' in arg ? [arg, arg.error] : [arg]));
  const embedded = /\bError: (\{.*\})\s*$/m.exec(text)?.[1];
  if (embedded) {
    try {
      candidates.push(JSON.parse(embedded));
    } catch {
      // not JSON after all: no code to read
    }
  }
  for (const candidate of candidates) {
    const { code, message } = (candidate ?? {}) as { code?: unknown; message?: unknown };
    if (typeof code === 'number' && typeof message === 'string') return FAILURE_CODES.has(code) ? undefined : { code, error: message };
  }
  return REFUSAL_SENTENCE.test(text) ? { code: 0, error: text } : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !(value instanceof Error) && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * Parse Server's `loggerAdapter`: each call becomes one structured log line at the same level (verbose and
 * below: debug). A refusal (a denied file, a refused LiveQuery subscription, a bad session token) is a
 * `warn` of its first line with the Parse error code, without a stack; an unexpected error keeps its level
 * and carries its stack in a field.
 */
export class ParseLogAdapter {
  constructor(
    private readonly logger: Logger,
    private readonly secrets: readonly string[],
  ) {}

  log(level: string, ...args: unknown[]): void {
    const at = LEVELS[level] ?? 'debug';
    const errors = args.flatMap((arg) => (arg instanceof Error ? [arg] : isPlainObject(arg) && arg.error instanceof Error ? [arg.error] : []));
    const text = this.clean(format(...args.filter((arg) => !(arg instanceof Error))).trim());
    const refusal = (at === 'error' || at === 'warn') && refusalIn(args, text);
    if (refusal) {
      const firstLine = text.split('\n')[0].replace(/:$/, '');
      this.logger.warn(firstLine || this.clean(refusal.error), { source: 'parse-server', ...(refusal.code ? { code: refusal.code } : {}), error: this.clean(refusal.error) });
      return;
    }
    const [error] = errors;
    this.logger[at](text || (error ? this.clean(error.message) : ''), {
      source: 'parse-server',
      ...(error ? { error: { name: error.name, message: this.clean(error.message), code: (error as { code?: unknown }).code, stack: this.clean(error.stack ?? '') } } : {}),
    });
  }

  private clean(message: string): string {
    const text = redactSecrets(message, this.secrets);
    return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}… (truncated)` : text;
  }
}
