/**
 * The plugin's triggers composed with a host's for the same class and event (cloud/triggerGuards.ts), on
 * Parse Server's own Parse.Cloud and trigger store, in whichever order they register.
 */
import Parse from '../../schema/parseSdk';
import { type CloudRegistry, guardTrigger, unguardedTriggers } from '../../cloud/triggerGuards';

/* eslint-disable @typescript-eslint/no-require-imports */
const cloud = require('parse-server/lib/cloud-code/Parse.Cloud') as CloudRegistry;
const triggers = require('parse-server/lib/triggers') as {
  getTrigger(className: string, event: string, appId: string): ((request: unknown) => Promise<unknown>) | undefined;
  addTrigger(event: string, className: string, handler: (request: unknown) => unknown, appId: string): void;
};
/* eslint-enable @typescript-eslint/no-require-imports */

const APP_ID = 'trigger-guards-app';
Parse.initialize(APP_ID);
const run = (className: string, event: string, request: unknown) => triggers.getTrigger(className, event, APP_ID)!(request);

test("a host's handler registered after the plugin's runs after it; a refusal by the plugin's stops it", async () => {
  const calls: string[] = [];
  guardTrigger(cloud, APP_ID, 'beforeSave', '_User', (request: { refuse?: boolean }) => {
    calls.push('plugin');
    if (request.refuse) throw new Error('refused by the plugin');
  });
  cloud.beforeSave(Parse.User, () => {
    calls.push('host');
    return 'host answer';
  });
  expect(await run('_User', 'beforeSave', {})).toBe('host answer');
  expect(calls).toEqual(['plugin', 'host']);
  await expect(run('_User', 'beforeSave', { refuse: true })).rejects.toThrow('refused by the plugin');
  expect(calls).toEqual(['plugin', 'host', 'plugin']);
  expect(unguardedTriggers(APP_ID)).toEqual([]);
});

test("a host's handler registered before the plugin's is kept, after it", async () => {
  const calls: string[] = [];
  cloud.beforeFind(Parse.File, () => void calls.push('host'));
  guardTrigger(cloud, APP_ID, 'beforeFind', Parse.File, () => void calls.push('plugin'));
  await run('@File', 'beforeFind', {});
  expect(calls).toEqual(['plugin', 'host']);
});

test("a host validator that would skip the plugin's trigger on its own class for the master key is refused, naming class and event", () => {
  guardTrigger(cloud, APP_ID, 'afterSave', 'BatchMemoryRequest', () => undefined);
  expect(() => cloud.afterSave('BatchMemoryRequest', () => undefined, { skipWithMasterKey: true })).toThrow(
    "Parse.Cloud.afterSave('BatchMemoryRequest', …, { skipWithMasterKey: true }): the batch memory plugin's own afterSave on BatchMemoryRequest must run for the master key",
  );
});

test('a trigger replaced around Parse.Cloud is found at start', () => {
  guardTrigger(cloud, APP_ID, 'beforeDelete', 'BatchMemoryRequest', () => undefined);
  triggers.addTrigger('beforeDelete', 'BatchMemoryRequest', () => undefined, APP_ID);
  expect(unguardedTriggers(APP_ID)).toEqual(['beforeDelete.BatchMemoryRequest']);
});
