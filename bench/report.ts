/**
 * The benchmark's results, the targets judged from them, and BENCHMARKS.md. Every figure in the
 * document, the targets' verdicts included, is computed from the measured numbers.
 */
import fs from 'node:fs';
import { type Config, configVariables } from '../config';
import { type Machine, machineLine } from '../scripts/machine';
import { COPY_ROWS_PER_WRITE, INSERT_ROWS, SAVE_ALL_OBJECTS } from './baselines';
import { MEMORY_BYTES, type MeasuredProcess, SAMPLE_INTERVAL_MS, WARM_UP_BATCHES, WARM_UP_MEMORIES } from './measure';
import type { CpuShare, StatementTime } from './profile';
import type { StreamProcessing } from '../schema/memory';

export interface ConcurrentResult {
  batches: number;
  memoriesPerBatch: number;
  successRate: number;
  averageMs: number;
  p95Ms: number;
  /** CPU seconds each process spent while the batches ran, from /proc. */
  cpuSeconds: Record<MeasuredProcess, number>;
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
  /** When the batch was processed: while its body was uploaded, or after (all or nothing, the server's default). */
  process: StreamProcessing;
  seconds: number;
  perSecond: number;
  /** From the start of the upload until the server answered that the batch is stored (with while_uploading, processing runs during it). */
  uploadSeconds: number;
  /** From that answer until the batch completed. */
  processingSeconds: number;
  serverPeakMb: number;
  workerPeakMb: number;
  /** Parse Server's peak while the upload was received and stored. */
  serverUploadPeakMb: number;
  largestPayloadBytes: number;
  longestHistoryEvents: number;
  runs: number;
}

export interface BaselineRow {
  memories: number;
  oursPerSecond: number;
  saveAllPerSecond: number;
  floorPerSecond: number;
  copyPerSecond: number;
  /** Our throughput divided by saveAll's. */
  vsSaveAll: number;
  /** Our throughput divided by the PostgreSQL floor's. */
  vsFloor: number;
  /** Our throughput divided by COPY's. */
  vsCopy: number;
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
  /** What bounds this figure on this stack, from profiling it: printed when the target is missed. */
  limitedBy: string;
}

/** Where the CPU and the database's time went during one profiled upload. */
export interface ProfileReport {
  memories: number;
  seconds: number;
  perSecond: number;
  cpu: { server: CpuShare[]; worker: CpuShare[] };
  cpuSeconds: { server: number; worker: number };
  database: { totalMs: number; statements: StatementTime[] };
}

