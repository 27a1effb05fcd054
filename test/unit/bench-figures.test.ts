/**
 * The benchmark's own arithmetic: rows for the COPY baseline in PostgreSQL's text format, and a CPU
 * profile's samples split by what the code is, within the measured window and scaled to the CPU time
 * the kernel counted; the targets' "what limits" texts, whose figures are this run's; and the sections of
 * BENCHMARKS.md that separate commands write.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyLine } from '../../bench/baselines';
import { cpuByCategory } from '../../bench/profile';
import { type BenchReport, judgeTargets, writeDocument, writeSection } from '../../bench/report';

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

test('the "what limits" texts of the targets print only figures computed from the run they judge', () => {
  const report = JSON.parse(fs.readFileSync(path.join(__dirname, '../../bench/results.json'), 'utf8')) as BenchReport;
  /** Every number in the texts, but references to BENCHMARKS.md's sections and names such as V8. */
  const figures = (cpuSeconds: { server: number; worker: number }, cores: number) =>
    judgeTargets({ ...report.results, concurrent: { ...report.results.concurrent, batches: 10, cpuSeconds } }, cores).flatMap(
      (v) => v.limitedBy.replace(/section \d+/g, '').match(/(?<!\w)\d([\d,.]*\d)?/g) ?? [],
    );
  // Made-up CPU: 1.234 s of Parse Server and 0.5678 s of the worker for 10 batches on 3 cores.
  expect(figures({ server: 1.234, worker: 0.5678 }, 3)).toEqual(['3', '10', '1,234', '568', '123', '56.8', '601', '3', '3']);
  expect(figures({ server: 0.2, worker: 0.1 }, 2)).toEqual(['2', '10', '200', '100', '20', '10', '150', '2', '2']);
});
