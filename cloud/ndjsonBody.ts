/**
 * The NDJSON body of a streamed batch (POST /api/v1/memory/batch with Content-Type application/x-ndjson),
 * read and validated one line at a time as it arrives.
 */
import type { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Config } from '../config';
import { CustomIds, type MemoryItem, describeDetails, forbiddenKeyPath, formatPath, limitedMemoryItemSchema, repeatedCustomIdMessage, validationDetails } from '../schema/memory';
import { BatchError } from './errors';

/**
 * Memories of an NDJSON body, validated one line at a time; the body is never held in memory whole.
 * Every line counts toward MAX_STREAM_BATCH_SIZE, blank or not, so that a body of nothing but
 * newlines ends at the bound instead of being scanned to its end. A bad line ends the body with its error;
 * given `onProblem` (a dry run), the error is handed to it instead and reading goes on with the next line
 * (a body over MAX_STREAM_BATCH_SIZE lines still ends there).
 */
export async function* ndjsonMemories(body: Readable, config: Config, hash: ReturnType<typeof createHash>, onProblem?: (problem: BatchError) => void): AsyncGenerator<MemoryItem> {
  const itemSchema = limitedMemoryItemSchema(config.MAX_MEMORY_SIZE);
  const customIds = new CustomIds();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const maxLine = maxNdjsonLineBytes(config);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lines = 0;
  let index = 0;
  /** Inside a line too long to read, in a dry run: its bytes are skipped up to its end. */
  let skipping = false;

  const parseLine = (bytes: Buffer): MemoryItem | undefined => {
    lines++;
    if (lines > config.MAX_STREAM_BATCH_SIZE) {
      throw new BatchError(413, 'too_large', `invalid batch: the body has more than MAX_STREAM_BATCH_SIZE = ${config.MAX_STREAM_BATCH_SIZE} lines (one memory per line; blank lines count too)`, [
        { path: 'memories', field: 'memories', message: `must contain at most ${config.MAX_STREAM_BATCH_SIZE} lines`, limit: config.MAX_STREAM_BATCH_SIZE },
      ]);
    }
    const at = `memories[${index}]`;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new BatchError(400, 'invalid_request', `invalid batch: ${at} (line ${lines}) is not valid UTF-8`, [{ path: at, index, message: 'is not valid UTF-8' }]);
    }
    if (text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // JSON.parse's message quotes the line: the batch's error, which its organization's members read, must not.
      throw new BatchError(400, 'invalid_request', `invalid batch: ${at} (line ${lines}) is not valid JSON`, [{ path: at, index, message: 'is not valid JSON' }]);
    }
    const forbidden = forbiddenKeyPath(value);
    if (forbidden) {
      const path = `${at}.${formatPath(forbidden)}`;
      throw new BatchError(400, 'invalid_request', `invalid batch: ${path} is not an allowed key`, [{ path, index, field: formatPath(forbidden), message: 'is not an allowed key' }]);
    }
    const parsed = itemSchema.safeParse(value);
    if (!parsed.success) {
      const details = validationDetails(parsed.error).map((d) => ({ ...d, index, path: d.path ? `${at}.${d.path}` : at, ...(d.path ? { field: d.path } : {}) }));
      const tooBig = details.some((d) => d.limit !== undefined && !d.field);
      throw new BatchError(tooBig ? 413 : 400, tooBig ? 'too_large' : 'invalid_request', `invalid batch: ${describeDetails(details)}`, details);
    }
    const first = customIds.repeatOf(parsed.data, index);
    if (first !== undefined) {
      const message = repeatedCustomIdMessage(first);
      throw new BatchError(400, 'invalid_request', `invalid batch: ${at}.custom_id ${message}`, [{ path: `${at}.custom_id`, index, field: 'custom_id', message }]);
    }
    return parsed.data;
  };

  /** A line's memory; in a dry run, a bad line is reported and counted as a memory's place, and reading goes on. */
  const checked = (bytes: Buffer): MemoryItem | undefined => {
    try {
      return parseLine(bytes);
    } catch (error) {
      if (!onProblem || !(error instanceof BatchError) || lines > config.MAX_STREAM_BATCH_SIZE) throw error;
      onProblem(error);
      index++;
      return undefined;
    }
  };

  for await (const chunk of body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      if (skipping) {
        skipping = false;
        start = newline + 1;
        continue;
      }
      pending.push(chunk.subarray(start, newline));
      const item = checked(Buffer.concat(pending));
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
      if (item) {
        index++;
        yield item;
      }
    }
    if (start < chunk.length && !skipping) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLine) {
        const tooLong = new BatchError(413, 'too_large', `invalid batch: memories[${index}] (line ${lines + 1}) is longer than ${maxLine} bytes (MAX_MEMORY_SIZE = ${config.MAX_MEMORY_SIZE})`, [
          { path: `memories[${index}]`, index, message: 'is too large', limit: config.MAX_MEMORY_SIZE },
        ]);
        if (!onProblem) throw tooLong;
        onProblem(tooLong);
        lines++;
        index++;
        pending = [];
        pendingBytes = 0;
        skipping = true;
      }
    }
  }
  if (pendingBytes > 0) {
    const item = checked(Buffer.concat(pending));
    if (item) yield item;
  }
}

/** The longest NDJSON line read before it is refused: a memory of MAX_MEMORY_SIZE, with room for JSON escapes. */
export function maxNdjsonLineBytes(config: Config): number {
  return config.MAX_MEMORY_SIZE * 2 + 1024;
}