export interface BenchReport {
  mode: 'full' | 'smoke';
  date: string;
  machine: Machine;
  /** Settings of the measured stack that bear on the figures. */
  settings: Record<string, number | string>;
  /** The machine's load average (1, 5 and 15 minutes) when the measurements began and when they ended. */
  load?: { start: number[]; end: number[] };
  results: BenchResults;
  profile: ProfileReport;
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
export const TUNED_SETTINGS = [
  'BATCH_CHUNK_SIZE',
  'BATCH_WRITE_MAX_ITEMS',
  'BATCH_PART_MAX_ITEMS',
  'BATCH_GZIP_LEVEL',
  'BATCH_PART_CONCURRENCY',
  'BATCH_PARTS_PER_RUN',
  'BATCH_LOCAL_PART_MAX_ITEMS',
  'WORKER_MAX_CONCURRENT_ACTIVITIES',
] as const;

export function stackSettings(config: Config, nodeFlags: string): Record<string, number | string> {
  return { ...Object.fromEntries(TUNED_SETTINGS.map((name) => [name, config[name]])), 'node flags': nodeFlags };
}

function verdict(target: string, comparison: TargetVerdict['comparison'], limit: number, measured: number, unit: string, limitedBy: string): TargetVerdict {
  const met = comparison === 'at most' ? measured <= limit : measured >= limit;
  return { target, comparison, limit, measured, unit, met, margin: Math.abs(limit - measured), limitedBy };
}

const SERVER_CPU =
  "Parse Server's CPU: it validates, compresses and stores the upload, then writes every memory through one process (profiled: no single hot spot; request handling, Parse's own query and write paths and garbage collection share it)";
/** What bounds the latency of small concurrent batches, with the CPU this run measured for them. */
function smallBatchCpu({ batches, cpuSeconds }: ConcurrentResult, cores: number): string {
  const { server, worker } = cpuSeconds;
  return (
    `the CPU of ${cores} cores: the ${batches} batches cost ${formatNumber(server * 1000)} ms of Parse Server CPU and ${formatNumber(worker * 1000)} ms of worker CPU in this run ` +
    `(${formatNumber((server * 1000) / batches)} and ${formatNumber((worker * 1000) / batches)} ms a batch: the submit, the request's saves with their triggers and LiveQuery events, part and results files, the bulk writes), ` +
    `${formatNumber(((server + worker) * 1000) / cores)} ms of all ${cores} cores before any waiting, with the Temporal dev server and PostgreSQL on the same cores`
  );
}

function floorGap(cores: number): string {
  return `the work the product does per memory beyond writing its row, on ${cores} cores shared by every process: validating, compressing and storing the upload, then reading it back, the worker's request and Parse Server's conversion of each row, and one chunk row per ten memories (the time split is in section 7)`;
}

/** The size of `npm run bench -- --million`'s batch. */
export const MILLION_MEMORIES = 1_000_000;

/** The performance targets, judged on the measured figures of this run (at the sizes it ran). */
export function judgeTargets(results: BenchResults, cores: number): TargetVerdict[] {
  const { concurrent, single, sequence } = results;
  const claimCheck = results.claimCheck.find((row) => row.memories === 100);
  if (!claimCheck) throw new Error('the claim-check scenario has no row for 100 memories');
  // The million-memory row (`--million`) has targets of its own; these are the ones of the regular sizes.
  const largest = results.scaling.filter((row) => row.memories < MILLION_MEMORIES).reduce((a, b) => (b.memories > a.memories ? b : a));
  const twoLargest = [...results.baselines]
    .sort((a, b) => b.memories - a.memories)
    .slice(0, 2)
    .reverse();
  const largestBaseline = twoLargest[twoLargest.length - 1];
  return [
    verdict(`${concurrent.batches} concurrent batches of ${concurrent.memoriesPerBatch}: p95 latency`, 'at most', 1000, concurrent.p95Ms, 'ms', smallBatchCpu(concurrent, cores)),
    verdict(`one batch of ${single.memories}: time to full results`, 'at most', 3000, single.ms, 'ms', SERVER_CPU),
    verdict(
      `one batch of ${single.memories}: peak RSS of Parse Server and worker together`,
      'at most',
      500,
      single.peakSumMb,
      'MB',
      "the two processes' resting size: Node.js and Parse Server's modules; Temporal's native core and the workflow sandbox's own V8 isolate in the worker",
    ),
    verdict(
      'claim-check, 100 memories: store (until 202)',
      'at most',
      50,
      claimCheck.storeMs,
      'ms',
      'the steps of a store, one after another: validation, compression, the part file upload and its index row, and the request save with its triggers (the workflow start runs after the answer)',
    ),
    verdict('claim-check, 100 memories: fetch back', 'at most', 50, claimCheck.fetchMs, 'ms', 'one Cloud Function call per part, each reading and decompressing its file'),
    verdict(`${largest.memories} memories end to end`, 'at most', 60, largest.seconds, 's', SERVER_CPU),
    verdict(
      `${largest.memories} memories: worker peak RSS`,
      'at most',
      300,
      largest.workerPeakMb,
      'MB',
      'the worker holds each running part (up to BATCH_PART_MAX_ITEMS memories) parsed, for BATCH_PART_CONCURRENCY parts',
    ),
    ...twoLargest.map((row) => verdict(`${row.memories} memories: throughput relative to saveAll`, 'at least', 1, row.vsSaveAll, '×', SERVER_CPU)),
    verdict(`${largestBaseline.memories} memories: throughput relative to the multi-row INSERT floor`, 'at least', 0.5, largestBaseline.vsFloor, '×', floorGap(cores)),
    ...millionTargets(results.scaling),
    verdict(
      `${sequence.batches} batches back to back: RSS drift, last ${sequence.windowBatches} against first ${sequence.windowBatches}`,
      'at most',
      10,
      sequence.driftPercent,
      '%',
      "the growth of the two processes' V8 heaps and native memory over the run, which this benchmark does not break down further",
    ),
  ];
}

/** The targets of a batch of a million memories (`npm run bench -- --million`), against the largest size below it. */
function millionTargets(scaling: ScalingRow[]): TargetVerdict[] {
  const million = scaling.find((row) => row.memories >= MILLION_MEMORIES);
  if (!million) return [];
  const below = scaling.filter((row) => row.memories < million.memories).reduce((a, b) => (b.memories > a.memories ? b : a));
  const name = `${formatNumber(million.memories)} memories in one batch`;
  return [
    verdict(`${name}: throughput relative to ${formatNumber(below.memories)}`, 'at least', 1, million.perSecond / below.perSecond, '×', 'the same bounds as at smaller sizes, plus the longer upload'),
    verdict(`${name}: Parse Server peak RSS`, 'at most', 300, million.serverPeakMb, 'MB', 'the upload held while it is stored, and the results file of the batch as the files route buffers it'),
    verdict(`${name}: worker peak RSS`, 'at most', 300, million.workerPeakMb, 'MB', 'the parts in flight, parsed'),
    verdict(`${name}: largest Temporal payload`, 'at most', 65_535, million.largestPayloadBytes, 'bytes', 'the manifest and part inputs, which carry ids and counts only'),
    verdict(`${name}: events of the longest workflow run`, 'at most', 4095, million.longestHistoryEvents, 'events', 'BATCH_PARTS_PER_RUN parts per run before it continues as new'),
  ];
}

/** Paths of figures that are not finite numbers (a scenario that measured nothing, or divided by zero). */
/** Fields that say which run a row is (text), not what it measured. */
const ROW_LABELS = new Set<string>(['process'] satisfies (keyof ScalingRow)[]);

export function unmeasuredFigures(value: unknown, path = 'results'): string[] {
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [path];
  if (Array.isArray(value)) return value.length === 0 ? [`${path} (no rows)`] : value.flatMap((item, i) => unmeasuredFigures(item, `${path}[${i}]`));
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([key, item]) => (ROW_LABELS.has(key) && typeof item === 'string' ? [] : unmeasuredFigures(item, `${path}.${key}`)));
  return [`${path} (${typeof value})`];
}

