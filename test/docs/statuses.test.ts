/** The documents' lists of batch statuses and status moves are the schema's statuses and Cloud Code's TRANSITIONS. */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/stack';
import { BATCH_STATUSES, TERMINAL_STATUSES } from '../../schema/memory';
import { TRANSITIONS } from '../../cloud/main';

const read = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
const codes = (text: string) => [...text.matchAll(/`(\w+)`/g)].map(([, word]) => word);

test('troubleshooting.md names every status, and exactly the legal status moves', () => {
  const troubleshooting = read('docs/troubleshooting.md');
  expect(troubleshooting).toContain(`\`status must be one of ${BATCH_STATUSES.join(', ')}\``);
  // The row of `status cannot change from …`: "`from` → `to`, `to`; …; nothing leaves `a`, `b` or `c`".
  const row = /^\| `status cannot change from <previous> to <status>` \| \d+ \| not a legal move: ([^|]*) \|/m.exec(troubleshooting)?.[1];
  expect(row).toBeDefined();
  const clauses = (row as string).split(';').map((clause) => clause.trim());
  const moves: Record<string, string[]> = {};
  for (const clause of clauses) {
    const [from, to] = clause.split('→');
    if (to !== undefined) moves[codes(from)[0]] = codes(to);
    else if (clause.startsWith('nothing leaves')) for (const status of codes(clause)) moves[status] = [];
  }
  expect(moves).toEqual(Object.fromEntries(Object.entries(TRANSITIONS).map(([from, to]) => [from, [...to]])));
  expect(Object.keys(moves).sort()).toEqual([...BATCH_STATUSES].sort());
  // A batch whose run has ended can only be deleted; nothing leaves `deleted`; a wait ends at either.
  expect(
    Object.entries(moves)
      .filter(([, to]) => to.length === 0 || to.join() === 'deleting')
      .map(([from]) => from),
  ).toEqual([...TERMINAL_STATUSES]);
});

test("operations.md's BatchMemoryRequest table lists the statuses in the schema's order", () => {
  const row = /^\| `status` \| ([^|]*) \|$/m.exec(read('docs/operations.md'))?.[1];
  expect(codes(row ?? '')).toEqual([...BATCH_STATUSES]);
});
