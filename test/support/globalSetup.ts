/** Boots the shared test stack once per run (see testStack.ts); test files find it through TEST_STACK. */
import { bootTestStack } from './testStack';

export default async function globalSetup(): Promise<void> {
  const { stack, info } = await bootTestStack('test');
  (globalThis as Record<string, unknown>).__STACK__ = stack;
  process.env.TEST_STACK = JSON.stringify(info);
}