/** A figure for a table: whole numbers from 100 up (thousands separated), three significant digits below. */
export function formatNumber(value: number): string {
  return Math.abs(value) >= 100 ? value.toLocaleString('en-US', { maximumFractionDigits: 0 }) : value.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

export function verdictText(v: TargetVerdict): string {
  return `${v.met ? 'met' : 'missed'} by ${formatNumber(v.margin)} ${v.unit}`;
}

/** A section of BENCHMARKS.md that one command writes between two marks, and the other commands keep as it is. */
export interface MarkedSection {
  start: string;
  end: string;
}

/** The section as the document holds it, marks included; undefined when the document has none. */
function sectionOf(markdown: string, marks: MarkedSection): string | undefined {
  const start = markdown.indexOf(marks.start);
  const end = markdown.indexOf(marks.end);
  return start !== -1 && end > start ? `${markdown.slice(start, end + marks.end.length)}\n` : undefined;
}

/** Replaces the section of the document, or appends it when the document has none yet; the rest stays as it is. */
export function writeSection(markdownFile: string, marks: MarkedSection, section: string): void {
  const current = fs.existsSync(markdownFile) ? fs.readFileSync(markdownFile, 'utf8') : '';
  const start = current.indexOf(marks.start);
  const end = current.indexOf(marks.end);
  const next =
    start !== -1 && end > start ? `${current.slice(0, start)}${section}${current.slice(end + marks.end.length).replace(/^\n/, '')}` : `${current ? current.replace(/\n*$/, '\n\n') : ''}${section}`;
  fs.writeFileSync(markdownFile, next);
}

/** Writes the whole document, with the sections `kept` (which other commands write) carried over as they were. */
export function writeDocument(markdownFile: string, markdown: string, kept: MarkedSection[]): void {
  const current = fs.existsSync(markdownFile) ? fs.readFileSync(markdownFile, 'utf8') : '';
  const sections = kept.map((marks) => ({ marks, section: sectionOf(current, marks) }));
  fs.writeFileSync(markdownFile, markdown);
  for (const { marks, section } of sections) if (section) writeSection(markdownFile, marks, section);
}

export function table(header: string[], rows: (string | number)[][]): string {
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
    `- ${setting('BATCH_CHUNK_SIZE')} (docs/requirements.md): memories recorded together in one \`BatchMemoryChunk\` row with their results.`,
    `- ${setting('BATCH_WRITE_MAX_ITEMS')}: memories (whole chunks) the worker writes in one request, and the unit of durable progress: a retried part repeats at most one write. A request to Parse Server costs far more than one more memory in it: on 10,000 memories, writing one chunk per request gave 540 memories/s; 5 chunks, 877/s; 10 chunks with the part size below, 1,900/s.`,
    `- ${setting('BATCH_PART_MAX_ITEMS')}: memories in one stored part file, which one activity processes. Each part costs a few reads and writes of the request and an activity round trip through Temporal: on 10,000 memories, parts of 100 gave 877/s, of 500 1,421/s, of 1,000 1,902/s. A part is read whole, so this bounds the worker's memory per part (with \`BATCH_PART_MAX_BYTES\`).`,
    `- ${setting('BATCH_GZIP_LEVEL')}: on English prose (the Debian license texts, parts of 1,000 paragraphs) level 1 stores 3.75× smaller at 23 ms per MB, level 3 4.06× at 25 ms per MB, level 6 (zlib's default) 4.75× at 39 ms per MB. At level 6, compressing 100 memories took 7–11 ms of a 70–100 ms store.`,
    `- ${setting('BATCH_PART_CONCURRENCY')}: parts of one batch in flight at once, enough to keep Parse Server (the bound on throughput) busy; raising it to 8 did not raise throughput.`,
    `- ${setting('BATCH_PARTS_PER_RUN')}: parts per workflow run before it continues as new, which bounds the history (runs and longest history in the scaling table).`,
    `- ${setting('BATCH_LOCAL_PART_MAX_ITEMS')}: a batch of one part this small runs that part, like \`beginBatch\` and \`finalizeBatch\`, as a local activity: the whole batch is one workflow task and no activity task. On 10 concurrent batches of 100, p95 went from 1.9–2.1 s to 1.6–1.9 s and the dev server's CPU for the ten from 0.7–0.8 s to 0.3–0.4 s. A worker that dies in such a part is noticed by the workflow task timeout (10 s) instead of the heartbeat timeout.`,
    '- `beginBatch` and `finalizeBatch` run as local activities, and the Temporal dev server keeps its SQLite file in WAL mode: a batch of 100 whose part runs as an activity costs the dev server about 60–75 ms of CPU (175 ms with three activity tasks and the default journal, 100 ms with local activities alone).',
    '- A batch submitted without waiting is answered (202) once it is stored, while its workflow starts: the start took about 8 ms of a 35–45 ms store of 100 memories, and a start Temporal refuses leaves the batch pending for the reconciler, as before.',
    "- The worker's Parse SDK requests go over kept-alive `node:http` connections instead of `fetch()`: 10 batches of 100 at once cost the worker 0.6–0.8 s of CPU instead of 1.0–1.1 s.",
    "- Cloud Code reaches Parse Server's files controller, session cache and database in its own process instead of through HTTP to itself: a batch of 100 costs Parse Server about 130 ms of CPU instead of 200 ms, and a store of 100 memories takes about 37 ms instead of 50–64 ms.",
    `- Parse Server and the worker run with \`${settings['node flags']}\`: on 20,000 memories as gzip NDJSON, Parse Server grew by 28 MB at 2,750 memories/s; with V8's defaults by 76 MB at 2,600/s; with a 2 MB young generation growing by 10 %, by 14 MB at 2,000/s, a quarter of its CPU spent collecting garbage.`,
    '',
  ];
}

