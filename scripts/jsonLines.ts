/**
 * `npm start` prints one JSON object per line: the product's processes already log that way; whatever
 * else they or the third-party processes (Temporal's dev server, Redis, Node's own warnings, a crash's
 * stack) print as plain text is wrapped into one, with the process it came from. Plain-text lines that
 * follow one another at once (a stack trace, an inspected object, a banner) stay together in one entry.
 */

export type OutputStream = 'stdout' | 'stderr';

/** How long a plain-text entry waits for the lines that continue it before it is written. */
const CONTINUATION_WAIT_MS = 25;

const WARNING = /\b(warn(ing)?|deprecat(ed|ion))\b/i;
/** Lines printed as errors that say nothing is wrong: Temporal's dev server logs this one when a client drops in the middle of a call (a worker killed). */
const NOT_AN_ERROR = /unable to add metrics baggage to gRPC trailer/;

interface Pending {
  entry: { time: string; level: string; msg: string; process: string; stream: OutputStream };
  timer: NodeJS.Timeout;
}

export class JsonLineWriter {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly write: (line: string) => void) {}

  /** One line of a process's output, without its line break. */
  line(process: string, stream: OutputStream, text: string): void {
    const key = `${process}\0${stream}`;
    const open = this.pending.get(key);
    const structured = parseObject(text);
    if (open && !structured && text.trim()) {
      open.entry.msg += `\n${text}`;
      return;
    }
    if (open) this.flush(key);
    if (!text.trim()) return;
    if (structured) {
      const { time, level, msg, ...fields } = structured;
      this.write(JSON.stringify({ time, level, msg, process, ...fields }));
      return;
    }
    const level = stream === 'stdout' ? 'info' : WARNING.test(text) || NOT_AN_ERROR.test(text) ? 'warn' : 'error';
    const entry = { time: new Date().toISOString(), level, msg: text, process, stream };
    const timer = setTimeout(() => this.flush(key), CONTINUATION_WAIT_MS);
    timer.unref();
    this.pending.set(key, { entry, timer });
  }

  /** Writes every entry still waiting for continuation lines. */
  flushAll(): void {
    for (const key of [...this.pending.keys()]) this.flush(key);
  }

  private flush(key: string): void {
    const open = this.pending.get(key);
    if (!open) return;
    this.pending.delete(key);
    clearTimeout(open.timer);
    this.write(JSON.stringify(open.entry));
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  if (!text.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
