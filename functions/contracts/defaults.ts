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
  /** Attachments per user message (Bedrock Converse takes at most 20 images and 5 documents a request). */
  maxAttachments: 5,
  /** Bytes per image after base64 decoding: Converse's limit (3.75 MB). */
  maxImageBytes: 3_932_160,
  /** Bytes per PDF after base64 decoding: Converse's limit (4.5 MB). */
  maxDocumentBytes: 4_718_592,
  /**
   * A turn request's body when it may carry attachments: just under a Function URL's 6 MB invoke payload,
   * so the JSON (base64 grows bytes by 4/3) holds about 4.4 MB of files in all.
   */
  maxAttachmentBodyBytes: 6_000_000,
  /** Earlier attachments sent back to the model on later turns: those of the last N user turns... */
  historyAttachmentTurns: 2,
  /** ...and at most this many bytes of them in all (newest first). */
  historyAttachmentBytes: 8_000_000,
} as const;

/** The model call must end before the function's own timeout, leaving time to save what was said. */
export const modelTimeoutMs = (streamTimeoutSeconds: number) =>
  Math.max(1000, (streamTimeoutSeconds - 5) * 1000);

/** The attachment caps a route applies when the deployment sets none. */
export const DEFAULT_ATTACHMENT_CAPS = {
  maxCount: DEFAULTS.maxAttachments,
  maxImageBytes: DEFAULTS.maxImageBytes,
  maxDocumentBytes: DEFAULTS.maxDocumentBytes,
};
