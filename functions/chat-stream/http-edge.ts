import type { LambdaFunctionURLEvent } from 'aws-lambda';
import type { RejectionKind, RequestRejected } from '../core/errors.ts';

/** A failure before streaming starts: a plain HTTP response with a JSON body, never a stream. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}

const STATUS: Record<RejectionKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  not_found: 404,
  conflict: 409,
  limited: 429,
  unavailable: 503,
};

export const fromRejection = (rejection: RequestRejected) => {
  const retryAfter = rejection.details?.retry_after_seconds;
  return new HttpError(STATUS[rejection.kind], rejection.code, rejection.message, {
    ...(rejection.details ? { details: rejection.details } : {}),
    ...(typeof retryAfter === 'number' ? { headers: { 'retry-after': String(retryAfter) } } : {}),
  });
};

export function jsonResponse(error: HttpError) {
  return {
    statusCode: error.status,
    headers: { 'content-type': 'application/json', ...error.headers },
    body: JSON.stringify({ error: { code: error.code, message: error.message, ...error.details } }),
  };
}

/** Media type and size, checked before the body is parsed (the route table already checked the method). */
export function readJsonBody(event: LambdaFunctionURLEvent, maxBodyBytes: number): string {
  const contentType = event.headers?.['content-type'] ?? '';
  if (!/^application\/json\b/i.test(contentType)) {
    throw new HttpError(415, 'unsupported_media_type', 'Send the body as application/json.');
  }
  const body = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64').toString('utf8')
    : (event.body ?? '');
  if (Buffer.byteLength(body) > maxBodyBytes) {
    throw new HttpError(413, 'payload_too_large', `The body must be at most ${maxBodyBytes} bytes.`);
  }
  return body;
}
