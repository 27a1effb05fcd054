/**
 * Turns a JSON document of memories — an array, or an object with a `memories` array — into NDJSON
 * lines while it streams in: each memory is parsed on its own, so the document is never held whole.
 */

/** The document is not a readable list of memories; `path` names where (`memories[12]`, `document`). */
export class MemoriesDocumentError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path} ${message}`);
    this.name = 'MemoriesDocumentError';
  }
}

/** Pieces of a text as they arrive: a Readable, an async generator, or an array of chunks. */
export type Chunks = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

/**
 * A character scanner that tracks nesting and strings, and cuts out the raw text of each element of
 * the memories array: the root array, or the array under the root object's `memories` key.
 */
class MemoriesArrayScanner {
  private readonly containers: string[] = [];
  private inString = false;
  private escaped = false;
  private rootSeen = false;
  /** Nesting depth of the memories array's elements; undefined until the array is found. */
  private elementDepth: number | undefined;
  private arrayClosed = false;
  private expectingKey = false;
  private keyText: string | undefined;
  private lastKey: string | undefined;
  private elementPieces: string[] | undefined;
  private elementStart = 0;
  private index = 0;

  /** NDJSON lines of the elements completed by this piece of text. */
  push(text: string): string[] {
    const lines: string[] = [];
    this.elementStart = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (this.inString) {
        this.stringCharacter(c);
        continue;
      }
      if (WHITESPACE.has(c)) continue;
      const depth = this.containers.length;
      const atElement = depth === this.elementDepth && !this.arrayClosed;
      if (atElement && this.elementPieces === undefined && c !== ',' && c !== ']' && c !== '}') {
        this.elementPieces = [];
        this.elementStart = i;
      }
      switch (c) {
        case '"':
          this.inString = true;
          if (depth === 1 && this.expectingKey) {
            this.keyText = '';
            this.expectingKey = false;
          }
          break;
        case '{':
        case '[':
          this.open(c, depth);
          break;
        case '}':
        case ']':
          if (atElement && this.elementPieces) lines.push(this.finishElement(text, i));
          this.close(c);
          if (depth === this.elementDepth) this.arrayClosed = true;
          else if (this.elementPieces && depth - 1 === this.elementDepth) lines.push(this.finishElement(text, i + 1));
          break;
        case ',':
          if (atElement && this.elementPieces) lines.push(this.finishElement(text, i));
          if (depth === 1 && this.containers[0] === '{') this.expectingKey = true;
          break;
        default:
          if (depth === 0) throw new MemoriesDocumentError('document', 'must be a JSON array or object');
      }
    }
    this.elementPieces?.push(text.slice(this.elementStart));
    return lines;
  }

  /** Throws unless the document ended complete and held the memories array. */
  end(): void {
    if (this.inString || this.containers.length > 0) throw new MemoriesDocumentError('document', 'ends before its closing bracket (truncated?)');
    if (this.elementDepth === undefined) throw new MemoriesDocumentError('document', 'holds no memories: expected an array, or an object with a "memories" array');
  }

  private stringCharacter(c: string): void {
    if (this.keyText !== undefined) this.keyText += c;
    if (this.escaped) {
      this.escaped = false;
    } else if (c === '\\') {
      this.escaped = true;
    } else if (c === '"') {
      this.inString = false;
      if (this.keyText !== undefined) {
        this.lastKey = JSON.parse(`"${this.keyText}`) as string;
        this.keyText = undefined;
      }
    }
  }

  private open(bracket: string, depth: number): void {
    if (depth === 0) {
      if (this.rootSeen) throw new MemoriesDocumentError('document', 'holds more than one JSON value');
      this.rootSeen = true;
      if (bracket === '[') this.elementDepth = 1;
      else this.expectingKey = true;
    } else if (depth === 1 && this.containers[0] === '{' && this.lastKey === 'memories' && bracket === '[' && this.elementDepth === undefined) {
      this.elementDepth = 2;
    }
    this.containers.push(bracket);
  }

  private close(bracket: string): void {
    const open = this.containers.pop();
    if (open !== (bracket === '}' ? '{' : '[')) throw new MemoriesDocumentError('document', `has a "${bracket}" that closes nothing it opened`);
  }

  private finishElement(text: string, end: number): string {
    const raw = (this.elementPieces ?? []).join('') + text.slice(this.elementStart, end);
    this.elementPieces = undefined;
    const path = `memories[${this.index++}]`;
    try {
      return `${JSON.stringify(JSON.parse(raw))}\n`;
    } catch {
      // JSON.parse's message quotes the text: the error names the element, never its content.
      throw new MemoriesDocumentError(path, 'is not valid JSON');
    }
  }
}

/** NDJSON lines (each ending in a newline) of the memories in a streamed JSON document. */
export async function* jsonDocumentToNdjson(source: Chunks): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const scanner = new MemoriesArrayScanner();
  const decode = (chunk?: Uint8Array) => {
    try {
      return decoder.decode(chunk, { stream: chunk !== undefined });
    } catch {
      throw new MemoriesDocumentError('document', 'is not valid UTF-8');
    }
  };
  for await (const chunk of source) {
    yield* scanner.push(typeof chunk === 'string' ? chunk : decode(chunk));
  }
  yield* scanner.push(decode());
  scanner.end();
}
