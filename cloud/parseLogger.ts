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

/** Parse Server's `loggerAdapter`: each line becomes one structured log line at the same level (verbose and below: debug). */
export class ParseLogAdapter {
  constructor(
    private readonly logger: Logger,
    private readonly secrets: readonly string[],
  ) {}

  log(level: string, ...args: unknown[]): void {
    const message = redactSecrets(format(...args), this.secrets);
    this.logger[LEVELS[level] ?? 'debug'](message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}… (truncated)` : message, { source: 'parse-server' });
  }
}
