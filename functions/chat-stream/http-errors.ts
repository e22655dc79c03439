import type { ErrorBody } from '../contracts/api.ts';
import { DEPENDENCY_RETRY_AFTER_SECONDS, type RejectionKind, type RequestRejected } from '../core/errors.ts';
import { openAiError } from './wire/openai.ts';

const STATUS: Record<RejectionKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  too_large: 413,
  unsupported_media_type: 415,
  limited: 429,
  unavailable: 503,
};

const OPENAI_TYPES: Partial<Record<RejectionKind, string>> = {
  unauthenticated: 'authentication_error',
  not_found: 'not_found_error',
  limited: 'rate_limit_error',
};

/** Headers a refusal's details call for: when to retry, which methods a path allows. */
function headersOf({ details }: RequestRejected): Record<string, string> {
  const retryAfter = details?.retry_after_seconds;
  const allow = details?.allow;
  return {
    ...(typeof retryAfter === 'number' ? { 'retry-after': String(retryAfter) } : {}),
    ...(typeof allow === 'string' ? { allow } : {}),
  };
}

/**
 * The one place a refusal becomes an HTTP response: a status per kind, and the body in the API's
 * shape or, for the OpenAI-compatible route, in OpenAI's (whose SDK reads `type`, `code`, `param`).
 */
export function rejectionResponse(rejection: RequestRejected, shape: 'api' | 'openai') {
  const statusCode = STATUS[rejection.kind];
  if (shape === 'api') {
    const body: ErrorBody = {
      error: { code: rejection.code, message: rejection.message, ...rejection.details },
    };
    return {
      statusCode,
      headers: { 'content-type': 'application/json', ...headersOf(rejection) },
      body: JSON.stringify(body),
    };
  }
  const field = rejection.details?.field;
  const type = OPENAI_TYPES[rejection.kind] ?? 'invalid_request_error';
  return {
    statusCode,
    // The SDKs obey `x-should-retry`: a limit clears after `retry-after`, so they may back off and retry
    // on their own; a turn conflict (409) needs the caller's decision, and so does any other refusal.
    headers: {
      'content-type': 'application/json',
      'x-should-retry': rejection.kind === 'limited' ? 'true' : 'false',
      ...headersOf(rejection),
    },
    body: JSON.stringify(
      openAiError(rejection.code, rejection.message, type, typeof field === 'string' ? field : null),
    ),
  };
}

/**
 * Headers of a non-streamed answer that failed after admission: the failure is journaled under the
 * request's idempotency key, so the SDK's own retry would only replay it (`x-should-retry: false`);
 * a throttle or a server-side failure says when a new request may be sent.
 */
export function failedAnswerHeaders(statusCode: number): Record<string, string> {
  if (statusCode < 400) return {};
  return {
    'x-should-retry': 'false',
    ...(statusCode === 429 || statusCode >= 500
      ? { 'retry-after': String(DEPENDENCY_RETRY_AFTER_SECONDS) }
      : {}),
  };
}
