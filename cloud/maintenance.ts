/**
 * Background duties of each Parse Server process, at start-up and every RECONCILE_INTERVAL:
 * start the workflows of pending batches (accepted while Temporal was unreachable) and make
 * sure the expiry Schedule exists. Several instances may run it: every step is idempotent.
 */
import type { Config } from '../config';
import type { Logger } from '../config/log';
import type { BatchService } from './batchService';
import type { BatchWorkflows } from './temporal';

export class BatchMaintenance {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private scheduleReady = false;

  constructor(
    private readonly config: Config,
    private readonly service: BatchService,
    private readonly workflows: BatchWorkflows,
    private readonly log: Logger,
  ) {}

  start(): void {
    // reconcile() logs its own failures: a pass never rejects.
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.config.RECONCILE_INTERVAL);
    this.timer.unref();
  }

  /** One pass now (skipped while the previous one still runs). */
  tick(): Promise<void> {
    this.running ??= this.reconcile().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async reconcile(): Promise<void> {
    try {
      if (!this.scheduleReady) {
        if (await this.workflows.ensureExpirySchedule()) this.log.info('expiry schedule set', { every: this.config.BATCH_EXPIRY_INTERVAL });
        this.scheduleReady = true;
      }
      const started = await this.service.startPendingWorkflows();
      if (started) this.log.debug('pending batches reconciled', { batches: started });
    } catch (error) {
      this.log.warn('reconcile failed; retrying at the next interval', { error: (error as Error).message });
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
