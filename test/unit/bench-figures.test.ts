/**
 * The benchmark's own arithmetic: rows for the COPY baseline in PostgreSQL's text format, and a CPU
 * profile's samples split by what the code is, within the measured window and scaled to the CPU time
 * the kernel counted; and the sections of BENCHMARKS.md that separate commands write.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyLine } from '../../bench/baselines';
import { cpuByCategory } from '../../bench/profile';
import { writeDocument, writeSection } from '../../bench/report';

test('copyLine escapes what COPY text format reads as separators or escapes, and nothing else', () => {
  expect(copyLine(['a', 'b c'])).toBe('a\tb c\n');
  expect(copyLine(['tab\there', 'line\nbreak', 'cr\rhere', 'back\\slash', '{"k":"v"}'])).toBe('tab\\there\tline\\nbreak\tcr\\rhere\tback\\\\slash\t{"k":"v"}\n');
});

test('cpuByCategory counts only samples inside the window and splits the measured CPU seconds by their shares', () => {
  const frame = (functionName: string, url: string) => ({ functionName, url });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', '') },
      { id: 2, callFrame: frame('(garbage collector)', '') },
      { id: 3, callFrame: frame('createObjects', 'file:///app/dist/cloud/bulkWriter.js') },
      { id: 4, callFrame: frame('(idle)', '') },
      { id: 5, callFrame: frame('query', 'file:///app/node_modules/pg/lib/client.js') },
    ],
    startTime: 1_000,
    // Sample times (µs) 1,100 (before the window), then 2,100 … 5,100 inside it, then 9,100 after it.
    samples: [5, 2, 3, 3, 4, 5],
    timeDeltas: [100, 1000, 1000, 1000, 1000, 4000],
  };
  const shares = cpuByCategory(profile, 6, { from: 1_500, to: 6_000 });
  expect(shares).toEqual([
    { category: 'this plugin: Cloud Code and REST route', seconds: expect.closeTo(4), percent: expect.closeTo((100 * 2) / 3) },
    { category: 'garbage collection', seconds: expect.closeTo(2), percent: expect.closeTo(100 / 3) },
  ]);
});

test('a marked section of BENCHMARKS.md is replaced or appended, and the rest of the document kept; a whole rewrite keeps it', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sections-')), 'BENCHMARKS.md');
  const marks = { start: '<!-- s -->', end: '<!-- /s -->' };
  const other = { start: '<!-- o -->', end: '<!-- /o -->' };
  fs.writeFileSync(file, '# Benchmarks\n\nfigures\n');
  writeSection(file, marks, '<!-- s -->\none\n<!-- /s -->\n');
  writeSection(file, other, '<!-- o -->\nother\n<!-- /o -->\n');
  expect(fs.readFileSync(file, 'utf8')).toBe('# Benchmarks\n\nfigures\n\n<!-- s -->\none\n<!-- /s -->\n\n<!-- o -->\nother\n<!-- /o -->\n');
  writeSection(file, marks, '<!-- s -->\ntwo\n<!-- /s -->\n');
  expect(fs.readFileSync(file, 'utf8')).toBe('# Benchmarks\n\nfigures\n\n<!-- s -->\ntwo\n<!-- /s -->\n\n<!-- o -->\nother\n<!-- /o -->\n');
  writeDocument(file, '# Benchmarks\n\nnew figures\n', [marks]);
  expect(fs.readFileSync(file, 'utf8')).toBe('# Benchmarks\n\nnew figures\n\n<!-- s -->\ntwo\n<!-- /s -->\n');
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});
