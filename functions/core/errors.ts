/** Why a request is refused before any turn starts; the edge maps each kind to its HTTP status. */
export type RejectionKind =
  | 'invalid'
  | 'unauthenticated'
  | 'not_found'
  | 'conflict'
  | 'limited'
  | 'unavailable';

/** A request the domain refuses; `details` are safe to return to the caller (never user text). */
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
