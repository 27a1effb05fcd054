/**
 * The coverage gate of `npm test`: which files count, how c8 is asked, and what its summary means.
 * Kept apart from the runner so that the decision can be tested with made-up summaries.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const COVERAGE_THRESHOLD = 80;

/**
 * What the gate counts: every JavaScript file the package ships (package.json `files`: the entry, the product's
 * folders and the stack, supervisor and proxy from scripts/), as c8 include globs under dist/.
 */
export function shippedCode(projectRoot: string): string[] {
  const { files } = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { files: string[] };
  return files
    .filter((entry) => !entry.startsWith('!') && !entry.endsWith('.d.ts'))
    .map((entry) => (entry.endsWith('.js') ? entry : entry.endsWith('.*') ? `${entry.slice(0, -2)}.js` : `${entry}/**/*.js`));
}

/**
 * c8 arguments that report the V8 coverage in `rawDir` into `reportDir` (text summary, and the JSON
 * summary the gate reads). `--all` counts a product file no process loaded as 0%, instead of leaving
 * it out. Included as compiled (dist/), reported against the TypeScript sources through source maps.
 * Workflow code runs inside Temporal's sandbox bundle, which the worker processes load from a path V8 coverage
 * cannot map back: it is left out here, and measured in the unit tier instead (unitWorkflowCoverage).
 */
export function c8ReportArgs(rawDir: string, reportDir: string, projectRoot: string): string[] {
  return [
    'report',
    '--all',
    '--temp-directory',
    rawDir,
    '--report-dir',
    reportDir,
    '--reporter=text-summary',
    '--reporter=json-summary',
    ...shippedCode(projectRoot).map((glob) => `--include=${glob}`),
    '--exclude=dist/worker/workflow-bundle.js',
    '--exclude=dist/worker/workflows.js',
  ];
}

/** The file name (then the jest worker's pid, `.js`) under which the unit tier writes the workflow bundle it runs. */
export const WORKFLOW_BUNDLE_PREFIX = 'workflow-bundle-';
export const WORKFLOWS_SOURCE = 'worker/workflows.ts';

/**
 * c8 arguments that report the unit tier's coverage of the workflow code: the bundles its tests ran (written
 * beside the V8 coverage in `rawDir`), mapped back to the sources through their inline source maps.
 */
export function c8UnitWorkflowArgs(rawDir: string, reportDir: string): string[] {
  return ['report', '--temp-directory', rawDir, '--report-dir', reportDir, '--reporter=json-summary', '--allowExternal', `--include=${path.join(path.dirname(rawDir), WORKFLOW_BUNDLE_PREFIX)}*.js`];
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
  const scope = 'line coverage of what the package ships';
  if (rawFiles === 0) return { ok: false, reason: `no coverage was collected: the processes wrote no V8 coverage files (NODE_V8_COVERAGE)` };
  const lines = summary?.total?.lines;
  if (!lines) return { ok: false, reason: 'no coverage summary: c8 report wrote no json-summary' };
  if (lines.total === 0 || typeof lines.pct !== 'number') return { ok: false, reason: `no coverage: c8 found no product lines (${scope} is ${lines.pct})` };
  if (lines.covered === 0) return { ok: false, reason: 'no product line was covered: the coverage files hold nothing the package ships' };
  const figure = `${scope} is ${lines.pct}% (${lines.covered} of ${lines.total} lines)`;
  if (lines.pct < threshold) return { ok: false, reason: `${figure}, below the ${threshold}% threshold` };
  return { ok: true, reason: `${figure}; threshold ${threshold}%` };
}

/** Runs c8 over the V8 coverage files in `rawDir` (reports into `reportDir`; its text summary to the output unless `quiet`) and decides. */
export function checkCoverage(rawDir: string, reportDir: string, projectRoot: string, quiet = false): CoverageVerdict {
  spawnSync(process.execPath, [require.resolve('c8/bin/c8'), ...c8ReportArgs(rawDir, reportDir, projectRoot)], { cwd: projectRoot, stdio: quiet ? 'ignore' : 'inherit' });
  const summaryFile = path.join(reportDir, 'coverage-summary.json');
  const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as CoverageSummary) : undefined;
  const rawFiles = fs.existsSync(rawDir) ? fs.readdirSync(rawDir).filter((name) => name.endsWith('.json')).length : 0;
  return coverageVerdict(rawFiles, summary);
}

/**
 * Passes when the unit tier's line coverage of worker/workflows.ts (the file's entry in `summary`, keyed by
 * absolute path) reaches the threshold.
 */
export function workflowCoverageVerdict(summary: CoverageSummary | undefined, projectRoot: string, threshold = COVERAGE_THRESHOLD): CoverageVerdict {
  const lines = summary?.[path.join(projectRoot, WORKFLOWS_SOURCE)]?.lines;
  if (!lines || typeof lines.pct !== 'number') return { ok: false, reason: `no coverage of ${WORKFLOWS_SOURCE}: the unit tier ran no workflow under V8 coverage` };
  const figure = `unit-tier line coverage of ${WORKFLOWS_SOURCE} is ${lines.pct}% (${lines.covered} of ${lines.total} lines)`;
  if (lines.pct < threshold) return { ok: false, reason: `${figure}, below the ${threshold}% threshold` };
  return { ok: true, reason: `${figure}; threshold ${threshold}%` };
}

/** Reports the unit tier's workflow coverage from the V8 coverage in `rawDir` into `reportDir`, and decides. */
export function checkUnitWorkflowCoverage(rawDir: string, reportDir: string, projectRoot: string): CoverageVerdict {
  spawnSync(process.execPath, [require.resolve('c8/bin/c8'), ...c8UnitWorkflowArgs(rawDir, reportDir)], { cwd: projectRoot, stdio: 'ignore' });
  const summaryFile = path.join(reportDir, 'coverage-summary.json');
  const summary = fs.existsSync(summaryFile) ? (JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as CoverageSummary) : undefined;
  return workflowCoverageVerdict(summary, projectRoot);
}

/**
 * The closing line `N passed, N failed`. Failures: failed tests, each test file that could not run (its tests
 * never counted), each expected test file that did not run at all, each failed gate (coverage, the reliability
 * table), and a run that failed outside all of these (setup, teardown).
 */
export function closingLine(results: { passed: number; failed: number; skipped: number; runFailed: boolean; filesNotRun?: number; filesMissing?: number }, failedGates: number): string {
  const failedFiles = (results.filesNotRun ?? 0) + (results.filesMissing ?? 0);
  const counted = results.failed + failedFiles;
  const failed = counted + (results.runFailed && counted === 0 ? 1 : 0) + failedGates;
  return `${results.passed} passed, ${failed} failed${results.skipped ? `, ${results.skipped} skipped` : ''}`;
}
