/** Defaults both the functions' configuration and the stack's context fall back to. */
export const DEFAULTS = {
  modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  /**
   * SSE comment padding (bytes) on the events before the first token. A Function URL has been seen to
   * hold writes below ~16 KB until the next write (aws-lambda-nodejs-runtime-interface-client #94: a
   * 16 KB write streamed reliably; #102 reports up to 100 KB). 16 KiB lets session_id and the first
   * token leave at once for ~48 KB extra per answer; 0 turns it off.
   */
  flushPaddingBytes: 16_384,
  maxMessageChars: 8000,
  maxTokens: 1024,
  historyLimit: 10,
  ragResults: 4,
  /**
   * Passages the knowledge base scores under this relevance (Bedrock's score, 0 to 1) are neither sent to
   * the model nor shown as sources: a vector search always returns its k nearest, however far. 0 keeps all.
   */
  ragRelevanceFloor: 0.4,
  streamTimeoutSeconds: 120,
  streamMemoryMb: 1024,
  cacheTimeoutMs: 150,
  storeTimeoutMs: 1500,
  ragTimeoutMs: 3000,
  /** Connection and request timeouts of the AWS SDK clients the stream function uses off the model call. */
  awsConnectTimeoutMs: 1000,
  awsRequestTimeoutMs: 3000,
  guardrailVersion: 'DRAFT',
  /**
   * `sync` checks each chunk before it is sent: nothing the guardrail blocks ever reaches the user, at
   * the price of a later first token. `async` sends first and checks alongside, an explicit choice.
   */
  guardrailStreamMode: 'sync' as 'sync' | 'async',
  /** Per-user limits, checked after auth and before any model call; 0 turns a limit off. */
  limitTurnsPerMinute: 10,
  limitConcurrentStreams: 3,
  limitTokensPerDay: 200_000,
} as const;

/** The model call must end before the function's own timeout, leaving time to save what was said. */
export const modelTimeoutMs = (streamTimeoutSeconds: number) =>
  Math.max(1000, (streamTimeoutSeconds - 5) * 1000);
