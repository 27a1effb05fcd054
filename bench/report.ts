/**
 * The benchmark's results, the targets judged from them, and BENCHMARKS.md. Every figure in the
 * document, the targets' verdicts included, is computed from the measured numbers.
 */
import fs from 'node:fs';
import { type Config, configVariables } from '../config';
import { type Machine, machineLine } from '../scripts/machine';
import { INSERT_ROWS, SAVE_ALL_OBJECTS } from './baselines';
import { MEMORY_BYTES, SAMPLE_INTERVAL_MS, WARM_UP_MEMORIES } from './measure';

export interface ConcurrentResult {
  batches: number;
  memoriesPerBatch: number;
  successRate: number;
  averageMs: number;
  p95Ms: number;
}

export interface SingleResult {
  memories: number;
  ms: number;
  serverPeakMb: number;
  workerPeakMb: number;
  peakSumMb: number;
}

export interface SequenceResult {
  batches: number;
  memoriesPerBatch: number;
  successRate: number;
  /** Batches averaged at each end of the run. */
  windowBatches: number;
  firstWindowMb: number;
  lastWindowMb: number;
  driftPercent: number;
}

export interface ClaimCheckRow {
  memories: number;
  parts: number;
  repeats: number;
  storeMs: number;
  fetchMs: number;
}

export interface ScalingRow {
  memories: number;
  seconds: number;
  perSecond: number;
  serverPeakMb: number;
  workerPeakMb: number;
  largestPayloadBytes: number;
  longestHistoryEvents: number;
  runs: number;
}

export interface BaselineRow {
  memories: number;
  oursPerSecond: number;
  saveAllPerSecond: number;
  floorPerSecond: number;
  /** Our throughput divided by saveAll's. */
  vsSaveAll: number;
  /** Our throughput divided by the PostgreSQL floor's. */
  vsFloor: number;
}

/** One entry per scenario; nothing but numbers, so that a run can be checked to have produced them all. */
export interface BenchResults {
  concurrent: ConcurrentResult;
  single: SingleResult;
  sequence: SequenceResult;
  claimCheck: ClaimCheckRow[];
  scaling: ScalingRow[];
  baselines: BaselineRow[];
}

export interface TargetVerdict {
  target: string;
  comparison: 'at most' | 'at least';
  limit: number;
  measured: number;
  unit: string;
  met: boolean;
  /** How far the measurement is from the limit, in `unit` (on the good side when met). */
  margin: number;
}

export interface BenchReport {
  mode: 'full' | 'smoke';
  date: string;
  machine: Machine;
  /** Settings of the measured stack that bear on the figures. */
  settings: Record<string, number | string>;
  results: BenchResults;
  targets: TargetVerdict[];
}

/** The Node.js flags a process was started with (from /proc), e.g. Parse Server's heap settings. */
export function nodeFlagsOf(pid: number): string {
  const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  return argv
    .slice(1)
    .filter((arg) => arg.startsWith('--'))
    .join(' ');
}

/** The settings the defaults section speaks of, as this run's stack had them. */
export const TUNED_SETTINGS = ['BATCH_CHUNK_SIZE', 'BATCH_PART_MAX_ITEMS', 'BATCH_PART_CONCURRENCY', 'BATCH_PARTS_PER_RUN', 'WORKER_MAX_CONCURRENT_ACTIVITIES'] as const;

export function stackSettings(config: Config, serverFlags: string): Record<string, number | string> {
  return { ...Object.fromEntries(TUNED_SETTINGS.map((name) => [name, config[name]])), 'Parse Server node flags': serverFlags };
}

function verdict(target: string, comparison: TargetVerdict['comparison'], limit: number, measured: number, unit: string): TargetVerdict {
  const met = comparison === 'at most' ? measured <= limit : measured >= limit;
  return { target, comparison, limit, measured, unit, met, margin: Math.abs(limit - measured) };
}

/** The targets of issue 7, judged on the measured figures of this run (at the sizes it ran). */
export function judgeTargets(results: BenchResults): TargetVerdict[] {
  const { concurrent, single, sequence } = results;
  const claimCheck = results.claimCheck.find((row) => row.memories === 100);
  if (!claimCheck) throw new Error('the claim-check scenario has no row for 100 memories');
  const largest = results.scaling.reduce((a, b) => (b.memories > a.memories ? b : a));
  const twoLargest = [...results.baselines].sort((a, b) => b.memories - a.memories).slice(0, 2).reverse();
  return [
    verdict(`${concurrent.batches} concurrent batches of ${concurrent.memoriesPerBatch}: p95 latency`, 'at most', 2000, concurrent.p95Ms, 'ms'),
    verdict(`one batch of ${single.memories}: time to full results`, 'at most', 3000, single.ms, 'ms'),
    verdict(`one batch of ${single.memories}: peak RSS of Parse Server and worker together`, 'at most', 500, single.peakSumMb, 'MB'),
    verdict('claim-check, 100 memories: store (until 202)', 'at most', 50, claimCheck.storeMs, 'ms'),
    verdict('claim-check, 100 memories: fetch back', 'at most', 50, claimCheck.fetchMs, 'ms'),
    verdict(`${largest.memories} memories end to end`, 'at most', 60, largest.seconds, 's'),
    verdict(`${largest.memories} memories: worker peak RSS`, 'at most', 300, largest.workerPeakMb, 'MB'),
    ...twoLargest.map((row) => verdict(`${row.memories} memories: throughput relative to saveAll`, 'at least', 1, row.vsSaveAll, '×')),
    verdict(`${sequence.batches} batches back to back: RSS drift, last ${sequence.windowBatches} against first ${sequence.windowBatches}`, 'at most', 10, sequence.driftPercent, '%'),
  ];
}

