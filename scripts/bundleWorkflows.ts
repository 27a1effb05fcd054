/**
 * `npm run build` step: bundles the workflow code once, into dist/worker/workflow-bundle.js, so that a
 * worker process loads it instead of running webpack at start-up (which costs it about a hundred MB of RSS).
 */
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_PATH } from '../worker/worker';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../worker/workflows'), logger: quietLogger });
  fs.mkdirSync(path.dirname(WORKFLOW_BUNDLE_PATH), { recursive: true });
  fs.writeFileSync(WORKFLOW_BUNDLE_PATH, code);
}

const ignore = () => undefined;
const quietLogger = {
  log: ignore,
  trace: ignore,
  debug: ignore,
  info: ignore,
  warn: (message: string) => process.stderr.write(`${message}\n`),
  error: (message: string) => process.stderr.write(`${message}\n`),
};

main().catch((error: unknown) => {
  process.stderr.write(`bundling the workflows failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
