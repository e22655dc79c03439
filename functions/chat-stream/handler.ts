import { PassThrough } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { BedrockAgentRuntimeClient } from '@aws-sdk/client-bedrock-agent-runtime';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { SQSClient } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import { executionModeStreamifyResponse } from '@middy/core/StreamifyResponse';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { v7 as uuidv7 } from 'uuid';
import { BedrockChatModel } from '../adapters/bedrock-model.ts';
import { createDocumentClient, DynamoConversationStore } from '../adapters/dynamo-store.ts';
import { JwtAuth } from '../adapters/jwt-auth.ts';
import { KnowledgeBaseRetriever } from '../adapters/kb-retriever.ts';
import { createRedisClient, RedisContextCache } from '../adapters/redis-cache.ts';
import { SqsMessageQueue } from '../adapters/sqs-queue.ts';
import { loadStreamConfig } from '../config.ts';
import { SSE_HEADERS } from '../core/protocol.ts';
import { chatRequestSchema, HttpError, parseChatRequest } from '../core/request.ts';
import { type BackgroundReport, runTurn, type TurnDeps, type TurnReport } from '../core/turn.ts';
import { SseSink } from './sse-sink.ts';

const config = loadStreamConfig();
const logger = new Logger({ serviceName: 'chat-stream' });
const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'StreamingChat',
  serviceName: 'chat-stream',
});
const requestSchema = chatRequestSchema(config.MAX_MESSAGE_CHARS);
/** Bodies are JSON with at most MAX_MESSAGE_CHARS characters of up to 4 bytes each, plus the other fields. */
const maxBodyBytes = config.MAX_MESSAGE_CHARS * 4 + 1024;

const redis = config.REDIS_URL
  ? createRedisClient(config.REDIS_URL, config.REDIS_CLUSTER, config.CACHE_TIMEOUT_MS)
  : undefined;
const store = new DynamoConversationStore(createDocumentClient(), config.TABLE_NAME, config.MESSAGE_TTL_DAYS);
const auth = new JwtAuth({
  issuer: config.AUTH_ISSUER,
  audience: config.AUTH_AUDIENCE,
  jwksUri: config.AUTH_JWKS_URI,
  jwks: config.AUTH_JWKS,
});

const deps: TurnDeps = {
  cache: redis
    ? new RedisContextCache(redis, {
        historyLimit: config.HISTORY_LIMIT,
        profileTtlSeconds: config.PROFILE_CACHE_TTL_SECONDS,
        historyTtlSeconds: config.HISTORY_CACHE_TTL_SECONDS,
        ragTtlSeconds: config.RAG_CACHE_TTL_SECONDS,
      })
    : undefined,
  store,
  writer: store,
  queue: new SqsMessageQueue(new SQSClient({}), config.QUEUE_URL),
  retriever: config.KNOWLEDGE_BASE_ID
    ? new KnowledgeBaseRetriever(
        new BedrockAgentRuntimeClient({}),
        config.KNOWLEDGE_BASE_ID,
        config.RAG_RESULTS,
      )
    : undefined,
  model: new BedrockChatModel(new BedrockRuntimeClient({ maxAttempts: config.BEDROCK_MAX_ATTEMPTS }), {
    modelId: config.MODEL_ID,
    maxTokens: config.MAX_TOKENS,
    temperature: config.TEMPERATURE,
    guardrail: config.GUARDRAIL_ID
      ? { id: config.GUARDRAIL_ID, version: config.GUARDRAIL_VERSION }
      : undefined,
    promptCaching: config.PROMPT_CACHING,
    latency: config.PERFORMANCE_LATENCY,
  }),
  log: {
    warn: (message, attributes) => logger.warn(message, attributes ?? {}),
    error: (message, attributes) => logger.error(message, attributes ?? {}),
  },
  settings: {
    historyLimit: config.HISTORY_LIMIT,
    cacheTimeoutMs: config.CACHE_TIMEOUT_MS,
    storeTimeoutMs: config.STORE_TIMEOUT_MS,
    ragTimeoutMs: config.RAG_TIMEOUT_MS,
    modelTimeoutMs: config.MODEL_TIMEOUT_MS,
  },
  newId: () => uuidv7(),
  now: () => performance.now(),
  clock: () => new Date(),
};

