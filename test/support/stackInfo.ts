/** What the global setup tells the test files about the shared stack. */
export interface TestStackInfo {
  env: Record<string, string>;
  serverURL: string;
  appId: string;
  masterKey: string;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  logDir: string;
  databaseURI: string;
  serverPid: number;
  workerPid: number;
  /** Each Parse Server instance's own URL, bypassing the proxy of a cluster. */
  instanceURLs: string[];
  /** The pid of each process the stack started, by name (`server-2`, `worker-2`… in a cluster). */
  pids: Record<string, number>;
}

/** Temporal's payload limit in the test stack: nothing proportional to a batch may cross it. */
export const PAYLOAD_LIMIT_BYTES = 64 * 1024;

/** Where test webhook receivers listen: the one address a test stack lets webhooks reach (WEBHOOK_ALLOWED_NETWORKS). */
export const WEBHOOK_TEST_HOST = '127.0.0.3';

export function stackInfo(): TestStackInfo {
  const raw = process.env.TEST_STACK;
  if (!raw) throw new Error('TEST_STACK is not set: run the tests through jest (its global setup boots the stack)');
  return JSON.parse(raw) as TestStackInfo;
}
