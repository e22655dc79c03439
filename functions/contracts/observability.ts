/**
 * What the functions publish (EMF through Powertools Metrics) and what the dashboard and alarms read.
 * The stack builds every alarm from these names; a test checks each one is a metric a handler emits.
 */
export const METRICS_NAMESPACE = 'StreamingChat';

export const SERVICE_NAMES = { stream: 'chat-stream', persist: 'persist' } as const;

/** Published by the stream function, dimension `service` = SERVICE_NAMES.stream. */
export const STREAM_METRICS = {
  firstByte: 'FirstByte',
  /** From the start of the model call to its first token (retrieval and context excluded). */
  modelTimeToFirstToken: 'ModelTimeToFirstToken',
  /** From the request to the first token, what the user waits for. */
  timeToFirstToken: 'TimeToFirstToken',
  contextLoad: 'ContextLoad',
  ragRetrieval: 'RagRetrieval',
  retrievalFailures: 'RetrievalFailures',
  turnDuration: 'TurnDuration',
  /** Prompt tokens served from the model's prompt cache, and written to it. */
  modelCacheReadTokens: 'ModelCacheReadTokens',
  modelCacheWriteTokens: 'ModelCacheWriteTokens',
  turns: 'Turns',
  turnErrors: 'TurnErrors',
  backgroundSaves: 'BackgroundSaves',
  failedBackgroundSaves: 'FailedBackgroundSaves',
  unknownKeyRejections: 'UnknownKeyRejections',
  /** A request refused with 429 by a per-user limit. */
  limitRejections: 'LimitRejections',
  /** A limit checked in one environment's memory because Redis did not answer. */
  limiterFallbacks: 'LimiterFallbacks',
  /** A cache call given up because the cache is down (refused at once by the open circuit, or failed connecting). */
  cacheUnavailable: 'CacheUnavailable',
  /** The cache refused the function's credentials (a sign-in with an expired or wrong token, or a missing grant). */
  cacheAuthFailures: 'CacheAuthFailures',
  /** A person rated an answer up or down (PUT …/feedback); the dashboard charts the share of downs. */
  feedbackPositive: 'FeedbackPositive',
  feedbackNegative: 'FeedbackNegative',
  cacheHit: (kind: 'profile' | 'history' | 'rag') => `${kind}CacheHit`,
  cacheMiss: (kind: 'profile' | 'history' | 'rag') => `${kind}CacheMiss`,
} as const;

/** Published by the consumer, dimension `service` = SERVICE_NAMES.persist. */
export const PERSIST_METRICS = {
  messagesPersisted: 'MessagesPersisted',
  duplicatesSkipped: 'DuplicatesSkipped',
  persistFailures: 'PersistFailures',
  /** Messages that arrived for a deleted session or an erased user and were not kept. */
  messagesDiscarded: 'MessagesDiscarded',
} as const;