/** Paths of figures that are not finite numbers (a scenario that measured nothing, or divided by zero). */
export function unmeasuredFigures(value: unknown, path = 'results'): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [path];
  if (Array.isArray(value)) return value.length === 0 ? [`${path} (no rows)`] : value.flatMap((item, i) => unmeasuredFigures(item, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => unmeasuredFigures(item, `${path}.${key}`));
  return [`${path} (${typeof value})`];
}

/** A figure for a table: whole numbers from 100 up (thousands separated), three significant digits below. */
export function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toLocaleString('en-US', { maximumFractionDigits: 0 }) : value.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

export function verdictText(v: TargetVerdict): string {
  return `${v.met ? 'met' : 'missed'} by ${formatNumber(v.margin)} ${v.unit}`;
}

function table(header: string[], rows: (string | number)[][]): string {
  const cell = (value: string | number) => (typeof value === 'number' ? formatNumber(value) : value);
  return [header, header.map(() => '---'), ...rows.map((row) => row.map(cell))].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function defaultOf(name: (typeof TUNED_SETTINGS)[number]): number {
  return configVariables[name].schema.parse(undefined);
}

/** The defaults, what each is for, and where the tables bear on it; a run with other values says so. */
function defaultsSection(settings: BenchReport['settings']): string[] {
  const setting = (name: (typeof TUNED_SETTINGS)[number]) => {
    const used = settings[name];
    return `\`${name}\` = ${defaultOf(name)}${used === defaultOf(name) ? '' : ` (this run: ${used})`}`;
  };
  return [
    '## Defaults and why',
    '',
    `- ${setting('BATCH_CHUNK_SIZE')}: memories written and recorded together, the unit of durable progress (PRD), so a retried chunk repeats at most this many writes. Its cost shows in the throughput of the scaling table.`,
    `- ${setting('BATCH_PART_MAX_ITEMS')}: memories in one stored part file, which one activity processes; a retried part re-reads at most this many, and history grows by a few events per part (longest history in the scaling table).`,
    `- ${setting('BATCH_PART_CONCURRENCY')}: parts of one batch in flight at once, enough to keep Parse Server (the bound on throughput) busy; the worker's RSS that it costs is in the scaling table.`,
    `- ${setting('BATCH_PARTS_PER_RUN')}: parts per workflow run before it continues as new, which bounds the history (runs and longest history in the scaling table).`,
    '- gzip: every stored part and results file is gzip-compressed JSON Lines, which shrinks text memories several-fold in file storage; what storing and reading back costs is in the claim-check table.',
    `- Parse Server runs with \`${settings['Parse Server node flags']}\`: a small young generation and slow heap growth collect a streamed upload's garbage before the heap grows (RSS in scenarios 2, 3 and 5).`,
    '',
  ];
}

export function benchmarkMarkdown(report: BenchReport): string {
  const { machine, results } = report;
  const { concurrent, single, sequence } = results;
  return [
    '# Benchmarks',
    '',
    `Written by \`npm run ${report.mode === 'smoke' ? 'bench:smoke' : 'bench'}\` (\`bench/run.ts\`), which boots a stack of its own on this machine: embedded`,
    'PostgreSQL, the Temporal dev server, one Parse Server process and one worker process, with the default',
    `settings unless listed below. Memories are about ${formatNumber(MEMORY_BYTES)} bytes of English text with a small metadata object;`,
    `the users sign up through Parse Server and submit through the REST route. A ${WARM_UP_MEMORIES}-memory batch warms the`,
    `stack up first and is not counted. RSS is sampled from \`/proc/<pid>/status\` every ${SAMPLE_INTERVAL_MS} ms; MB = 10⁶ bytes.`,
    ...(report.mode === 'smoke' ? ['', '**Smoke run**: tiny sizes, to show that every scenario runs and measures; not the product\'s figures.'] : []),
    '',
    `- date: ${report.date}`,
    `- machine: ${machineLine(machine)}`,
    `- commit: ${machine.commit}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    `- settings: ${Object.entries(report.settings)
      .map(([name, value]) => `${name} ${value}`)
      .join(', ')}`,
    '',
    '## Targets',
    '',
    table(
      ['target', 'limit', 'measured', 'verdict'],
      report.targets.map((v) => [v.target, `${v.comparison === 'at most' ? '≤' : '≥'} ${formatNumber(v.limit)} ${v.unit}`, `${formatNumber(v.measured)} ${v.unit}`, verdictText(v)]),
    ),
    '',
    '## 1. Concurrent batches (PRD scenario 1)',
    '',
    `${concurrent.batches} users each submit a batch of ${concurrent.memoriesPerBatch} at the same moment, waiting for the answer; latency runs from`,
    'submit until every per-item result is in hand. A batch succeeds when it completed with every memory stored.',
    '',
    table(['batches × memories', 'success', 'average latency', 'p95 latency'], [[`${concurrent.batches} × ${concurrent.memoriesPerBatch}`, `${formatNumber(concurrent.successRate)} %`, `${formatNumber(concurrent.averageMs)} ms`, `${formatNumber(concurrent.p95Ms)} ms`]]),
    '',
    '## 2. One batch (PRD scenario 2)',
    '',
    'One batch, submitted and waited for; the peak RSS of each process during it, and of both together at one sample.',
    '',
    table(
      ['memories', 'time', 'Parse Server peak RSS', 'worker peak RSS', 'together, peak'],
      [[single.memories, `${formatNumber(single.ms)} ms`, `${formatNumber(single.serverPeakMb)} MB`, `${formatNumber(single.workerPeakMb)} MB`, `${formatNumber(single.peakSumMb)} MB`]],
    ),
    '',
    '## 3. Batches back to back (PRD scenario 3, compressed)',
    '',
    `${sequence.batches} batches of ${sequence.memoriesPerBatch}, each submitted when the previous one finished. RSS is the mean of Parse Server and`,
    `worker together over each batch, averaged over the first ${sequence.windowBatches} and the last ${sequence.windowBatches} batches.`,
    '',
    table(
      ['batches × memories', 'success', `RSS, first ${sequence.windowBatches}`, `RSS, last ${sequence.windowBatches}`, 'drift'],
      [[`${sequence.batches} × ${sequence.memoriesPerBatch}`, `${formatNumber(sequence.successRate)} %`, `${formatNumber(sequence.firstWindowMb)} MB`, `${formatNumber(sequence.lastWindowMb)} MB`, `${formatNumber(sequence.driftPercent)} %`]],
    ),
    '',
    '## 4. Claim-check overhead',
    '',
    'Store: a batch submitted without waiting, until its 202 answer (validated, compressed, stored as part files, request saved, workflow',
    'started). Fetch back: every part read through the `getMemoryBatchData` Cloud Function by the owner, after the batch finished.',
    'Medians of the repeats.',
    '',
    table(
      ['memories', 'parts', 'repeats', 'store', 'fetch back'],
      results.claimCheck.map((row) => [row.memories, row.parts, row.repeats, `${formatNumber(row.storeMs)} ms`, `${formatNumber(row.fetchMs)} ms`]),
    ),
    '',
    '## 5. Scaling',
    '',
    'One upload of gzip NDJSON through `BatchMemoryClient.addNdjson`, not waiting, then followed to its end. Throughput runs from the start of',
    "the upload to the batch's completion time; the history figures cover every continue-as-new run of its workflow.",
    '',
    table(
      ['memories', 'end to end', 'throughput', 'worker peak RSS', 'Parse Server peak RSS', 'workflow runs', 'longest history', 'largest payload'],
      results.scaling.map((row) => [
        row.memories,
        `${formatNumber(row.seconds)} s`,
        `${formatNumber(row.perSecond)} memories/s`,
        `${formatNumber(row.workerPeakMb)} MB`,
        `${formatNumber(row.serverPeakMb)} MB`,
        row.runs,
        `${formatNumber(row.longestHistoryEvents)} events`,
        `${formatNumber(row.largestPayloadBytes)} bytes`,
      ]),
    ),
    '',
    '## 6. Baselines',
    '',
    `The same memories, in the same run: \`Parse.Object.saveAll\` of ${SAVE_ALL_OBJECTS} \`Memory\` objects at a time with the master key against the same`,
    `Parse Server (what an application would write without this product), and \`INSERT\`s of ${formatNumber(INSERT_ROWS)} rows each into a fresh PostgreSQL table`,
    '(id, content, metadata jsonb) on the same database (the storage floor). Each produces its memories as it goes, as the upload does.',
    '',
    table(
      ['memories', 'this product', 'saveAll', 'PostgreSQL INSERT', 'relative to saveAll', 'relative to the floor'],
      results.baselines.map((row) => [
        row.memories,
        `${formatNumber(row.oursPerSecond)} /s`,
        `${formatNumber(row.saveAllPerSecond)} /s`,
        `${formatNumber(row.floorPerSecond)} /s`,
        `${formatNumber(row.vsSaveAll)} ×`,
        `${formatNumber(row.vsFloor)} ×`,
      ]),
    ),
    '',
    ...defaultsSection(report.settings),
  ].join('\n');
}
