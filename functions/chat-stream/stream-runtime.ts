import { createHmac } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { BedrockAgentRuntimeClient } from '@aws-sdk/client-bedrock-agent-runtime';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { v7 as uuidv7 } from 'uuid';
import { turnIndexKeys } from '../adapters/admission-keys.ts';
import { BedrockChatModel } from '../adapters/bedrock-model.ts';
import { DynamoConversationArchive } from '../adapters/dynamo-archive.ts';
import { createDocumentClient, DynamoConversationStore } from '../adapters/dynamo-store.ts';
import { JwtAuth } from '../adapters/jwt-auth.ts';
import { KnowledgeBaseRetriever } from '../adapters/kb-retriever.ts';
import { RedisContextCache, RedisForgetter } from '../adapters/redis-cache.ts';
import { connectCache } from '../adapters/redis-connection.ts';
import { RedisTurnRegistry, turnKeys } from '../adapters/redis-turns.ts';
import { S3AttachmentStore } from '../adapters/s3-attachments.ts';
import { SqsMessageOutbox } from '../adapters/sqs-outbox.ts';
import { TurnMetrics } from '../adapters/turn-metrics.ts';
import { RedisUserLimits } from '../adapters/user-limits.ts';
import { allowedModels } from '../contracts/models.ts';
import { METRICS_NAMESPACE, SERVICE_NAMES } from '../contracts/observability.ts';
import { errorName } from '../core/background-writes.ts';
import { ChatTurns } from '../core/chat-turn.ts';
import { chatRequestSchema } from '../core/request.ts';
import type { TurnDeps } from '../core/turn.ts';
import { TurnAdmission } from '../core/turn-admission.ts';
import { loadStreamConfig } from '../environment.ts';
import type { RouteGroups } from './router.ts';
import { accountRoutes } from './routes/account.ts';
import { conversationRoutes } from './routes/conversations.ts';
import { modelRoutes } from './routes/models.ts';
import { turnRoutes } from './routes/turns.ts';

/**
 * The stream function's composition root: configuration, clients and adapters, created once per
 * execution environment. The handler, `npm run invoke` and the benchmark's comparison designs share it.
 */