// Connections and keys are set up during init, which Lambda does not bill against the first answer.
await Promise.all([
  redis
    ?.connect()
    .catch((error: unknown) =>
      logger.warn('redis unavailable at init, answering from DynamoDB', { error: String(error) }),
    ),
  config.AUTH_JWKS
    ? undefined
    : auth.warm().catch((error: unknown) => logger.warn('JWKS not loaded at init', { error: String(error) })),
]);

const jsonError = (error: HttpError, headers: Record<string, string> = {}) => ({
  statusCode: error.status,
  headers: { 'content-type': 'application/json', ...headers },
  body: error.toBody(),
});

async function acceptRequest(event: LambdaFunctionURLEvent) {
  if (event.requestContext.http.method !== 'POST') {
    throw new HttpError(405, 'method_not_allowed', 'Use POST.');
  }
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
  const userId = await auth.userIdFrom(event.headers?.authorization);
  return { userId, request: parseChatRequest(body, requestSchema) };
}

function publishMetrics(report: TurnReport, background: BackgroundReport) {
  const { timings, cache } = report;
  // Stored and published in one synchronous block, after the stream ended: the middleware would flush too early.
  metrics.addMetric('FirstByte', MetricUnit.Milliseconds, timings.first_byte_ms);
  if (timings.model_first_token_ms > 0)
    metrics.addMetric('TimeToFirstToken', MetricUnit.Milliseconds, timings.model_first_token_ms);
  metrics.addMetric('ContextLoad', MetricUnit.Milliseconds, timings.context_ms);
  if (cache.rag !== 'skipped') metrics.addMetric('RagRetrieval', MetricUnit.Milliseconds, timings.rag_ms);
  metrics.addMetric('TurnDuration', MetricUnit.Milliseconds, timings.total_ms);
  for (const [kind, state] of Object.entries(cache)) {
    if (state !== 'skipped')
      metrics.addMetric(`${kind}Cache${state === 'hit' ? 'Hit' : 'Miss'}`, MetricUnit.Count, 1);
  }
  metrics.addMetric('BackgroundSaves', MetricUnit.Count, background.saves);
  metrics.addMetric('FailedBackgroundSaves', MetricUnit.Count, background.failedSaves);
  if (report.outcome === 'error') metrics.addMetric('TurnErrors', MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
}

/** Work each invocation must finish after its stream ended and before it returns (Lambda freezes after). */
const afterStream = new WeakMap<Context, Promise<void>>();

async function chatStream(event: LambdaFunctionURLEvent, context: Context) {
  const startedAt = performance.now();
  logger.addContext(context);
  let accepted: Awaited<ReturnType<typeof acceptRequest>>;
  try {
    accepted = await acceptRequest(event);
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    logger.info('request rejected', { status: error.status, code: error.code });
    return jsonError(error, error.status === 405 ? { allow: 'POST' } : {});
  }

  const body = new PassThrough();
  const sink = new SseSink(body, config.FLUSH_PADDING_BYTES);
  const turn = runTurn(
    deps,
    {
      userId: accepted.userId,
      sessionId: accepted.request.session_id,
      message: accepted.request.message,
      useRag: accepted.request.use_rag ?? deps.retriever !== undefined,
      startedAt,
    },
    sink,
  ).catch((error: unknown) => {
    logger.error('turn crashed', { error: String(error) });
    sink.send({ type: 'error', code: 'internal', message: 'Something went wrong while answering.' });
    return undefined;
  });
  afterStream.set(
    context,
    turn.then(async (report) => {
      body.end();
      if (!report) return;
      const background = await report.background;
      logger.info('turn finished', {
        outcome: report.outcome,
        errorCode: report.errorCode,
        timings: report.timings,
        cache: report.cache,
        ...background,
      });
      publishMetrics(report, background);
    }),
  );
  return { statusCode: 200, headers: { ...SSE_HEADERS }, body };
}

export const handler = middy<LambdaFunctionURLEvent>({
  executionMode: executionModeStreamifyResponse,
  requestEnd: async (request) => {
    await afterStream.get(request.context as Context);
  },
}).handler(chatStream);
