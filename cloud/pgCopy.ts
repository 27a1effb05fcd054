/** Rows in PostgreSQL's COPY text format (tab-separated columns, one row a line, `\N` for NULL). */

const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One column's value: text as is with backslash, tab, newline and carriage return escaped; null and undefined as NULL. */
export function copyField(value: string | null | undefined): string {
  if (value === null || value === undefined) return '\\N';
  return value.replace(/[\\\t\n\r]/g, (character) => ESCAPES[character]);
}

/** One row, ending with its newline. */
export function copyLine(values: (string | null | undefined)[]): string {
  return `${values.map(copyField).join('\t')}\n`;
}
