/** The unit tier's gate on worker/workflows.ts: its file's line coverage in c8's summary, against the threshold. */
import path from 'node:path';
import { COVERAGE_THRESHOLD, type CoverageSummary, workflowCoverageVerdict } from '../../scripts/coverageGate';

const ROOT = '/repo';
const summaryOf = (covered: number, total = 150): CoverageSummary => ({
  total: { lines: { total: 9000, covered: 8000, pct: 88.88 } },
  [path.join(ROOT, 'worker/workflows.ts')]: { lines: { total, covered, pct: Math.round((covered / total) * 10_000) / 100 } },
});

test('passes at or above the threshold with the figure, fails below it or when no workflow ran under coverage', () => {
  expect(workflowCoverageVerdict(summaryOf(146), ROOT)).toEqual({ ok: true, reason: `unit-tier line coverage of worker/workflows.ts is 97.33% (146 of 150 lines); threshold ${COVERAGE_THRESHOLD}%` });
  expect(workflowCoverageVerdict(summaryOf(119), ROOT)).toMatchObject({ ok: false, reason: expect.stringContaining('79.33% (119 of 150 lines), below the 80% threshold') });
  expect(workflowCoverageVerdict(summaryOf(120), ROOT).ok).toBe(true);
  // Coverage of other files only (the bundle never ran): no figure, a failure.
  expect(workflowCoverageVerdict({ total: { lines: { total: 0, covered: 0, pct: 'Unknown' } } }, ROOT)).toMatchObject({ ok: false, reason: expect.stringContaining('ran no workflow') });
  expect(workflowCoverageVerdict(undefined, ROOT).ok).toBe(false);
});
