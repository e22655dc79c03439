/** What the API puts in an answer's metadata: `start` and `finish` chunks live, the stored form on reload. */
export interface AnswerMetadata {
  sessionId?: string;
  stopReason?: string;
  errorCode?: string;
  createdAt?: string;
  usage?: { input_tokens?: number; output_tokens?: number };
  timings?: { first_byte_ms?: number; model_first_token_ms?: number; total_ms?: number };
  cache?: { profile?: string; history?: string; rag?: string };
}
