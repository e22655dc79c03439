import * as z from 'zod/mini';
import { DEFAULTS, modelTimeoutMs } from './contracts/defaults.ts';

const flag = (fallback: boolean) =>
  z.pipe(
    z.optional(z.enum(['true', 'false', '1', '0'])),
    z.transform((v) => (v === undefined ? fallback : v === 'true' || v === '1')),
  );
const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z._default(z.coerce.number().check(z.int(), z.gte(min), z.lte(max)), fallback);
const text = (fallback: string) => z._default(z.string().check(z.minLength(1)), fallback);
const optionalText = z.pipe(
  z.optional(z.string()),
  z.transform((v) => (v?.trim() ? v.trim() : undefined)),
);

const tableAndTtl = {
  TABLE_NAME: z.string().check(z.minLength(1)),
  /** Days until a stored message expires (DynamoDB TTL); 0 keeps messages forever. */
  MESSAGE_TTL_DAYS: int(0, 0, 3650),
};

/** The stream function's environment: what the stack writes is parsed with this (test/infra/environment.test.ts). */
export const StreamEnv = z.object({
  ...tableAndTtl,
  QUEUE_URL: z.url(),
  REDIS_URL: optionalText,
  REDIS_CLUSTER: flag(false),
  /** `iam`: sign an ElastiCache IAM token for REDIS_USER on REDIS_CACHE_NAME (the deployed stack); `none` locally. */
  REDIS_AUTH: z._default(z.enum(['none', 'iam']), 'none'),
  REDIS_USER: optionalText,
  REDIS_CACHE_NAME: optionalText,
  AWS_REGION: optionalText,
  MODEL_ID: text(DEFAULTS.modelId),
  /** Other models a request may choose (comma-separated model table ids); MODEL_ID is the default. */
  ALLOWED_MODEL_IDS: optionalText,
  MAX_TOKENS: int(DEFAULTS.maxTokens, 1, 64_000),
  TEMPERATURE: z._default(z.coerce.number().check(z.gte(0), z.lte(1)), 0.3),
  GUARDRAIL_ID: optionalText,
  GUARDRAIL_VERSION: text(DEFAULTS.guardrailVersion),
  /** `sync` checks each chunk before it is sent (safer, slower first token); `async` checks alongside. */
  GUARDRAIL_STREAM_MODE: z._default(z.enum(['sync', 'async']), DEFAULTS.guardrailStreamMode),
  PROMPT_CACHING: flag(false),
  PERFORMANCE_LATENCY: z._default(z.enum(['standard', 'optimized']), 'standard'),
  BEDROCK_MAX_ATTEMPTS: int(2, 1, 10),
  KNOWLEDGE_BASE_ID: optionalText,
  RAG_RESULTS: int(DEFAULTS.ragResults, 1, 100),
  /** Passages scored under this are not used or shown (see DEFAULTS.ragRelevanceFloor); 0 keeps all. */
  RAG_RELEVANCE_FLOOR: z._default(z.coerce.number().check(z.gte(0), z.lte(1)), DEFAULTS.ragRelevanceFloor),
  /**
   * Where people can open a source: a source whose location is `s3://bucket/key` links to this URL with
   * `key` appended (e.g. a CloudFront or intranet copy of the knowledge base's documents).
   */
  SOURCE_BASE_URL: z.optional(z.url()),
  HISTORY_LIMIT: int(DEFAULTS.historyLimit, 0, 100),
  MAX_MESSAGE_CHARS: int(DEFAULTS.maxMessageChars, 1, 100_000),
  /** The bucket attachments are kept in; without it only stateless OpenAI turns take attachments. */
  ATTACHMENTS_BUCKET: optionalText,
  /** Path-style S3 URLs (a local emulator on 127.0.0.1); AWS uses virtual-hosted style. */
  ATTACHMENTS_PATH_STYLE: flag(false),
  MAX_ATTACHMENTS: int(DEFAULTS.maxAttachments, 0, 20),
  MAX_IMAGE_BYTES: int(DEFAULTS.maxImageBytes, 1, DEFAULTS.maxImageBytes),
  MAX_DOCUMENT_BYTES: int(DEFAULTS.maxDocumentBytes, 1, DEFAULTS.maxDocumentBytes),
  /** Earlier attachments sent to the model again: those of the last N user turns, within a byte budget. */
  HISTORY_ATTACHMENT_TURNS: int(DEFAULTS.historyAttachmentTurns, 0, 100),
  HISTORY_ATTACHMENT_BYTES: int(DEFAULTS.historyAttachmentBytes, 0, 100_000_000),
  /** Keys the HMAC that turns a user id into the key Bedrock invocation logs carry (default: the table name). */
  USER_KEY_SECRET: optionalText,
  /** Behind API Gateway only (comma-separated): the origins the function's own CORS headers allow. */
  CORS_ALLOWED_ORIGINS: optionalText,
  AUTH_ISSUER: z.url(),
  AUTH_AUDIENCE: z.string().check(z.minLength(1)),
  AUTH_JWKS_URI: z.optional(z.url()),
  /** The issuer's JWKS as JSON, delivered at deploy time so verification needs no internet. */
  AUTH_JWKS: optionalText,
  /** SSE comment padding before the first token; see DEFAULTS.flushPaddingBytes. */
  FLUSH_PADDING_BYTES: int(DEFAULTS.flushPaddingBytes, 0, 1_048_576),
  CACHE_TIMEOUT_MS: int(DEFAULTS.cacheTimeoutMs, 1),
  STORE_TIMEOUT_MS: int(DEFAULTS.storeTimeoutMs, 1),
  RAG_TIMEOUT_MS: int(DEFAULTS.ragTimeoutMs, 1),
  MODEL_TIMEOUT_MS: int(modelTimeoutMs(DEFAULTS.streamTimeoutSeconds), 1),
  AWS_CONNECT_TIMEOUT_MS: int(DEFAULTS.awsConnectTimeoutMs, 1),
  AWS_REQUEST_TIMEOUT_MS: int(DEFAULTS.awsRequestTimeoutMs, 1),
  /** `false` runs turns without lock, idempotency, resume or stop even with Redis (as without Redis). */
  TURN_CONTROL: flag(true),
  /** How often a running turn saves its events for resume and checks for a stop (the stop's latency). */
  TURN_FLUSH_MS: int(100, 10, 5000),
  /** How long after its end a turn can still be resumed by `GET …/stream`. */
  TURN_RESUMABLE_SECONDS: int(60, 1, 86_400),
  /** How long a client message id is remembered, so a retry replays its turn instead of answering twice. */
  TURN_RETAIN_SECONDS: int(3600, 60, 604_800),
  /** Per-user limits; 0 turns a limit off. */
  LIMIT_TURNS_PER_MINUTE: int(DEFAULTS.limitTurnsPerMinute, 0, 10_000),
  LIMIT_CONCURRENT_STREAMS: int(DEFAULTS.limitConcurrentStreams, 0, 1000),
  LIMIT_TOKENS_PER_DAY: int(DEFAULTS.limitTokensPerDay, 0, 1_000_000_000),
  PROFILE_CACHE_TTL_SECONDS: int(300, 1),
  HISTORY_CACHE_TTL_SECONDS: int(3600, 1),
  RAG_CACHE_TTL_SECONDS: int(3600, 1),
});
export type StreamConfig = z.infer<typeof StreamEnv>;

