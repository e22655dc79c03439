/**
 * The Function URL's CORS settings: the CDK stack configures them on the URL (Lambda then answers
 * preflights itself and adds the headers), and the local Function URL emulator answers from the same.
 */
export const CORS_SETTINGS = {
  allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
  allowHeaders: ['authorization', 'content-type', 'idempotency-key', 'last-event-id', 'x-session-id'],
  /** What a browser client may read: the session of a new conversation, when to retry after a 429. */
  exposeHeaders: ['x-session-id', 'retry-after', 'x-vercel-ai-ui-message-stream'],
  maxAgeSeconds: 3600,
} as const;
