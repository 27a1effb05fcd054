/**
 * The coverage gate of `npm test`: which files count, how c8 is asked, and what its summary means.
 * Kept apart from the runner so that the decision can be tested with made-up summaries.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const COVERAGE_THRESHOLD = 80;
export const COVERED = ['cloud', 'schema', 'storage', 'worker', 'config', 'client', 'mcp'];

/**
 * c8 arguments that report the V8 coverage in `rawDir` into `reportDir` (text summary, and the JSON
 * summary the gate reads). `--all` counts a product file no process loaded as 0%, instead of leaving
 * it out. Included as compiled (dist/), reported against the TypeScript sources through source maps.
 * Workflow code runs inside Temporal's sandbox bundle, which V8 coverage cannot map back: it is left out.
 */
export function c8ReportArgs(rawDir: string, reportDir: string): string[] {
  return [
    'report',
    '--all',
    '--temp-directory',
    rawDir,
    '--report-dir',
    reportDir,
    '--reporter=text-summary',
    '--reporter=json-summary',
    ...COVERED.map((dir) => `--include=dist/${dir}/**/*.js`),
    '--exclude=dist/worker/workflow-bundle.js',
    '--exclude=dist/worker/workflows.js',
  ];
}

/** c8's json-summary: `total` and one entry per file; `pct` is the string 'Unknown' when there are no lines. */
export type CoverageSummary = Record<string, { lines: { total: number; covered: number; pct: number | string } }>;

export interface CoverageVerdict {
  ok: boolean;
  /** One line: the figure, or why there is none. */
  reason: string;
}

/**
 * Passes only when coverage was collected and the product's line coverage reaches the threshold.
 * `rawFiles` is how many V8 coverage files the processes wrote; `summary` is undefined when c8 wrote none.
 */
export function coverageVerdict(rawFiles: number, summary: CoverageSummary | undefined, threshold = COVERAGE_THRESHOLD): CoverageVerdict {
  const scope = `line coverage of ${COVERED.map((dir) => `${dir}/`).join(', ')}`;
  if (rawFiles === 0) return { ok: false, reason: `no coverage was collected: the processes wrote no V8 coverage files (NODE_V8_COVERAGE)` };
  const lines = summary?.total?.lines;
  if (!lines) return { ok: false, reason: 'no coverage summary: c8 report wrote no json-summary' };
  if (lines.total === 0 || typeof lines.pct !== 'number') return { ok: false, reason: `no coverage: c8 found no product lines (${scope} is ${lines.pct})` };
  if (lines.covered === 0) return { ok: false, reason: `no product line was covered: the coverage files hold nothing of ${COVERED.join(', ')}` };
  const figure = `${scope} is ${lines.pct}% (${lines.covered} of ${lines.total} lines)`;
  if (lines.pct < threshold) return { ok: false, reason: `${figure}, below the ${threshold}% threshold` };
  return { ok: true, reason: `${figure}; threshold ${threshold}%` };
}

/** Runs c8 over the V8 coverage files in `rawDir` (reports into `reportDir`; its text summary to the output unless `quiet`) and decides. */
export function checkCoverage(rawDir: string, reportDir: string, projectRoot: string, quiet = false): CoverageVerdict {
  spawnSync(process.execPath, [require.resolve('c8/bin/c8'), ...c8ReportArgs(rawDir, reportDir)], { cwd: projectRoot, stdio: quiet ? 'ignore' : 'inherit' });
  const summaryFile = path.join(reportDir, 'coverage-summary.json');
  const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as CoverageSummary) : undefined;
  const rawFiles = fs.existsSync(rawDir) ? fs.readdirSync(rawDir).filter((name) => name.endsWith('.json')).length : 0;
  return coverageVerdict(rawFiles, summary);
}

/**
 * The closing line `N passed, N failed`: each failed gate (coverage, the reliability table) counts as
 * one failure, as does a run that failed outside any test (setup, teardown).
 */
export function closingLine(results: { passed: number; failed: number; skipped: number; runFailed: boolean }, failedGates: number): string {
  const failed = results.failed + (results.runFailed && results.failed === 0 ? 1 : 0) + failedGates;
  return `${results.passed} passed, ${failed} failed${results.skipped ? `, ${results.skipped} skipped` : ''}`;
}
