/**
 * The memory processor the test stack's worker loads (MEMORY_PROCESSOR_MODULE).
 * Items opt into faults through metadata, so each test controls its own:
 * - `test_reject: "reason"` fails that item (a per-item failure);
 * - `test_throw: true` throws a plain error for that item on every attempt (a failure the product cannot classify);
 * - `test_fail_after_persist: true` fails the chunk once, after its memories were
 *   written and before the chunk was recorded (the retry must not duplicate them);
 * - `test_slow_ms: n` makes that item take n ms to prepare (a batch that stays running
 *   long enough to be acted on);
 * - `test_hold: "gate"` holds that item until the test opens the gate (`openGate`) or the activity
 *   is cancelled: a batch that stays running exactly as long as a test needs, whatever the machine's load;
 * - `test_record: true` appends `{"i": index, "a": attempt}` to `DATA_DIR/prepared/<batch id>.jsonl`
 *   each time the item is prepared (read with `preparedItems`): what a retry really processed again,
 *   which the insert-only chunk rows cannot show. Written synchronously, so a SIGKILL loses none.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { type MemoryProcessor, MemoryRejectedError } from '../../worker/processor';

/** A gate no test opens fails its items instead of holding the batch for the activity's whole timeout. */
const GATE_MAX_MS = 120_000;
const GATE_POLL_MS = 20;

/** The file whose existence opens a gate of the stack with this DATA_DIR. */
export function gateFile(dataDir: string, gate: string): string {
  return path.join(dataDir, 'gates', gate);
}

/** When each gate first held an item: the limit is the gate's, so a forgotten gate fails its items at once after it. */
const gatesSeen = new Map<string, number>();

async function untilGateOpens(gate: string): Promise<void> {
  const file = gateFile(process.env.DATA_DIR as string, gate);
  const cancelled = Context.current().cancellationSignal;
  if (!gatesSeen.has(gate)) gatesSeen.set(gate, Date.now());
  const deadline = (gatesSeen.get(gate) as number) + GATE_MAX_MS;
  while (!fs.existsSync(file) && !cancelled.aborted) {
    if (Date.now() > deadline) throw new MemoryRejectedError(`test_hold: gate ${gate} was not opened within ${GATE_MAX_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, GATE_POLL_MS));
  }
}

const armed = new Set<string>();
const fired = new Set<string>();

function recordPrepared(batchId: string, index: number, attempt: number): void {
  const dir = path.join(process.env.DATA_DIR as string, 'prepared');
  fs.mkdirSync(dir, { recursive: true });
  fs.appendFileSync(path.join(dir, `${batchId}.jsonl`), `${JSON.stringify({ i: index, a: attempt })}\n`);
}

const testProcessor: MemoryProcessor = {
  async prepare(item, context) {
    const metadata = item.metadata ?? {};
    if (metadata.test_record === true) recordPrepared(context.batchId, context.index, context.attempt);
    if (typeof metadata.test_slow_ms === 'number') await new Promise((resolve) => setTimeout(resolve, metadata.test_slow_ms as number));
    if (typeof metadata.test_hold === 'string') await untilGateOpens(metadata.test_hold);
    if (typeof metadata.test_reject === 'string') throw new MemoryRejectedError(metadata.test_reject);
    if (metadata.test_throw === true) throw new Error(`test_throw: memory ${context.index} fails on attempt ${context.attempt}`);
    if (metadata.test_fail_after_persist === true) armed.add(`${context.batchId}:${context.index}`);
    return item;
  },
  afterPersist(memories, context) {
    for (const { index } of memories) {
      const key = `${context.batchId}:${index}`;
      if (armed.has(key) && !fired.has(key)) {
        fired.add(key);
        throw new Error(`injected failure after persisting memory ${index}`);
      }
    }
  },
};

export default testProcessor;
