/** HTTP against the REST route, and validation of its answers against the OpenAPI document it serves. */
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { stackInfo } from './stackInfo';

export const REST = `${stackInfo().serverURL.replace(/\/parse$/, '')}/api/v1`;

export interface RestAnswer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export async function rest(path: string, init: RequestInit & { token?: string; headers?: Record<string, string> } = {}): Promise<RestAnswer> {
  const { token, headers, ...rest } = init;
  const response = await fetch(`${REST}${path}`, { ...rest, headers: { ...(token ? { 'X-Parse-Session-Token': token } : {}), ...headers } });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, body, text };
}

export function postJson(path: string, body: unknown, init: { token?: string; headers?: Record<string, string> } = {}): Promise<RestAnswer> {
  return rest(path, { method: 'POST', body: JSON.stringify(body), ...init, headers: { 'Content-Type': 'application/json', ...init.headers } });
}

let validators: Promise<(name: string, value: unknown) => string[]> | undefined;

/** Validates a value against a schema of the served OpenAPI document; returns the problems (none when valid). */
export async function openApiProblems(name: string, value: unknown): Promise<string[]> {
  validators ??= (async () => {
    const document = (await rest('/openapi.json')).body as { components: { schemas: Record<string, object> } };
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    for (const [key, schema] of Object.entries(document.components.schemas)) ajv.addSchema({ ...schema, $id: key }, key);
    return (schemaName: string, candidate: unknown) => {
      const validate = ajv.getSchema(schemaName);
      if (!validate) return [`no schema ${schemaName} in the OpenAPI document`];
      return validate(candidate) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
    };
  })();
  return (await validators)(name, value);
}
