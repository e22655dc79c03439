import { type BackgroundReport, BackgroundWrites } from './background-writes.ts';
import { type ContextSettings, type ContextSources, loadTurnContext } from './context.ts';
import { startDeadline } from './deadline.ts';
import type { ChatMessage, Passage, Source, Usage } from './messages.ts';
import type { ChatModel, EventSink, InferenceSettings, MessageOutbox, MessageWriter } from './ports.ts';
import { ModelError } from './ports.ts';
import { buildPrompt, buildTranscriptPrompt } from './prompt.ts';
import type { TurnCacheStates, TurnErrorCode, TurnEvent, TurnTimings } from './turn-events.ts';

interface TurnSettings extends ContextSettings {
  modelTimeoutMs: number;
}

export interface TurnDeps extends ContextSources {
  outbox: MessageOutbox;
  writer: MessageWriter;
  model: ChatModel;
  settings: TurnSettings;
  newId(): string;
  clock(): Date;
  /** A stable key for the user that does not reveal the user id (for the model's invocation logs). */
  userKey(userId: string): string;
}

export interface TurnInput {
  userId: string;
  sessionId: string;
  isNewSession: boolean;
  /** The new user message; `undefined` regenerates the answer to the last stored one. */
  message: string | undefined;
  /** The client's id for the message, kept on the stored user message. */
  clientMessageId?: string | undefined;
  useRag: boolean;
  /** `now()` when the request reached the handler. */
  startedAt: number;
  /** Aborts when someone asks this turn to stop: the answer so far is kept with stop reason `stopped`. */
  stop?: AbortSignal | undefined;
  /** The model that answers (one the deployment allows) and the client's settings for it. */
  model?: { id: string; inference: InferenceSettings } | undefined;
  /**
   * Stateless: the client's instructions and earlier turns are the conversation. Nothing of the session
   * is read or stored; the question is `message`.
   */
  transcript?: Transcript | undefined;
}

export interface Transcript {
  instructions: string[];
  turns: Array<{ role: 'user' | 'assistant'; content: string }>;
}

/** The stop reason of an answer a user stopped; what was said so far is kept, never shown as complete. */
const STOPPED = 'stopped';

export interface TurnReport {
  userId: string;
  sessionId: string;
  outcome: 'done' | 'error' | 'client_gone';
  errorCode?: TurnErrorCode;
  timings: TurnTimings;
  cache: TurnCacheStates;
  usage: Usage;
  retrievalFailed: boolean;
  /** Every write the turn started; the caller awaits it after the stream ended. */
  background: Promise<BackgroundReport>;
}

const toSource = ({ text: _text, ...source }: Passage): Source => source;
const round = (ms: number) => Math.round(ms * 100) / 100;

const ERROR_MESSAGES: Record<TurnErrorCode, string> = {
  throttled: 'The model is busy right now. Please retry in a moment.',
  model_error: 'The model could not complete the answer.',
  timeout: 'The answer took too long and was stopped.',
  internal: 'Something went wrong while answering.',
  nothing_to_regenerate: 'This conversation has no question to answer again.',
};

class NothingToRegenerate extends Error {
  override name = 'NothingToRegenerate';
}

function classify(error: unknown, timedOut: boolean): TurnErrorCode {
  if (timedOut) return 'timeout';
  if (error instanceof NothingToRegenerate) return 'nothing_to_regenerate';
  return error instanceof ModelError ? error.code : 'internal';
}

/** The last question of the stored history, what came before it, and the answer a regeneration replaces. */
function splitForRegenerate(history: ChatMessage[]) {
  const index = history.findLastIndex((m) => m.role === 'user');
  if (index < 0) return undefined;
  const replaced = history.slice(index + 1).findLast((m) => m.role === 'assistant');
  return {
    question: history[index]?.content ?? '',
    before: history.slice(0, index),
    replaces: replaced?.messageId,
  };
}