/** For each missed target: by how much, and what bounds it. */
function missedTargets(targets: TargetVerdict[]): string[] {
  const missed = targets.filter((v) => !v.met);
  if (missed.length === 0) return [];
  return ['What limits the missed targets:', '', ...missed.map((v) => `- ${v.target} (${verdictText(v)}): ${v.limitedBy}.`), ''];
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
    `the users sign up through Parse Server and submit through the REST route. ${WARM_UP_BATCHES} batches of ${WARM_UP_MEMORIES} one after another, then ${WARM_UP_BATCHES} at once,`,
    `warm the stack up first (connection pools, caches, V8's compiled code) and are not counted. RSS is sampled from \`/proc/<pid>/status\` every ${SAMPLE_INTERVAL_MS} ms; MB = 10⁶ bytes.`,
    ...(report.mode === 'smoke' ? ['', "**Smoke run**: tiny sizes, to show that every scenario runs and measures; not the product's figures."] : []),
    '',
    `- date: ${report.date}`,
    `- machine: ${machineLine(machine)}`,
    `- commit: ${machine.commit}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    ...(report.load
      ? [
          `- load average (1, 5, 15 min): ${report.load.start.map((value) => value.toFixed(2)).join(', ')} when the measurements began, ${report.load.end.map((value) => value.toFixed(2)).join(', ')} when they ended`,
        ]
      : []),
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
    ...missedTargets(report.targets),
    '## 1. Concurrent batches (docs/requirements.md §7, scenario 1)',
    '',
    `${concurrent.batches} users each submit a batch of ${concurrent.memoriesPerBatch} at the same moment, waiting for the answer; latency runs from`,
    'submit until every per-item result is in hand. A batch succeeds when it completed with every memory stored.',
    '',
    table(
      ['batches × memories', 'success', 'average latency', 'p95 latency'],
      [[`${concurrent.batches} × ${concurrent.memoriesPerBatch}`, `${formatNumber(concurrent.successRate)} %`, `${formatNumber(concurrent.averageMs)} ms`, `${formatNumber(concurrent.p95Ms)} ms`]],
    ),
    '',
    '## 2. One batch (docs/requirements.md §7, scenario 2)',
    '',
    'One batch, submitted and waited for; the peak RSS of each process during it, and of both together at one sample.',
    '',
    table(
      ['memories', 'time', 'Parse Server peak RSS', 'worker peak RSS', 'together, peak'],
      [[single.memories, `${formatNumber(single.ms)} ms`, `${formatNumber(single.serverPeakMb)} MB`, `${formatNumber(single.workerPeakMb)} MB`, `${formatNumber(single.peakSumMb)} MB`]],
    ),
    '',
    '## 3. Batches back to back (docs/requirements.md §7, scenario 3, compressed)',
    '',
    `${sequence.batches} batches of ${sequence.memoriesPerBatch}, each submitted when the previous one finished. RSS is the mean of Parse Server and`,
    `worker together over each batch, averaged over the first ${sequence.windowBatches} and the last ${sequence.windowBatches} batches.`,
    '',
    table(
      ['batches × memories', 'success', `RSS, first ${sequence.windowBatches}`, `RSS, last ${sequence.windowBatches}`, 'drift'],
      [
        [
          `${sequence.batches} × ${sequence.memoriesPerBatch}`,
          `${formatNumber(sequence.successRate)} %`,
          `${formatNumber(sequence.firstWindowMb)} MB`,
          `${formatNumber(sequence.lastWindowMb)} MB`,
          `${formatNumber(sequence.driftPercent)} %`,
        ],
      ],
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
    "the upload to the batch's completion time, split at the server's answer that the batch is stored; the history figures cover every",
    'continue-as-new run of its workflow (longest history: the most events of one run). Processed `while_uploading` (each part as it is',
    'stored, so that processing overlaps the upload); the last row is the largest size again `after_upload` (all or nothing, the default).',
    '',
    table(
      ['memories', 'process', 'end to end', 'throughput', 'upload and store', 'processing after it', 'worker peak RSS', 'Parse Server peak RSS', 'workflow runs', 'longest history', 'largest payload'],
      results.scaling.map((row) => [
        row.memories,
        row.process,
        `${formatNumber(row.seconds)} s`,
        `${formatNumber(row.perSecond)} memories/s`,
        `${formatNumber(row.uploadSeconds)} s`,
        `${formatNumber(row.processingSeconds)} s`,
        `${formatNumber(row.workerPeakMb)} MB`,
        `${formatNumber(row.serverPeakMb)} MB (${formatNumber(row.serverUploadPeakMb)} MB uploading)`,
        row.runs,
        `${formatNumber(row.longestHistoryEvents)} events`,
        `${formatNumber(row.largestPayloadBytes)} bytes`,
      ]),
    ),
    '',
    '## 6. Baselines',
    '',
    `The same memories, in the same run: \`Parse.Object.saveAll\` of ${SAVE_ALL_OBJECTS} \`Memory\` objects at a time with the master key against the same`,
    `Parse Server (what an application would write without this product), \`INSERT\`s of ${formatNumber(INSERT_ROWS)} rows each into a fresh PostgreSQL table`,
    '(id, content, metadata jsonb) on the same database (the floor of a client writing rows), and one `COPY … FROM STDIN` of the same rows into',
    `such a table (the physical floor: PostgreSQL's bulk load), fed ${formatNumber(COPY_ROWS_PER_WRITE)} rows at a time. Each produces its memories as it goes, as the upload does.`,
    '',
    table(
      ['memories', 'this product', 'saveAll', 'PostgreSQL INSERT', 'PostgreSQL COPY', 'relative to saveAll', 'relative to INSERT', 'relative to COPY'],
      results.baselines.map((row) => [
        row.memories,
        `${formatNumber(row.oursPerSecond)} /s`,
        `${formatNumber(row.saveAllPerSecond)} /s`,
        `${formatNumber(row.floorPerSecond)} /s`,
        `${formatNumber(row.copyPerSecond)} /s`,
        `${formatNumber(row.vsSaveAll)} ×`,
        `${formatNumber(row.vsFloor)} ×`,
        `${formatNumber(row.vsCopy)} ×`,
      ]),
    ),
    '',
    ...profileSection(report.profile),
    ...defaultsSection(report.settings),
  ].join('\n');
}

