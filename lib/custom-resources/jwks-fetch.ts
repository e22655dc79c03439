import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

/**
 * Deploy time (CDK custom-resources Provider): fetches the user pool's JWKS so the stream function,
 * which has no route to Cognito, gets the keys in its configuration. The Provider framework answers
 * CloudFormation, retries nothing and times out after an hour, so the fetch bounds itself: a timeout
 * per attempt and a few attempts with back-off.
 */

export interface FetchJwksOptions {
  attempts?: number;
  timeoutMs?: number;
  /** Delay before attempt n (1-based, n >= 2). */
  backoffMs?: (attempt: number) => number;
  fetch?: typeof fetch;
}

export interface Jwks {
  keys: Array<Record<string, unknown> & { kid: string; kty: string }>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function validate(body: unknown, url: string): Jwks {
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${url} returned a JWKS without keys`);
  for (const key of keys) {
    const { kid, kty } = (key ?? {}) as { kid?: unknown; kty?: unknown };
    if (typeof kid !== 'string' || typeof kty !== 'string')
      throw new Error(`${url} returned a key without kid or kty`);
  }
  return { keys: keys as Jwks['keys'] };
}

/** GET the JWKS with a timeout per attempt; retries network errors, timeouts, 429 and 5xx. */
export async function fetchJwks(url: string, options: FetchJwksOptions = {}): Promise<Jwks> {
  const attempts = options.attempts ?? 3;
  const timeoutMs = options.timeoutMs ?? 5000;
  const backoffMs = options.backoffMs ?? ((attempt: number) => 1000 * 2 ** (attempt - 2));
  const get = options.fetch ?? fetch;
  let lastError: Error = new Error(`GET ${url} was not attempted`);
  let made = 0;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await sleep(backoffMs(attempt));
    made = attempt;
    let body: unknown;
    try {
      const response = await get(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) {
        lastError = new Error(`GET ${url} answered ${response.status}`);
        // A 4xx other than 429 will not get better by asking again.
        if (response.status < 500 && response.status !== 429) break;
        continue;
      }
      body = await response.json();
    } catch (error) {
      const reason = error instanceof Error ? error : new Error(String(error));
      lastError =
        reason.name === 'TimeoutError'
          ? new Error(`GET ${url} timed out after ${timeoutMs} ms`)
          : new Error(`GET ${url} failed: ${reason.message}`);
      continue;
    }
    return validate(body, url);
  }
  throw new Error(`${lastError.message} (after ${made} attempt${made === 1 ? '' : 's'})`);
}

export interface ProviderResponse {
  PhysicalResourceId?: string;
  Data?: Record<string, string>;
}

/** The Provider framework's onEvent: Create and Update fetch (a per-deploy nonce makes every deploy an Update). */
export function createJwksFetchHandler(options: FetchJwksOptions = {}) {
  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    const url = String(event.ResourceProperties.JwksUrl);
    if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };
    const jwks = await fetchJwks(url, options);
    // A stable id: a changed URL is an update of the same resource, never a replacement.
    return { PhysicalResourceId: 'jwks', Data: { Jwks: JSON.stringify({ keys: jwks.keys }) } };
  };
}

export const handler = createJwksFetchHandler();
