import type { ChatMessage, Passage, Source, UserProfile } from './messages.ts';
import type {
  ChatModel,
  ContextCache,
  ConversationStore,
  MessageQueue,
  MessageWriter,
  Retriever,
  TurnLog,
} from './ports.ts';
import { ModelError } from './ports.ts';
import { buildSystemPrompt, toConverseMessages } from './prompt.ts';
import type { CacheState, StreamErrorCode, StreamEvent, TurnTimings } from './protocol.ts';

export interface TurnSettings {
  historyLimit: number;
  cacheTimeoutMs: number;
  storeTimeoutMs: number;
  ragTimeoutMs: number;
  modelTimeoutMs: number;
}

export interface TurnDeps {
  cache: ContextCache | undefined;
  store: ConversationStore;
  queue: MessageQueue;
  writer: MessageWriter;
  retriever: Retriever | undefined;
  model: ChatModel;
  log: TurnLog;
  settings: TurnSettings;
  newId(): string;
  /** Monotonic milliseconds. */
  now(): number;
  clock(): Date;
}

export interface TurnInput {
  userId: string;
  sessionId: string | undefined;
  message: string;
  useRag: boolean;
  /** `now()` when the request reached the handler. */
  startedAt: number;
}

/** Where events go; `false` means the client can no longer be written to. */
export interface EventSink {
  send(event: StreamEvent): boolean;
}

export interface BackgroundReport {
  saves: number;
  failedSaves: number;
}

export interface TurnReport {
  sessionId: string;
  outcome: 'done' | 'error' | 'client_gone';
  errorCode?: StreamErrorCode;
  timings: TurnTimings;
  cache: { profile: CacheState; history: CacheState; rag: CacheState };
  /** Every write the turn started; the handler awaits it after the stream ended. */
  background: Promise<BackgroundReport>;
}

