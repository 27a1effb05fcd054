/**
 * The worker's Parse SDK requests over the kept-alive node:http connections of masterRequest instead
 * of fetch(), which costs the worker several times the CPU per request (fetch's streams, abort signals
 * and header objects). The SDK's REST controller builds every request and parses every answer as before;
 * only its transport, `ajax`, is replaced, and it keeps the SDK's contract: 4xx rejects with the error
 * body, 5xx is retried with the same backoff.
 */
import Parse from '../schema/parseSdk';
import type { ParseEndpoint } from '../schema/batchFile';
import { masterRequest } from '../storage/http';

interface AjaxAnswer {
  status: number;
  response: unknown;
  headers: Record<string, string>;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parse's error answer (`{ code, error }`, `error` a string), or a connection failure naming what came back instead. */
function errorBody(body: Buffer): unknown {
  try {
    const answer = JSON.parse(body.toString()) as { error?: unknown } | null;
    if (typeof answer?.error === 'string') return answer;
  } catch {
    // not JSON: below
  }
  return { code: Parse.Error.CONNECTION_FAILED, error: body.toString().slice(0, 200) };
}

export function useNodeHttpForParse(endpoint: ParseEndpoint): void {
  const attemptLimit = Parse.CoreManager.get('REQUEST_ATTEMPT_LIMIT') as number;
  const ajax = async (method: string, url: string, data: string | undefined): Promise<AjaxAnswer> => {
    for (let attempt = 1; ; attempt++) {
      // Not resent on a reset connection: a save sent twice could apply an increment twice.
      const answer = await masterRequest(endpoint, url, { method, body: data, contentType: 'text/plain', idempotent: false, keyInBody: true });
      if (answer.ok) return { status: answer.status, response: JSON.parse(answer.body.toString()), headers: {} };
      if (answer.status < 500 || attempt >= attemptLimit) throw errorBody(answer.body);
      await delay(Math.round(Math.random() * 125 * 2 ** attempt));
    }
  };
  // The SDK's request() calls ajax on this same controller object, so it is replaced in place.
  (Parse.CoreManager.getRESTController() as { ajax: typeof ajax }).ajax = ajax;
}