/** The CPU of each process by what the code is, and the statements that took the database the most time. */
export function profileSection(profile: ProfileReport): string[] {
  const categories = [...new Set([...profile.cpu.server, ...profile.cpu.worker].map((share) => share.category))];
  const cell = (shares: CpuShare[], category: string) => {
    const share = shares.find((s) => s.category === category);
    return share ? `${formatNumber(share.seconds)} s (${formatNumber(share.percent)} %)` : '–';
  };
  const bySum = (category: string) => -[...profile.cpu.server, ...profile.cpu.worker].filter((s) => s.category === category).reduce((sum, s) => sum + s.seconds, 0);
  return [
    '## 7. Where the time goes',
    '',
    `One upload of ${formatNumber(profile.memories)} memories as in section 5, on a stack of its own whose Parse Server and worker run with \`--cpu-prof\``,
    `and whose PostgreSQL keeps \`pg_stat_statements\`: ${formatNumber(profile.seconds)} s, ${formatNumber(profile.perSecond)} memories/s (profiling slows both processes a little).`,
    "Each process's CPU time during the upload is the kernel's count (/proc/<pid>/stat), split by the shares of its profile's samples",
    'taken during the upload by what the sampled code is; the database time is the execution time of its statements during the upload.',
    '',
    table(
      ['CPU spent in', 'Parse Server', 'worker'],
      [
        ...categories.sort((a, b) => bySum(a) - bySum(b)).map((category) => [category, cell(profile.cpu.server, category), cell(profile.cpu.worker, category)]),
        ['all', `${formatNumber(profile.cpuSeconds.server)} s`, `${formatNumber(profile.cpuSeconds.worker)} s`],
      ],
    ),
    '',
    `The database spent ${formatNumber(profile.database.totalMs / 1000)} s executing statements; the most costly:`,
    '',
    table(
      ['statement', 'calls', 'rows', 'time'],
      profile.database.statements.map((s) => [`\`${s.statement.replace(/\|/g, '\\|')}\``, s.calls, s.rows, `${formatNumber(s.totalMs / 1000)} s`]),
    ),
    '',
  ];
}
