/**
 * The coverage gate of `npm test` (scripts/coverageGate.ts): no coverage data, no product lines or a
 * figure below the threshold each fail the run, a product file no process loaded counts as 0%, and a
 * failed gate adds to the failed count of the closing line. Checked with made-up c8 summaries, and with
 * c8 itself on an empty coverage directory (what a run that collected nothing leaves).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COVERAGE_THRESHOLD, type CoverageSummary, checkCoverage, closingLine, coverageVerdict, shippedCode } from '../../scripts/coverageGate';
import { PROJECT_ROOT } from '../../scripts/stack';

const summaryOf = (total: number, covered: number, pct: number | string = total ? Math.round((covered / total) * 10_000) / 100 : 'Unknown'): CoverageSummary => ({
  total: { lines: { total, covered, pct } },
});

test('the gate fails when no coverage was collected, when c8 found no lines, and below the threshold; passes at or above it', () => {
  expect(COVERAGE_THRESHOLD).toBe(80);
  expect(coverageVerdict(0, summaryOf(4000, 3600))).toMatchObject({ ok: false, reason: expect.stringContaining('no coverage was collected') });
  expect(coverageVerdict(12, undefined)).toMatchObject({ ok: false, reason: expect.stringContaining('no json-summary') });
  // What c8 writes when it has coverage files but none of the product: 'Unknown' is not below 80, and must still fail.
  expect(coverageVerdict(12, summaryOf(0, 0))).toMatchObject({ ok: false, reason: expect.stringContaining('no product lines') });
  expect(coverageVerdict(12, summaryOf(4000, 0))).toMatchObject({ ok: false, reason: expect.stringContaining('no product line was covered') });
  expect(coverageVerdict(12, summaryOf(4000, 3199))).toEqual({
    ok: false,
    reason: `line coverage of what the package ships is 79.98% (3199 of 4000 lines), below the 80% threshold`,
  });
  expect(coverageVerdict(12, summaryOf(4000, 3200))).toMatchObject({ ok: true, reason: expect.stringContaining('is 80% (3200 of 4000 lines)') });
  expect(coverageVerdict(12, summaryOf(4000, 3900)).ok).toBe(true);
});

test('a failed gate adds to the failed count of the closing line; a run that failed outside any test counts once', () => {
  expect(closingLine({ passed: 412, failed: 0, skipped: 0, runFailed: false }, 0)).toBe('412 passed, 0 failed');
  expect(closingLine({ passed: 412, failed: 0, skipped: 0, runFailed: true }, 1)).toBe('412 passed, 2 failed');
  expect(closingLine({ passed: 412, failed: 0, skipped: 0, runFailed: false }, 1)).toBe('412 passed, 1 failed');
  expect(closingLine({ passed: 410, failed: 2, skipped: 1, runFailed: true }, 2)).toBe('410 passed, 4 failed, 1 skipped');
});

test('a test file that could not run, or did not run at all, is a failure even when tests failed too', () => {
  expect(closingLine({ passed: 400, failed: 3, skipped: 0, runFailed: true, filesNotRun: 1 }, 0)).toBe('400 passed, 4 failed');
  expect(closingLine({ passed: 400, failed: 0, skipped: 0, runFailed: true, filesNotRun: 2 }, 0)).toBe('400 passed, 2 failed');
  expect(closingLine({ passed: 400, failed: 1, skipped: 0, runFailed: false, filesMissing: 3 }, 1)).toBe('400 passed, 5 failed');
});

test("c8 with the gate's arguments counts every source file the package ships (scripts/ and index.ts included), loaded or not: a run that collected nothing fails", () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'coverage-gate-'));
  try {
    const raw = path.join(scratch, 'v8');
    fs.mkdirSync(raw);
    expect(checkCoverage(raw, scratch, PROJECT_ROOT, true)).toMatchObject({ ok: false, reason: expect.stringContaining('no coverage was collected') });
    const summary = JSON.parse(fs.readFileSync(path.join(scratch, 'coverage-summary.json'), 'utf8')) as CoverageSummary;
    // The TypeScript source of everything shipped, but the workflow code (it runs in Temporal's sandbox).
    const sources = shippedCode(PROJECT_ROOT)
      .flatMap((glob) => {
        const source = glob.replace(/^dist\//, '');
        if (!source.endsWith('/**/*.js')) return [path.join(PROJECT_ROOT, source.replace(/\.js$/, '.ts'))];
        const dir = source.slice(0, -'/**/*.js'.length);
        return fs
          .readdirSync(path.join(PROJECT_ROOT, dir), { recursive: true, encoding: 'utf8' })
          .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
          .map((file) => path.join(PROJECT_ROOT, dir, file));
      })
      .filter((file) => file !== path.join(PROJECT_ROOT, 'worker/workflows.ts'));
    // The stack, its supervisor and proxy, and the package's entry are among them.
    expect(sources).toEqual(expect.arrayContaining(['index.ts', 'scripts/stack.ts', 'scripts/supervision.ts', 'scripts/proxy.ts'].map((file) => path.join(PROJECT_ROOT, file))));
    expect(sources.length).toBeGreaterThan(20);
    expect(
      Object.keys(summary)
        .filter((key) => key !== 'total')
        .sort(),
    ).toEqual(sources.sort());
    expect(summary.total.lines.covered).toBe(0);
    expect(summary.total.lines.total).toBeGreaterThan(1000);
    // Even with a coverage file that holds nothing of the product, 0% fails.
    expect(coverageVerdict(1, summary).ok).toBe(false);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});
