import { type BackgroundWrites, errorName } from './background-writes.ts';
import { regenerationOf } from './branches.ts';
import { withDeadline } from './deadline.ts';
import type { ChatMessage, Passage, UserProfile } from './messages.ts';
import type { ContextCache, ConversationStore, Retriever, TurnLog } from './ports.ts';
import type { CacheState } from './turn-events.ts';

export interface ContextSettings {
  historyLimit: number;
  cacheTimeoutMs: number;
  storeTimeoutMs: number;
  ragTimeoutMs: number;
}

export interface ContextSources {
  cache: ContextCache | undefined;
  store: ConversationStore;
  retriever: Retriever | undefined;
  log: TurnLog;
  settings: ContextSettings;
  /** Monotonic milliseconds. */
  now(): number;
}

export interface ContextRequest {
  userId: string;
  sessionId: string;
  isNewSession: boolean;
  /** A stateless turn: the client sent the conversation, so no profile or history is read. */
  stateless?: boolean;
  /** This turn's user message, which the consumer may already have stored. */
  currentMessageId: string;
  /** `undefined` when regenerating: the question is then the last user message of the stored history. */
  question: string | undefined;
  /** Regenerating: the answer whose question is answered again (else the active branch's last question). */
  regenerateOf?: string | undefined;
  useRag: boolean;
}

interface ConversationContext {
  profile: UserProfile | undefined;
  history: ChatMessage[];
  profileState: CacheState;
  historyState: CacheState;
  /** Resolves once the cached history is complete (refilled), so appends never create a partial list. */
  historyReady: Promise<boolean>;
  ms: number;
}

interface RetrievedContext {
  passages: Passage[];
  state: CacheState;
  /** Retrieval was wanted and failed: the answer goes out without sources. */
  failed: boolean;
  ms: number;
}

export interface TurnContext {
  conversation: ConversationContext;
  retrieved: RetrievedContext;
}

const NO_CONVERSATION: ConversationContext = {
  profile: undefined,
  history: [],
  profileState: 'skipped',
  historyState: 'skipped',
  historyReady: Promise.resolve(false),
  ms: 0,
};

/** Profile, history and passages, loaded in parallel; each leg has its deadline and falls back on its own. */
export async function loadTurnContext(
  sources: ContextSources,
  writes: BackgroundWrites,
  request: ContextRequest,
): Promise<TurnContext> {
  const { question } = request;
  if (question !== undefined) {
    const [conversation, retrieved] = await Promise.all([
      request.stateless ? NO_CONVERSATION : loadConversation(sources, writes, request),
      loadPassages(sources, writes, { ...request, question }),
    ]);
    return { conversation, retrieved };
  }
  // Regenerating: retrieval needs the stored question, so it waits for the history.
  const conversation = await loadConversation(sources, writes, request);
  const stored = regenerationOf(conversation.history, request.regenerateOf)?.question.content;
  const retrieved = stored
    ? await loadPassages(sources, writes, { ...request, question: stored })
    : { passages: [], state: 'skipped' as const, failed: false, ms: 0 };
  return { conversation, retrieved };
}

async function loadConversation(
  { cache, store, settings, log, now }: ContextSources,
  writes: BackgroundWrites,
  { userId, sessionId, isNewSession, currentMessageId }: ContextRequest,
): Promise<ConversationContext> {
  const started = now();
  let cached: { profile: UserProfile | undefined; history: ChatMessage[] | undefined } = {
    profile: undefined,
    history: undefined,
  };
  if (cache) {
    try {
      cached = await withDeadline(settings.cacheTimeoutMs, 'cache read', (signal) =>
        cache.loadConversation(userId, sessionId, signal),
      );
    } catch (error) {
      log.warn('cache read failed, using the table', { error: errorName(error) });
    }
  }

  const profileFromStore = async () => {
    try {
      const profile = (await withDeadline(settings.storeTimeoutMs, 'profile read', (signal) =>
        store.getProfile(userId, signal),
      )) ?? { userId };
      if (cache) writes.cacheWrite('profile refill', cache.storeProfile(profile));
      return profile;
    } catch (error) {
      log.warn('profile unavailable, answering without it', { error: errorName(error) });
      return undefined;
    }
  };
  const historyFromStore = async (): Promise<{ history: ChatMessage[]; ready: Promise<boolean> }> => {
    try {
      const history = await withDeadline(settings.storeTimeoutMs, 'history read', (signal) =>
        store.getRecentMessages(userId, sessionId, settings.historyLimit, signal),
      );
      // The consumer may already have stored this turn's question: the turn appends it itself at its end.
      const earlier = history.filter((m) => m.messageId !== currentMessageId);
      const ready = cache
        ? writes.cacheWrite('history refill', cache.storeHistory(userId, sessionId, earlier)).then(() => true)
        : Promise.resolve(false);
      return { history, ready };
    } catch (error) {
      log.warn('history unavailable, answering without it', { error: errorName(error) });
      return { history: [], ready: Promise.resolve(false) };
    }
  };

  const [profile, historyLoad] = await Promise.all([
    cached.profile ? cached.profile : profileFromStore(),
    isNewSession || cached.history
      ? { history: cached.history ?? [], ready: Promise.resolve(cached.history !== undefined) }
      : historyFromStore(),
  ]);
  return {
    profile,
    history: historyLoad.history
      .filter((m) => m.messageId !== currentMessageId)
      .slice(-settings.historyLimit),
    profileState: cached.profile ? 'hit' : 'miss',
    historyState: isNewSession ? 'skipped' : cached.history ? 'hit' : 'miss',
    historyReady: historyLoad.ready,
    ms: now() - started,
  };
}

async function loadPassages(
  { retriever, cache, settings, log, now }: ContextSources,
  writes: BackgroundWrites,
  { question, useRag }: ContextRequest & { question: string },
): Promise<RetrievedContext> {
  if (!useRag || !retriever) return { passages: [], state: 'skipped', failed: false, ms: 0 };
  const started = now();
  if (cache) {
    try {
      const hit = await withDeadline(settings.cacheTimeoutMs, 'rag cache read', (signal) =>
        cache.loadPassages(retriever.knowledgeBaseId, question, signal),
      );
      if (hit) return { passages: hit, state: 'hit', failed: false, ms: now() - started };
    } catch (error) {
      log.warn('rag cache read failed', { error: errorName(error) });
    }
  }
  try {
    const passages = await withDeadline(settings.ragTimeoutMs, 'retrieval', (signal) =>
      retriever.retrieve(question, signal),
    );
    if (cache)
      writes.cacheWrite('rag refill', cache.storePassages(retriever.knowledgeBaseId, question, passages));
    return { passages, state: 'miss', failed: false, ms: now() - started };
  } catch (error) {
    log.warn('retrieval failed, answering without sources', { error: errorName(error) });
    return { passages: [], state: 'miss', failed: true, ms: now() - started };
  }
}