export function createStreamRuntime(env: NodeJS.ProcessEnv = process.env) {
  const config = loadStreamConfig(env);
  const logger = new Logger({ serviceName: SERVICE_NAMES.stream });
  const metrics = new TurnMetrics(
    new Metrics({
      namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
      serviceName: SERVICE_NAMES.stream,
    }),
  );
  // Without explicit timeouts the SDK waits forever on a half-broken endpoint, holding the invocation.
  const timeouts = {
    requestHandler: {
      connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS,
      requestTimeout: config.AWS_REQUEST_TIMEOUT_MS,
    },
  };
  const cacheConnection = connectCache(config, env, {
    log: logger,
    count: (event) => metrics.countCacheEvent(event),
  });
  const redis = cacheConnection?.client;
  const documents = createDocumentClient(timeouts);
  const store = new DynamoConversationStore(documents, config.TABLE_NAME, config.MESSAGE_TTL_DAYS);
  const auth = new JwtAuth({
    issuer: config.AUTH_ISSUER,
    audience: config.AUTH_AUDIENCE,
    jwksUri: config.AUTH_JWKS_URI,
    jwks: config.AUTH_JWKS,
    onUnknownKey: () => metrics.countUnknownKey(),
  });
  const model = new BedrockChatModel(
    new BedrockRuntimeClient({
      maxAttempts: config.BEDROCK_MAX_ATTEMPTS,
      // The stream's own deadline bounds the call; an idle timeout would cut a slow first token.
      requestHandler: { connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS },
    }),
    {
      modelId: config.MODEL_ID,
      maxTokens: config.MAX_TOKENS,
      temperature: config.TEMPERATURE,
      guardrail: config.GUARDRAIL_ID
        ? { id: config.GUARDRAIL_ID, version: config.GUARDRAIL_VERSION, mode: config.GUARDRAIL_STREAM_MODE }
        : undefined,
      promptCaching: config.PROMPT_CACHING,
      latency: config.PERFORMANCE_LATENCY,
    },
  );
  const retriever = config.KNOWLEDGE_BASE_ID
    ? new KnowledgeBaseRetriever(
        new BedrockAgentRuntimeClient(timeouts),
        config.KNOWLEDGE_BASE_ID,
        config.RAG_RESULTS,
        config.SOURCE_BASE_URL,
      )
    : undefined;

  const attachmentStore = config.ATTACHMENTS_BUCKET
    ? new S3AttachmentStore(
        new S3Client({ ...timeouts, forcePathStyle: config.ATTACHMENTS_PATH_STYLE }),
        config.ATTACHMENTS_BUCKET,
      )
    : undefined;
  const requestSchema = chatRequestSchema(config.MAX_MESSAGE_CHARS);
  const redisCache = redis
    ? new RedisContextCache(redis, {
        historyLimit: config.HISTORY_LIMIT,
        profileTtlSeconds: config.PROFILE_CACHE_TTL_SECONDS,
        historyTtlSeconds: config.HISTORY_CACHE_TTL_SECONDS,
        ragTtlSeconds: config.RAG_CACHE_TTL_SECONDS,
      })
    : undefined;
  const turnDeps: TurnDeps = {
    cache: redisCache,
    store,
    writer: store,
    outbox: new SqsMessageOutbox(new SQSClient(timeouts), config.QUEUE_URL),
    retriever,
    model,
    log: {
      warn: (message, attributes) => logger.warn(message, attributes ?? {}),
      error: (message, attributes) => logger.error(message, attributes ?? {}),
    },
    settings: {
      historyLimit: config.HISTORY_LIMIT,
      cacheTimeoutMs: config.CACHE_TIMEOUT_MS,
      storeTimeoutMs: config.STORE_TIMEOUT_MS,
      ragTimeoutMs: config.RAG_TIMEOUT_MS,
      ragRelevanceFloor: config.RAG_RELEVANCE_FLOOR,
      modelTimeoutMs: config.MODEL_TIMEOUT_MS,
      historyAttachments: { turns: config.HISTORY_ATTACHMENT_TURNS, bytes: config.HISTORY_ATTACHMENT_BYTES },
    },
    attachments: attachmentStore,
    usage: store,
    newId: () => uuidv7(),
    now: () => performance.now(),
    clock: () => new Date(),
    userKey: (userId) =>
      createHmac('sha256', config.USER_KEY_SECRET ?? config.TABLE_NAME)
        .update(userId)
        .digest('hex')
        .slice(0, 32),
  };

  /** Connections and keys set up during init, which Lambda does not bill against the first answer. */
  const warm = () =>
    Promise.all([
      // A failure is logged once by the connection, which then refuses calls at once until a probe succeeds.
      cacheConnection?.connect().catch(() => undefined),
      config.AUTH_JWKS
        ? undefined
        : auth
            .warm()
            .catch((error: unknown) => logger.warn('JWKS not loaded at init', { error: String(error) })),
    ]);

  const registry =
    redis && config.TURN_CONTROL
      ? new RedisTurnRegistry(redis, {
          // A turn whose environment died frees its session once it could no longer be running.
          lockMs: config.MODEL_TIMEOUT_MS + 15_000,
          resumableMs: config.TURN_RESUMABLE_SECONDS * 1000,
          retainMs: config.TURN_RETAIN_SECONDS * 1000,
          flushMs: config.TURN_FLUSH_MS,
          followBlockMs: 10_000,
          maxConcurrentPerUser: config.LIMIT_CONCURRENT_STREAMS,
          turnsPerMinute: config.LIMIT_TURNS_PER_MINUTE,
          tokensPerDay: config.LIMIT_TOKENS_PER_DAY,
          // Longer than a cache read's: a late claim is undone by its deadline and token, not run without a lock.
          admitTimeoutMs: Math.max(config.CACHE_TIMEOUT_MS, 1000),
          leaseMs: 10_000,
        })
      : undefined;
  const limits = new RedisUserLimits(
    redis,
    { turnsPerMinute: config.LIMIT_TURNS_PER_MINUTE, tokensPerDay: config.LIMIT_TOKENS_PER_DAY },
    () => metrics.countLimiterFallback(),
  );
  const admission = new TurnAdmission({
    registry,
    limits,
    log: turnDeps.log,
    newId: turnDeps.newId,
    settings: {
      maxConcurrentPerUser: config.LIMIT_CONCURRENT_STREAMS,
      followHoldMs: config.MODEL_TIMEOUT_MS + 15_000,
      recentMessageIds: 10_000,
    },
  });

  const turns = new ChatTurns({
    turn: turnDeps,
    limits,
    admission,
    registry,
    observer: metrics,
    log: {
      info: (message, attributes) => logger.info(message, attributes ?? {}),
      ...turnDeps.log,
    },
  });
  const archive = new DynamoConversationArchive(documents, config.TABLE_NAME);
  const contextCache = turnDeps.cache;
  // A delete's Redis side: the cache's keys and a marker, then the registry's exact forget of the turn
  // family; never a scan, never a limiter key. The route retries once and answers 503.
  const forgetter = redis
    ? new RedisForgetter(
        redis,
        registry && {
          keys: turnKeys,
          sessions: (userId) => turnIndexKeys(userId).sessions,
          forget: (userId, sessionId) => registry.forget(userId, sessionId),
        },
      )
    : undefined;
  const cacheNotCleared = (error: unknown): never => {
    logger.warn('cache not cleared on delete', { error: errorName(error) });
    throw error;
  };
  /** The models a request may choose (the default first) and the deployment's answer-length cap. */
  const modelPolicy = {
    allowed: allowedModels(config.MODEL_ID, config.ALLOWED_MODEL_IDS),
    maxTokens: config.MAX_TOKENS,
  };
  const routes: RouteGroups = {
    turns: turnRoutes({
      turns,
      requestSchema,
      /** JSON with at most MAX_MESSAGE_CHARS characters of up to 4 bytes each, plus the other fields. */
      maxBodyBytes: config.MAX_MESSAGE_CHARS * 4 + 1024,
      maxMessageChars: config.MAX_MESSAGE_CHARS,
      paddingBytes: config.FLUSH_PADDING_BYTES,
      modelPolicy,
      ragByDefault: retriever !== undefined,
      attachments: {
        caps: {
          maxCount: config.MAX_ATTACHMENTS,
          maxImageBytes: config.MAX_IMAGE_BYTES,
          maxDocumentBytes: config.MAX_DOCUMENT_BYTES,
        },
        stored: attachmentStore !== undefined,
      },
    }),
    conversations: conversationRoutes({
      archive,
      limits,
      cachedHistory: async (userId, sessionId) =>
        contextCache
          ?.loadConversation(userId, sessionId, AbortSignal.timeout(config.CACHE_TIMEOUT_MS))
          .then((cached) => cached.history)
          .catch(() => undefined),
      historyLimit: config.HISTORY_LIMIT,
      forgetSession: async (userId, sessionId) => {
        await forgetter?.forgetSession(userId, sessionId).catch(cacheNotCleared);
      },
      forgetUser: async (userId) => {
        await forgetter?.forgetUser(userId).catch(cacheNotCleared);
      },
      attachments: attachmentStore,
      dropCachedHistory: async (userId, sessionId) => {
        await redisCache?.dropHistory(userId, sessionId);
      },
      countFeedback: (rating) => metrics.countFeedback(rating),
    }),
    account: accountRoutes({
      archive,
      limits,
      runningTurns: async (userId) => registry?.runningTurns(userId).catch(() => 0) ?? 0,
      config: {
        turnsPerMinute: config.LIMIT_TURNS_PER_MINUTE,
        concurrentStreams: config.LIMIT_CONCURRENT_STREAMS,
        tokensPerDay: config.LIMIT_TOKENS_PER_DAY,
      },
    }),
    models: modelRoutes(modelPolicy.allowed),
  };

  return {
    config,
    logger,
    auth,
    /** The route groups, each with only what it needs. */
    routes,
    warm,
    // The benchmark's comparison designs build their own handlers from these adapters.
    store,
    model,
    retriever,
    requestSchema,
  };
}
