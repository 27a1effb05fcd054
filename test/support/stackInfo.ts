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
}

/** Temporal's payload limit in the test stack: nothing proportional to a batch may cross it. */
export const PAYLOAD_LIMIT_BYTES = 64 * 1024;

export function stackInfo(): TestStackInfo {
  const raw = process.env.TEST_STACK;
  if (!raw) throw new Error('TEST_STACK is not set: run the tests through jest (its global setup boots the stack)');
  return JSON.parse(raw) as TestStackInfo;
}