class DeadlineError extends Error {
  constructor(label: string, ms: number) {
    super(`${label} took longer than ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

function withDeadline<T>(work: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(label, ms)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

const errorName = (error: unknown) => (error instanceof Error ? error.name : typeof error);

/**
 * The writes a turn starts but never waits for on the critical path. Messages are chained so a
 * conversation reaches the FIFO queue in order; a queue failure falls back to the direct write.
 */
class BackgroundWrites {
  readonly #deps: TurnDeps;
  readonly #pending: Promise<unknown>[] = [];
  #messageChain: Promise<void> = Promise.resolve();
  #saves = 0;
  #failedSaves = 0;

  constructor(deps: TurnDeps) {
    this.#deps = deps;
  }

  persist(message: ChatMessage): void {
    this.#saves++;
    this.#messageChain = this.#messageChain.then(() => this.#deliver(message));
    this.#pending.push(this.#messageChain);
  }

  async #deliver(message: ChatMessage): Promise<void> {
    const { queue, writer, log } = this.#deps;
    try {
      await queue.enqueue(message);
      return;
    } catch (error) {
      log.warn('queue send failed, writing the message directly', {
        messageId: message.messageId,
        error: errorName(error),
      });
    }
    try {
      await writer.persist(message);
    } catch (error) {
      this.#failedSaves++;
      log.error('message not saved: queue and direct write both failed', {
        messageId: message.messageId,
        error: errorName(error),
      });
    }
  }

  cacheWrite(label: string, work: Promise<unknown>): Promise<void> {
    const settled = work.then(
      () => undefined,
      (error: unknown) => this.#deps.log.warn(`cache ${label} failed`, { error: errorName(error) }),
    );
    this.#pending.push(settled);
    return settled;
  }

  async settle(): Promise<BackgroundReport> {
    await Promise.all(this.#pending);
    return { saves: this.#saves, failedSaves: this.#failedSaves };
  }
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

async function loadConversation(
  deps: TurnDeps,
  writes: BackgroundWrites,
  userId: string,
  sessionId: string,
  isNewSession: boolean,
  currentMessageId: string,
): Promise<ConversationContext> {
  const { cache, store, settings, log } = deps;
  const started = deps.now();
  let cached: { profile: UserProfile | undefined; history: ChatMessage[] | undefined } = {
    profile: undefined,
    history: undefined,
  };
  if (cache) {
    try {
      cached = await withDeadline(
        cache.loadConversation(userId, sessionId),
        settings.cacheTimeoutMs,
        'cache read',
      );
    } catch (error) {
      log.warn('cache read failed, using the table', { error: errorName(error) });
    }
  }

  const profileFromStore = async () => {
    try {
      const profile = (await withDeadline(
        store.getProfile(userId),
        settings.storeTimeoutMs,
        'profile read',
      )) ?? {
        userId,
      };
      if (cache) writes.cacheWrite('profile refill', cache.storeProfile(profile));
      return profile;
    } catch (error) {
      log.warn('profile unavailable, answering without it', { error: errorName(error) });
      return undefined;
    }
  };
  const historyFromStore = async (): Promise<{ history: ChatMessage[]; ready: Promise<boolean> }> => {
    try {
      const history = await withDeadline(
        store.getRecentMessages(userId, sessionId, settings.historyLimit),
        settings.storeTimeoutMs,
        'history read',
      );
      const ready = cache
        ? writes.cacheWrite('history refill', cache.storeHistory(userId, sessionId, history)).then(() => true)
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
    // The consumer may already have stored this turn's message; it must not appear twice.
    history: historyLoad.history
      .filter((m) => m.messageId !== currentMessageId)
      .slice(-settings.historyLimit),
    profileState: cached.profile ? 'hit' : 'miss',
    historyState: isNewSession ? 'skipped' : cached.history ? 'hit' : 'miss',
    historyReady: historyLoad.ready,
    ms: deps.now() - started,
  };
}

interface RetrievedContext {
  passages: Passage[];
  state: CacheState;
  ms: number;
}

async function loadPassages(
  deps: TurnDeps,
  writes: BackgroundWrites,
  question: string,
  useRag: boolean,
): Promise<RetrievedContext> {
  const { retriever, cache, settings, log } = deps;
  if (!useRag || !retriever) return { passages: [], state: 'skipped', ms: 0 };
  const started = deps.now();
  if (cache) {
    try {
      const hit = await withDeadline(
        cache.loadPassages(retriever.knowledgeBaseId, question),
        settings.cacheTimeoutMs,
        'rag cache read',
      );
      if (hit) return { passages: hit, state: 'hit', ms: deps.now() - started };
    } catch (error) {
      log.warn('rag cache read failed', { error: errorName(error) });
    }
  }
  try {
    const passages = await retriever.retrieve(question, AbortSignal.timeout(settings.ragTimeoutMs));
    if (cache)
      writes.cacheWrite('rag refill', cache.storePassages(retriever.knowledgeBaseId, question, passages));
    return { passages, state: 'miss', ms: deps.now() - started };
  } catch (error) {
    log.warn('retrieval failed, answering without sources', { error: errorName(error) });
    return { passages: [], state: 'miss', ms: deps.now() - started };
  }
}

const toSource = ({ text: _text, ...source }: Passage): Source => source;

function classify(error: unknown, timedOut: boolean): { code: StreamErrorCode; message: string } {
  if (timedOut) return { code: 'timeout', message: 'The answer took too long and was stopped.' };
  if (error instanceof ModelError) {
    const messages: Record<string, string> = {
      throttled: 'The model is busy right now. Please retry in a moment.',
      model_error: 'The model could not complete the answer.',
      timeout: 'The answer took too long and was stopped.',
    };
    return { code: error.code, message: messages[error.code] ?? error.message };
  }
  return { code: 'internal', message: 'Something went wrong while answering.' };
}

/**
 * One chat turn: `session_id` before any I/O, context loaded in parallel with per-leg deadlines,
 * model tokens forwarded as they arrive, every write started off the critical path and returned
 * as `background` for the caller to await once the stream has ended.
 */
export async function runTurn(deps: TurnDeps, input: TurnInput, sink: EventSink): Promise<TurnReport> {
  const elapsed = () => Math.round((deps.now() - input.startedAt) * 100) / 100;
  const isNewSession = input.sessionId === undefined;
  const sessionId = input.sessionId ?? deps.newId();
  sink.send({ type: 'session_id', session_id: sessionId });
  const firstByteMs = elapsed();

  const writes = new BackgroundWrites(deps);
  const userMessage: ChatMessage = {
    messageId: deps.newId(),
    sessionId,
    userId: input.userId,
    role: 'user',
    content: input.message,
    createdAt: deps.clock().toISOString(),
  };
  writes.persist(userMessage);

  const [conversation, retrieved] = await Promise.all([
    loadConversation(deps, writes, input.userId, sessionId, isNewSession, userMessage.messageId),
    loadPassages(deps, writes, input.message, input.useRag),
  ]);
  const cache = {
    profile: conversation.profileState,
    history: conversation.historyState,
    rag: retrieved.state,
  };
  const timings: TurnTimings = {
    first_byte_ms: firstByteMs,
    context_ms: Math.round(conversation.ms * 100) / 100,
    rag_ms: Math.round(retrieved.ms * 100) / 100,
    model_first_token_ms: 0,
    total_ms: 0,
  };
  const sources = retrieved.passages.map(toSource);
  let clientGone = false;
  const send = (event: StreamEvent) => {
    if (!clientGone && !sink.send(event)) clientGone = true;
    return !clientGone;
  };
  if (sources.length > 0) send({ type: 'sources', sources });

  const rememberTurn = (messages: ChatMessage[]) => {
    if (!deps.cache) return;
    const cacheWriter = deps.cache;
    if (isNewSession) {
      writes.cacheWrite('history store', cacheWriter.storeHistory(input.userId, sessionId, messages));
    } else {
      const appended = conversation.historyReady.then((ready) =>
        ready ? cacheWriter.appendHistory(input.userId, sessionId, messages) : undefined,
      );
      writes.cacheWrite('history append', appended);
    }
  };

  const cancel = new AbortController();
  const deadline = AbortSignal.timeout(deps.settings.modelTimeoutMs);
  const signal = AbortSignal.any([cancel.signal, deadline]);
  let answer = '';
  let stopReason: string | undefined;
  let usage = { input_tokens: 0, output_tokens: 0 };
  try {
    const events = deps.model.stream({
      system: buildSystemPrompt(conversation.profile, retrieved.passages),
      messages: toConverseMessages(conversation.history, input.message),
      signal,
    });
    for await (const event of events) {
      if (event.type === 'text') {
        if (answer === '') timings.model_first_token_ms = elapsed();
        answer += event.text;
        if (!send({ type: 'token', text: event.text })) {
          cancel.abort();
          break;
        }
      } else if (event.type === 'stop') {
        stopReason = event.stopReason;
      } else {
        usage = { input_tokens: event.inputTokens, output_tokens: event.outputTokens };
      }
    }
    if (!clientGone && (deadline.aborted || stopReason === undefined)) {
      throw new ModelError(deadline.aborted ? 'timeout' : 'model_error', 'The model stream ended early.');
    }
  } catch (error) {
    const { code, message } = classify(error, deadline.aborted);
    deps.log.error('turn failed after streaming started', { code, error: errorName(error) });
    rememberTurn([userMessage]);
    send({ type: 'error', code, message });
    timings.total_ms = elapsed();
    return { sessionId, outcome: 'error', errorCode: code, timings, cache, background: writes.settle() };
  }

  if (clientGone) {
    rememberTurn([userMessage]);
    timings.total_ms = elapsed();
    return { sessionId, outcome: 'client_gone', timings, cache, background: writes.settle() };
  }

  const assistantMessage: ChatMessage = {
    messageId: deps.newId(),
    sessionId,
    userId: input.userId,
    role: 'assistant',
    content: answer,
    createdAt: deps.clock().toISOString(),
    stopReason: stopReason ?? 'end_turn',
    usage,
    ...(sources.length > 0 ? { sources } : {}),
  };
  rememberTurn([userMessage, assistantMessage]);
  writes.persist(assistantMessage);
  timings.total_ms = elapsed();
  send({
    type: 'done',
    message_id: assistantMessage.messageId,
    stop_reason: assistantMessage.stopReason ?? 'end_turn',
    usage,
    timings,
    cache,
  });
  return { sessionId, outcome: 'done', timings, cache, background: writes.settle() };
}
