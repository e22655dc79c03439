import { type BackgroundWrites, errorName } from './background-writes.ts';
import { placeQuestion, regenerationOf } from './branches.ts';
import { withDeadline } from './deadline.ts';
import type { ChatMessage, Passage, UserProfile } from './messages.ts';
import type { ContextCache, ConversationStore, Retriever, TurnLog } from './ports.ts';
import type { CacheState } from './turn-events.ts';

export interface ContextSettings {
  historyLimit: number;
  cacheTimeoutMs: number;
  storeTimeoutMs: number;
  ragTimeoutMs: number;
  /** Passages scored under this are neither sent to the model nor shown (DEFAULTS.ragRelevanceFloor); unset keeps all. */
  ragRelevanceFloor?: number;
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
  /** Where the question goes among the versions (see `placeQuestion`): its follow-up reads that branch. */
  place?: { parentRef?: string | null | undefined; clientMessageId?: string | undefined };
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
    // The question alone is retrieved at once; the follow-up query waits for the history (one cache read).
    const alone = loadPassages(sources, writes, { ...request, question });
    const conversation = await (request.stateless
      ? NO_CONVERSATION
      : loadConversation(sources, writes, request));
    const branch = placeQuestion(conversation.history, request.place ?? {}).history;
    const previous = previousQuestion(branch, request.currentMessageId);
    const retrieved = await passagesForTurn(sources, writes, request, question, previous, alone);
    return { conversation, retrieved };
  }
  // Regenerating: retrieval needs the stored question, so it waits for the history.
  const conversation = await loadConversation(sources, writes, request);
  const regeneration = regenerationOf(conversation.history, request.regenerateOf);
  const asked = regeneration?.question;
  if (!asked) return { conversation, retrieved: { passages: [], state: 'skipped', failed: false, ms: 0 } };
  const previous = previousQuestion(regeneration.before, asked.messageId);
  const alone = loadPassages(sources, writes, { ...request, question: asked.content });
  const retrieved = await passagesForTurn(sources, writes, request, asked.content, previous, alone);
  return { conversation, retrieved };
}

/** The user's question before this one (what a follow-up like "How big should it be?" is about). */
function previousQuestion(history: ChatMessage[], currentMessageId: string): string | undefined {
  return history.findLast((m) => m.role === 'user' && m.messageId !== currentMessageId && m.content.trim())
    ?.content;
}

/**
 * A follow-up's query: the previous question and this one, so "How big should it be?" after a question
 * about an emergency fund finds the emergency fund (no model call to rewrite it first). The question alone
 * is retrieved as well, so a change of topic still finds its own passages; per passage the better score
 * counts, and the relevance floor then drops what neither query made relevant.
 */
function followUpQuery(previous: string, question: string): string {
  return `${previous}\n${question}`;
}

async function passagesForTurn(
  sources: ContextSources,
  writes: BackgroundWrites,
  request: ContextRequest,
  question: string,
  previous: string | undefined,
  alone: Promise<RetrievedContext>,
): Promise<RetrievedContext> {
  const floor = sources.settings.ragRelevanceFloor ?? 0;
  if (previous === undefined || !request.useRag || !sources.retriever) return aboveFloor(await alone, floor);
  const [own, inContext] = await Promise.all([
    alone,
    loadPassages(sources, writes, { ...request, question: followUpQuery(previous, question) }),
  ]);
  return aboveFloor(mergeRetrievals(own, inContext), floor);
}

/** Both retrievals as one: each passage once with its better score, best first, as many as one retrieval gives. */
function mergeRetrievals(own: RetrievedContext, other: RetrievedContext): RetrievedContext {
  const best = new Map<string, Passage>();
  for (const passage of [...own.passages, ...other.passages]) {
    const kept = best.get(passage.id);
    if (!kept || passage.score > kept.score) best.set(passage.id, passage);
  }
  const count = Math.max(own.passages.length, other.passages.length);
  return {
    passages: [...best.values()].sort((a, b) => b.score - a.score).slice(0, count),
    state:
      own.state === 'hit' && other.state === 'hit' ? 'hit' : own.state === 'skipped' ? other.state : 'miss',
    failed: own.failed && other.failed,
    ms: Math.max(own.ms, other.ms),
  };
}

/** Passages under the relevance floor are not relevant enough to be sent to the model or shown. */
function aboveFloor(retrieved: RetrievedContext, floor: number): RetrievedContext {
  if (floor <= 0) return retrieved;
  return { ...retrieved, passages: retrieved.passages.filter((p) => p.score >= floor) };
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
