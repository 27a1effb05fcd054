import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type WorkflowStartOptions,
} from '@temporalio/client';
import { type Config, temporalConnectionOptions } from '../config';
import {
  BATCH_WORKFLOW_TYPE,
  DELETE_WORKFLOW_TYPE,
  EXPIRY_WORKFLOW_TYPE,
  deleteWorkflowIdFor,
  LEGACY_EXPIRY_SCHEDULE_ID,
  expiryScheduleIdFor,
  type BatchWorkflowInput,
  PARTS_STORED_SIGNAL,
  type PartsStored,
  workflowIdFor,
} from '../schema/workflow';

/** Temporal as Cloud Code sees it: start a batch workflow, wait for it, cancel it. */
export class BatchWorkflows {
  private client?: Promise<Client>;

  constructor(private readonly config: Config) {}

  private connect(): Promise<Client> {
    this.client ??= Connection.connect({ ...temporalConnectionOptions(this.config), connectTimeout: '5s' })
      .then((connection) => new Client({ connection, namespace: this.config.TEMPORAL_NAMESPACE }))
      .catch((error: unknown) => {
        this.client = undefined;
        throw error;
      });
    return this.client;
  }

  /** Starts a workflow of `type`; true when this call started it, false when one of its id already runs. */
  private async startOnce(type: string, options: WorkflowStartOptions): Promise<boolean> {
    const client = await this.connect();
    try {
      // Without a deadline the client retries an unreachable server for about 40 s while the caller waits.
      await client.withDeadline(Date.now() + this.config.TEMPORAL_START_TIMEOUT, () => client.workflow.start(type, options));
      return true;
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      return false;
    }
  }

  /** Starts the workflow for a batch; true when this call started it (a second start of the same batch is a no-op). */
  start(batchId: string): Promise<boolean> {
    return this.startOnce(BATCH_WORKFLOW_TYPE, this.startOptions(batchId));
  }

  /** Starts the workflow that deletes a batch's memories and files; a no-op while one runs, a new run after one stopped. */
  async startDelete(batchId: string): Promise<void> {
    await this.startOnce(DELETE_WORKFLOW_TYPE, {
      workflowId: deleteWorkflowIdFor(batchId),
      taskQueue: this.config.TEMPORAL_TASK_QUEUE,
      args: [batchId],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    });
  }

  /** Tells the workflow of a batch processed while uploading that parts were stored, starting it if it does not run yet. */
  async partsStored(batchId: string, parts: PartsStored): Promise<void> {
    const client = await this.connect();
    try {
      await client.withDeadline(Date.now() + this.config.TEMPORAL_START_TIMEOUT, () =>
        client.workflow.signalWithStart(BATCH_WORKFLOW_TYPE, { ...this.startOptions(batchId), signal: PARTS_STORED_SIGNAL, signalArgs: [parts] }),
      );
    } catch (error) {
      // The workflow has ended (the batch was cancelled): there is nothing to tell.
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  }

  private startOptions(batchId: string) {
    const input: BatchWorkflowInput = { batchId };
    return {
      workflowId: workflowIdFor(batchId),
      taskQueue: this.config.TEMPORAL_TASK_QUEUE,
      args: [input] as [BatchWorkflowInput],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      // The workflow fails itself cleanly at BATCH_WORKFLOW_TIMEOUT; this is only the backstop.
      workflowExecutionTimeout: this.config.BATCH_WORKFLOW_TIMEOUT + 10 * 60_000,
    };
  }

  /** Creates the Schedule that deletes expired batch files, or brings its interval up to date; true when it changed. */
  async ensureExpirySchedule(): Promise<boolean> {
    const client = await this.connect();
    const every = this.config.BATCH_EXPIRY_INTERVAL;
    const scheduleId = expiryScheduleIdFor(this.config.TEMPORAL_TASK_QUEUE);
    await this.removeLegacyExpirySchedule();
    try {
      await client.schedule.create({
        scheduleId,
        spec: { intervals: [{ every }] },
        action: { type: 'startWorkflow', workflowType: EXPIRY_WORKFLOW_TYPE, taskQueue: this.config.TEMPORAL_TASK_QUEUE, args: [] },
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1h' },
      });
      return true;
    } catch (error) {
      if (!(error instanceof ScheduleAlreadyRunning)) throw error;
      const handle = client.schedule.getHandle(scheduleId);
      const { spec } = await handle.describe();
      if (spec.intervals?.length === 1 && Number(spec.intervals[0].every) === every) return false;
      await handle.update((previous) => ({ ...previous, spec: { intervals: [{ every }] } }));
      return true;
    }
  }

  /** The one Schedule of earlier versions, shared by every app in the namespace: removed by the app whose task queue it starts. */
  private async removeLegacyExpirySchedule(): Promise<void> {
    const handle = (await this.connect()).schedule.getHandle(LEGACY_EXPIRY_SCHEDULE_ID);
    const legacy = await handle.describe().catch((error: unknown) => {
      if (error instanceof ScheduleNotFoundError) return undefined;
      throw error;
    });
    if (legacy?.action.type === 'startWorkflow' && legacy.action.taskQueue === this.config.TEMPORAL_TASK_QUEUE) await handle.delete();
  }

  /** Resolves true when the workflow finished within `timeoutMs`, false when it is still running. */
  async waitFor(batchId: string, timeoutMs: number): Promise<boolean> {
    const client = await this.connect();
    const handle = client.workflow.getHandle(workflowIdFor(batchId));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([
        handle.result().then(
          () => true,
          () => true,
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Requests cancellation; false when no workflow of this batch is running. */
  async cancel(batchId: string): Promise<boolean> {
    const client = await this.connect();
    const handle = client.workflow.getHandle(workflowIdFor(batchId));
    try {
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') return false;
      await handle.cancel();
      return true;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    await client?.connection.close();
  }
}
