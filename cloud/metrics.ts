/**
 * Prometheus metrics of the Parse Server process, served at `/metrics`. Counters and histograms
 * follow the saves of BatchMemoryRequest (the worker writes status and counts through Parse, so
 * every change passes through an afterSave here); batches by status are counted at scrape time.
 */
import Parse from '../schema/parseSdk';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CLASS } from '../schema/classes';
import { isTerminal } from '../schema/answers';
import { BATCH_STATUSES } from '../schema/memory';
import { batchRecordOf } from '../schema/records';

const master = { useMasterKey: true };

export class BatchMetrics {
  readonly registry = new Registry();

  private readonly submitted = new Counter({ name: 'batch_memory_batches_submitted_total', help: 'Batches accepted', registers: [this.registry] });
  private readonly finished = new Counter({ name: 'batch_memory_batches_finished_total', help: 'Batches that reached a terminal status', labelNames: ['status'], registers: [this.registry] });
  private readonly processed = new Counter({ name: 'batch_memory_items_processed_total', help: 'Memories stored', registers: [this.registry] });
  private readonly failed = new Counter({ name: 'batch_memory_items_failed_total', help: 'Memories that failed', registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'batch_memory_batch_duration_seconds',
    help: 'Time from submit to terminal status',
    labelNames: ['status'],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
    registers: [this.registry],
  });
  private readonly sizeMemories = new Histogram({
    name: 'batch_memory_batch_size_memories',
    help: 'Memories per batch',
    buckets: [1, 10, 100, 1000, 10_000, 100_000, 1_000_000],
    registers: [this.registry],
  });
  private readonly sizeBytes = new Histogram({
    name: 'batch_memory_batch_size_bytes',
    help: 'Uncompressed bytes per batch',
    buckets: [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9],
    registers: [this.registry],
  });

  constructor() {
    new Gauge({
      name: 'batch_memory_batches',
      help: 'Batches by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const counts = await Promise.all(BATCH_STATUSES.map((status) => new Parse.Query(CLASS.batch).equalTo('status', status).count(master)));
        BATCH_STATUSES.forEach((status, i) => this.set({ status }, counts[i]));
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Follows one save of a BatchMemoryRequest: a new batch, counts that grew, a terminal status reached. */
  observeSave(object: Parse.Object, originalObject: Parse.Object | undefined): void {
    const batch = batchRecordOf(object);
    const observeSize = () => {
      this.sizeMemories.observe(batch.totalMemories);
      this.sizeBytes.observe(batch.rawBytes ?? 0);
    };
    if (!originalObject) {
      this.submitted.inc();
      if (batch.status !== 'receiving') observeSize();
      return;
    }
    const original = batchRecordOf(originalObject);
    // A batch processed while uploading has its size once its body has ended.
    if (original.status === 'receiving' && batch.status !== 'receiving') observeSize();
    this.processed.inc(Math.max(0, batch.processedMemories - original.processedMemories));
    this.failed.inc(Math.max(0, batch.failedMemories - original.failedMemories));
    const { status, completedAt } = batch;
    // completedAt is written once, with the final counts: that save marks the end.
    if (isTerminal(status) && completedAt && !original.completedAt) {
      this.finished.inc({ status });
      this.duration.observe({ status }, (completedAt.getTime() - batch.createdAt.getTime()) / 1000);
    }
  }
}
