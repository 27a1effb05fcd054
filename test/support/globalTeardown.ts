import type { LocalStack } from '../../scripts/stack';

export default async function globalTeardown(): Promise<void> {
  const globals = globalThis as Record<string, unknown>;
  await (globals.__STACK__ as LocalStack | undefined)?.stop();
  await (globals.__MONGO__ as { stop(): Promise<unknown> } | undefined)?.stop();
}