/** The consumer's environment, checked against the stack the same way. */
export const PersistEnv = z.object({
  ...tableAndTtl,
  /** Titles for new conversations: one small Converse call per session; `false` keeps the first words. */
  TITLES: flag(true),
  TITLE_MODEL_ID: text(DEFAULTS.modelId),
  TITLE_MAX_TOKENS: int(24, 1, 200),
  TITLE_TIMEOUT_MS: int(5000, 100, 60_000),
  /** Where attachments are kept: a message the consumer discards (deleted or erased since) takes its files along. */
  ATTACHMENTS_BUCKET: optionalText,
  ATTACHMENTS_PATH_STYLE: flag(false),
  AWS_CONNECT_TIMEOUT_MS: int(DEFAULTS.awsConnectTimeoutMs, 1),
  AWS_REQUEST_TIMEOUT_MS: int(DEFAULTS.awsRequestTimeoutMs, 1),
});
export type PersistConfig = z.infer<typeof PersistEnv>;

function parse<T extends z.ZodMiniType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const result = z.safeParse(schema, env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  return result.data;
}

export const loadStreamConfig = (env: NodeJS.ProcessEnv = process.env): StreamConfig => parse(StreamEnv, env);
export const loadPersistConfig = (env: NodeJS.ProcessEnv = process.env): PersistConfig =>
  parse(PersistEnv, env);