/** The provider's error name and message (AWS error texts carry no user content); never the prompt. */
function describeCause(error: unknown) {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return cause instanceof Error ? { name: cause.name, message: cause.message } : { name: typeof cause };
}

/**
 * One chat turn: `session_id` before any I/O, context loaded in parallel with per-leg deadlines,
 * model tokens forwarded as they arrive, every write started off the critical path and returned
 * as `background` for the caller to await once the stream has ended.
 */
export async function runTurn(deps: TurnDeps, input: TurnInput, sink: EventSink): Promise<TurnReport> {
  const elapsed = () => round(deps.now() - input.startedAt);
  const { sessionId, isNewSession } = input;
  let clientGone = false;
  const send = (event: TurnEvent) => {
    if (!clientGone && !sink.send(event)) clientGone = true;
    return !clientGone;
  };
  // Both ids now, user first: UUIDv7 keeps them in order, and the client learns the answer's id at once.
  const userMessageId = deps.newId();
  const assistantMessageId = deps.newId();
  send({ type: 'session_id', session_id: sessionId, message_id: assistantMessageId });
  const firstByteMs = elapsed();

  const writes = new BackgroundWrites(deps.outbox, deps.writer, deps.log);
  const userMessage: ChatMessage | undefined =
    input.message === undefined
      ? undefined
      : {
          messageId: userMessageId,
          sessionId,
          userId: input.userId,
          ...(input.clientMessageId ? { clientMessageId: input.clientMessageId } : {}),
          role: 'user',
          content: input.message,
          createdAt: deps.clock().toISOString(),
        };
  const stateless = input.transcript !== undefined;
  if (userMessage && !stateless) writes.saveMessage(userMessage);

  const { conversation, retrieved } = await loadTurnContext(deps, writes, {
    userId: input.userId,
    sessionId,
    isNewSession,
    stateless,
    currentMessageId: userMessageId,
    question: input.message,
    useRag: input.useRag,
  });
  const regenerated = userMessage ? undefined : splitForRegenerate(conversation.history);
  const cache: TurnCacheStates = {
    profile: conversation.profileState,
    history: conversation.historyState,
    rag: retrieved.state,
  };
  const timings: TurnTimings = {
    first_byte_ms: firstByteMs,
    context_ms: round(conversation.ms),
    rag_ms: round(retrieved.ms),
    model_first_token_ms: 0,
    model_latency_ms: 0,
    total_ms: 0,
  };
  const sources = retrieved.passages.map(toSource);
  if (sources.length > 0) send({ type: 'sources', sources });

  const cancel = new AbortController();
  const deadline = startDeadline(deps.settings.modelTimeoutMs, 'model stream');
  const stop = input.stop ?? new AbortController().signal;
  const modelStartedAt = deps.now();
  let answer = '';
  let stopReason: string | undefined;
  let usage: Usage = { input_tokens: 0, output_tokens: 0 };
  let failure: TurnErrorCode | undefined;
  const question = input.message ?? regenerated?.question;
  let promptChars = 0;
  try {
    if (question === undefined) throw new NothingToRegenerate();
    const { system, messages } = input.transcript
      ? buildTranscriptPrompt({ ...input.transcript, passages: retrieved.passages, question })
      : buildPrompt({
          profile: conversation.profile,
          passages: retrieved.passages,
          history: regenerated?.before ?? conversation.history,
          question,
          historyLimit: deps.settings.historyLimit,
        });
    promptChars = system.length + messages.reduce((sum, m) => sum + m.content.length, 0);
    const events = deps.model.stream({
      modelId: input.model?.id,
      inference: input.model?.inference,
      system,
      messages,
      signal: AbortSignal.any([cancel.signal, deadline.signal, stop]),
      metadata: { user_key: deps.userKey(input.userId), session_id: sessionId },
    });
    for await (const event of events) {
      // Whatever the provider still delivers after a stop is not part of the answer.
      if (stop.aborted) break;
      if (event.type === 'text') {
        if (answer === '') {
          timings.model_first_token_ms = elapsed();
          timings.model_latency_ms = round(deps.now() - modelStartedAt);
        }
        answer += event.text;
        if (!send({ type: 'token', text: event.text })) {
          cancel.abort();
          break;
        }
      } else if (event.type === 'stop') {
        stopReason = event.stopReason;
      } else {
        usage = {
          input_tokens: event.inputTokens,
          output_tokens: event.outputTokens,
          ...(event.cacheReadTokens ? { cache_read_input_tokens: event.cacheReadTokens } : {}),
          ...(event.cacheWriteTokens ? { cache_write_input_tokens: event.cacheWriteTokens } : {}),
        };
      }
    }
    if (stop.aborted) stopReason = STOPPED;
    if (!clientGone && (deadline.expired || stopReason === undefined)) {
      throw new ModelError(deadline.expired ? 'timeout' : 'model_error', 'The model stream ended early.');
    }
  } catch (error) {
    if (stop.aborted && !deadline.expired) {
      stopReason = STOPPED;
    } else {
      failure = classify(error, deadline.expired);
      deps.log.error('turn failed after streaming started', { code: failure, cause: describeCause(error) });
    }
  } finally {
    deadline.clear();
  }

  // A stopped stream never reaches the model's usage report: estimate it (about 4 characters a token)
  // so that what a stop saves is still charged and visible.
  if (stopReason === STOPPED && usage.input_tokens === 0 && usage.output_tokens === 0) {
    usage = { input_tokens: Math.ceil(promptChars / 4), output_tokens: Math.ceil(answer.length / 4) };
  }

  // One finish path: what is remembered and saved depends only on how the model part ended.
  const answered = failure === undefined && !clientGone;
  const assistantMessage: ChatMessage | undefined = answered
    ? {
        messageId: assistantMessageId,
        sessionId,
        userId: input.userId,
        role: 'assistant',
        content: answer,
        createdAt: deps.clock().toISOString(),
        stopReason: stopReason ?? 'end_turn',
        usage,
        ...(sources.length > 0 ? { sources } : {}),
        ...(regenerated?.replaces ? { replaces: regenerated.replaces } : {}),
      }
    : undefined;
  if (!stateless) {
    rememberTurn(deps, writes, {
      userId: input.userId,
      sessionId,
      isNewSession,
      historyReady: conversation.historyReady,
      messages: [userMessage, assistantMessage].filter((m) => m !== undefined),
    });
    if (assistantMessage) writes.saveMessage(assistantMessage);
  }
  timings.total_ms = elapsed();
  if (failure) send({ type: 'error', code: failure, message: ERROR_MESSAGES[failure] });
  else if (assistantMessage)
    send({
      type: 'done',
      message_id: assistantMessage.messageId,
      stop_reason: assistantMessage.stopReason ?? 'end_turn',
      usage,
      timings,
      cache,
    });
  return {
    userId: input.userId,
    sessionId,
    outcome: failure ? 'error' : clientGone ? 'client_gone' : 'done',
    ...(failure ? { errorCode: failure } : {}),
    timings,
    cache,
    usage,
    retrievalFailed: retrieved.failed,
    background: writes.settle(),
  };
}

/**
 * Appends the turn to the cached history so the next turn sees it before the consumer saved it. A new
 * session's list is written whole; an existing one is appended only once it is known to be complete.
 */
function rememberTurn(
  deps: TurnDeps,
  writes: BackgroundWrites,
  turn: {
    userId: string;
    sessionId: string;
    isNewSession: boolean;
    historyReady: Promise<boolean>;
    messages: ChatMessage[];
  },
) {
  const cache = deps.cache;
  if (!cache) return;
  if (turn.isNewSession) {
    writes.cacheWrite('history store', cache.storeHistory(turn.userId, turn.sessionId, turn.messages));
    return;
  }
  const appended = turn.historyReady.then((ready) =>
    ready ? cache.appendHistory(turn.userId, turn.sessionId, turn.messages) : undefined,
  );
  writes.cacheWrite('history append', appended);
}
