/** Measuring: resident memory of the stack's processes, sampled while a scenario runs, and simple statistics. */
import fs from 'node:fs';
import type { MemoryItem } from '../schema/memory';
import { englishText } from '../test/support/helpers';

/** Reported sizes are decimal megabytes, as the targets are stated. */
export const MB = 1_000_000;
export const SAMPLE_INTERVAL_MS = 100;
/** Every benchmark memory is about this many bytes of text, plus a small metadata object. */
export const MEMORY_BYTES = 1000;
/**
 * Batches of WARM_UP_MEMORIES run before anything is timed, one after another and then as many at once:
 * enough for V8 to have compiled both processes' hot paths and for the connection pools (Parse Server's
 * to PostgreSQL, the worker's to Parse Server) to hold what concurrent batches use.
 */
export const WARM_UP_BATCHES = 5;
export const WARM_UP_MEMORIES = 100;

export type MeasuredProcess = 'server' | 'worker';

export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kilobytes = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kilobytes === undefined) throw new Error(`/proc/${pid}/status has no VmRSS (the process has exited)`);
  return Number(kilobytes) * 1024;
}

/** CPU seconds (user and system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  // Fields after the command name (which may hold spaces) in parentheses; utime and stime are the 12th and 13th of them.
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}
/** USER_HZ: Linux reports CPU times in these ticks on every architecture Node.js runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface RssFigures {
  /** Highest RSS of each process, in MB. */
  peak: Record<MeasuredProcess, number>;
  /** Highest RSS of the processes together at one sample, in MB. */
  peakSum: number;
  /** Mean RSS of the processes together over the samples, in MB. */
  meanSum: number;
}

/** Samples VmRSS of the Parse Server and worker processes every 100 ms, and once at start and stop. */
export class RssSampler {
  private readonly samples: Record<MeasuredProcess, number>[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly pids: Record<MeasuredProcess, number>) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    return this;
  }

  stop(): RssFigures {
    clearInterval(this.timer);
    this.sample();
    const sums = this.samples.map((s) => s.server + s.worker);
    return {
      peak: { server: Math.max(...this.samples.map((s) => s.server)) / MB, worker: Math.max(...this.samples.map((s) => s.worker)) / MB },
      peakSum: Math.max(...sums) / MB,
      meanSum: mean(sums) / MB,
    };
  }

  private sample(): void {
    this.samples.push({ server: rssBytes(this.pids.server), worker: rssBytes(this.pids.worker) });
  }
}

export function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Nearest-rank percentile: the smallest value with at least p % of the values at or below it. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Milliseconds since `started` (a performance.now() reading). */
export function since(started: number): number {
  return performance.now() - started;
}

/** The benchmark's memory number `index`: the same text for the product and for the baselines. */
export function memoryAt(index: number): MemoryItem {
  return { content: englishText(MEMORY_BYTES, index), metadata: { index, kind: 'note' } };
}

export function memoriesFrom(first: number, count: number): MemoryItem[] {
  return Array.from({ length: count }, (_, offset) => memoryAt(first + offset));
}

/** Memories 0…count-1 as NDJSON, produced as the upload reads them (a hundred lines at a time). */
export function* ndjsonLines(count: number): Generator<string> {
  for (let first = 0; first < count; first += 100) {
    yield memoriesFrom(first, Math.min(100, count - first))
      .map((memory) => `${JSON.stringify(memory)}\n`)
      .join('');
  }
}
