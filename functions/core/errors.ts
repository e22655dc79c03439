/**
 * Why a request is refused before any turn starts. Each kind has one HTTP status, chosen at the edge
 * (chat-stream/http-errors.ts); the domain never names a status.
 */
export type RejectionKind =
  | 'invalid'
  | 'unauthenticated'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'too_large'
  | 'unsupported_media_type'
  | 'limited'
  | 'unavailable';

/**
 * A request the domain refuses, with a stable `code` a client may branch on; `details` are safe to
 * return to the caller (never user text).
 */
export class RequestRejected extends Error {
  override name = 'RequestRejected';
  readonly kind: RejectionKind;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(kind: RejectionKind, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.kind = kind;
    this.code = code;
    this.details = details;
  }
}

/** A 400 `invalid_request` naming the field the caller must fix. */
export const invalidField = (field: string, message: string) =>
  new RequestRejected('invalid', 'invalid_request', message, { field });

/** How long a client told to retry waits when a dependency was down (a restart or failover, not an outage). */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

/** A 503 for a dependency that is down: the same request may be sent again after `retry-after`. */
export const dependencyUnavailable = (code: string, message: string) =>
  new RequestRejected('unavailable', code, message, { retry_after_seconds: DEPENDENCY_RETRY_AFTER_SECONDS });

export type ModelErrorCode = 'throttled' | 'model_error' | 'timeout';

/** What a model adapter throws, already mapped from the provider's error types. */
export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
    this.code = code;
  }
}
