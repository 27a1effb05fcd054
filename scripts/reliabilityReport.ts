/**
 * The reliability table: one row per scenario of test/reliability (faults injected, bad inputs
 * tried, 5xx answers, memories lost and duplicated), printed at the end of a run and written to
 * RELIABILITY.md by `npm run reliability`. Any non-zero 5xx, lost or duplicated count fails the run.
 */
import fs from 'node:fs';
import { describeMachine, machineLine } from './machine';

/** One scenario of test/reliability, as the tests record it. */
export interface ScenarioRecord {
  scenario: string;
  faults: number;
  badInputs: number;
  serverErrors: number;
  lost: number;
  duplicated: number;
}

export interface ReliabilityReport {
  table: string;
  clean: boolean;
}

export function reliabilityReport(resultsFile: string): ReliabilityReport | undefined {
  if (!fs.existsSync(resultsFile)) return undefined;
  const rows = fs
    .readFileSync(resultsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ScenarioRecord);
  if (rows.length === 0) return undefined;
  const header = ['scenario', 'faults injected', 'bad inputs tried', '5xx', 'memories lost', 'memories duplicated'];
  const body = rows.map((r) => [r.scenario, r.faults, r.badInputs, r.serverErrors, r.lost, r.duplicated].map(String));
  const table = [header, header.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
  return { table, clean: rows.every((r) => r.serverErrors === 0 && r.lost === 0 && r.duplicated === 0) };
}

export function reliabilityMarkdown(report: ReliabilityReport, passed: number, failed: number): string {
  const machine = describeMachine();
  return [
    '# Reliability',
    '',
    'Written by `npm run reliability`: the fault, load and attack suite of `test/reliability/` on the real stack',
    '(embedded PostgreSQL, Temporal dev server, Parse Server, worker processes). Each scenario fails its test',
    'if anything is lost, duplicated or answered with a 5xx; the table is what the run measured.',
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${machineLine(machine)}`,
    `- commit: ${machine.commit.slice(0, 12)}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    `- tests: ${passed} passed, ${failed} failed`,
    '',
    report.table,
    '',
  ].join('\n');
}
