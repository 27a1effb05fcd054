/**
 * Parse Server keeps one handler per class and trigger event, and the last registration wins: a host's own
 * `Parse.Cloud.beforeSave(Parse.User, …)` or `beforeFind(Parse.File, …)` would silently replace the
 * plugin's guard. So the plugin's handlers are composed with the host's, whichever registers first: the
 * plugin's runs first (a refusal stops the request before the host's code sees it), then the host's, whose
 * answer is the trigger's answer. `Parse.Cloud`'s registration functions are wrapped once for that; a
 * registration that bypasses them is found at start (`unguarded`).
 */
import { CLASS } from '../schema/classes';
import Parse from '../schema/parseSdk';

export const TRIGGER_EVENTS = ['beforeSave', 'afterSave', 'beforeDelete', 'beforeFind'] as const;
export type TriggerEvent = (typeof TRIGGER_EVENTS)[number];
type Handler = (request: never) => unknown;
type Validator = unknown;
type Register = (parseClass: unknown, handler: Handler, validator?: Validator) => void;
/** `Parse.Cloud` as Parse Server builds it: the registration functions this module composes. */
export type CloudRegistry = Record<TriggerEvent, Register>;

// A plain CommonJS module of Parse Server without type declarations: its store of triggers.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const triggers = require('parse-server/lib/triggers') as {
  getClassName(parseClass: unknown): string;
  getTrigger(className: string, event: TriggerEvent, appId: string): Handler | undefined;
  getValidator(name: string, appId: string): Validator;
  removeTrigger(event: TriggerEvent, className: string, appId: string): void;
};

/** The plugin's handler of each `event.className`, per app id. */
const guardsOfApp = new Map<string, Map<string, Handler>>();
/** Handlers that hold the plugin's guard (the guard itself, or the guard composed with a host's handler). */
const guarding = new WeakSet<Handler>();
const wrapped = new WeakSet<object>();
const PLUGIN_CLASSES = new Set<string>(Object.values(CLASS));

function compose(guard: Handler, host: Handler): Handler {
  const composed = async (request: never) => {
    await guard(request);
    return host(request);
  };
  guarding.add(composed);
  return composed;
}

/**
 * A host validator that skips the trigger for the master key would skip the plugin's handler too, and the
 * plugin's own writes all use the master key: refused, naming the class and event.
 */
function refuseMasterSkip(event: TriggerEvent, className: string, validator: Validator): void {
  if (PLUGIN_CLASSES.has(className) && (validator as { skipWithMasterKey?: unknown } | undefined)?.skipWithMasterKey) {
    throw new Error(`Parse.Cloud.${event}('${className}', …, { skipWithMasterKey: true }): the batch memory plugin's own ${event} on ${className} must run for the master key; drop skipWithMasterKey`);
  }
}

/** Wraps `cloud`'s registration functions (once per `Parse.Cloud`), so that a host's handler is composed with the plugin's. */
function wrapRegistrations(cloud: CloudRegistry): void {
  if (wrapped.has(cloud)) return;
  wrapped.add(cloud);
  for (const event of TRIGGER_EVENTS) {
    const register = cloud[event].bind(cloud);
    cloud[event] = (parseClass, handler, validator) => {
      const className = triggers.getClassName(parseClass);
      // Parse Server registers for the app it initialised the SDK with, as here.
      const appId = Parse.applicationId ?? '';
      const guard = guardsOfApp.get(appId)?.get(`${event}.${className}`);
      if (!guard || handler === guard) return register(parseClass, handler, validator);
      refuseMasterSkip(event, className, validator);
      // Replaced on purpose, composed: not the duplicate Parse Server would warn of.
      triggers.removeTrigger(event, className, appId);
      register(parseClass, compose(guard, handler), validator);
    };
  }
}

/**
 * Registers the plugin's `handler` for `event` on `parseClass` in app `appId`: composed with a handler the
 * host registered before, and with any it registers later through `cloud`.
 */
export function guardTrigger(cloud: CloudRegistry, appId: string, event: TriggerEvent, parseClass: unknown, handler: Handler): void {
  const className = triggers.getClassName(parseClass);
  const guards = guardsOfApp.get(appId) ?? new Map<string, Handler>();
  guardsOfApp.set(appId, guards);
  guards.set(`${event}.${className}`, handler);
  guarding.add(handler);
  wrapRegistrations(cloud);
  const existing = triggers.getTrigger(className, event, appId);
  const validator = triggers.getValidator(`${event}.${className}`, appId);
  // Registered through the wrapper: composed with the host's handler when there is one.
  if (existing && !guarding.has(existing)) cloud[event](parseClass, existing, validator);
  else cloud[event](parseClass, handler, validator);
}

/** The `event className` pairs of app `appId` whose registered trigger has lost the plugin's handler (registered around `Parse.Cloud`). */
export function unguardedTriggers(appId: string): string[] {
  return [...(guardsOfApp.get(appId)?.keys() ?? [])].filter((key) => {
    const [event, className] = key.split('.') as [TriggerEvent, string];
    const registered = triggers.getTrigger(className, event, appId);
    return !registered || !guarding.has(registered);
  });
}
