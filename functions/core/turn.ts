import { type AnswerEnd, ClientChannel, type StreamedAnswer, streamAnswer } from './answer-stream.ts';
import { type HistoryAttachmentBudget, loadHistoryAttachments } from './attachments.ts';
import { BackgroundWrites } from './background-writes.ts';
import { type Placement, placeQuestion, type Regeneration, regenerationOf } from './branches.ts';
import { type ContextSettings, type ContextSources, loadTurnContext, type TurnContext } from './context.ts';
import type { AttachmentContent, ChatMessage, Passage, Source } from './messages.ts';
import type {
  AttachmentStore,
  ChatModel,
  EventSink,
  InferenceSettings,
  MessageOutbox,
  MessageWriter,
  UsageRecorder,
} from './ports.ts';
import { buildPrompt, buildTranscriptPrompt } from './prompt.ts';
import type { TurnCacheStates, TurnErrorCode, TurnEvent, TurnReport, TurnTimings } from './turn-events.ts';

interface TurnSettings extends ContextSettings {
  modelTimeoutMs: number;
  /** Which earlier attachments are sent to the model again; the deadline is `storeTimeoutMs`. */
  historyAttachments?: Omit<HistoryAttachmentBudget, 'timeoutMs'>;
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
  /** Where attachments are kept; `undefined`: this deployment stores none (stateless turns may still send them). */
  attachments?: AttachmentStore | undefined;
  /** Counts a stateless turn's tokens (nothing else of it is stored). */
  usage?: UsageRecorder | undefined;
}

export interface TurnInput {
  userId: string;
  sessionId: string;
  isNewSession: boolean;
  /** The new user message; `undefined` regenerates the answer to the last stored one. */
  message: string | undefined;
  /** The new message's files, already checked (type, size, signature) at the edge. */
  attachments?: AttachmentContent[] | undefined;
  /** The client's id for the message, kept on the stored user message. */
  clientMessageId?: string | undefined;
  /**
   * Where the question goes in the conversation's versions: after this message (a stored id, or a client's
   * id for a question), `null` at the start; `undefined`: beside an earlier question with the same client
   * id (an edit), else after the newest message.
   */
  parentRef?: string | null | undefined;
  /** Regenerating: the answer the new one is a version of (its question is answered again). */
  regenerateOf?: string | undefined;
  /**
   * The same client id with new text is an edit (a new version), not a retry: the AI SDK and native
   * routes. The OpenAI route leaves it unset: its `Idempotency-Key` keeps meaning a retry.
   */
  editable?: boolean | undefined;
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
  transcript?:
    | {
        instructions: string[];
        turns: Array<{ role: 'user' | 'assistant'; content: string; files?: AttachmentContent[] }>;
      }
    | undefined;
}

const toSource = ({ text: _text, ...source }: Passage): Source => source;
const round = (ms: number) => Math.round(ms * 100) / 100;

export const ERROR_MESSAGES: Record<TurnErrorCode, string> = {
  throttled: 'The model is busy right now. Please retry in a moment.',
  model_error: 'The model could not complete the answer.',
  timeout: 'The answer took too long and was stopped.',
  internal: 'Something went wrong while answering.',
  nothing_to_regenerate: 'This conversation has no question to answer again.',
  not_saved: 'The answer could not be saved. Send your message again.',
};

/**
 * One chat turn: `session_id` before any I/O, context loaded in parallel with per-leg deadlines,
 * model tokens forwarded as they arrive, every write started off the critical path and returned
 * as `background` for the caller to await once the stream has ended.
 */
export async function runTurn(deps: TurnDeps, input: TurnInput, sink: EventSink): Promise<TurnReport> {
  const elapsed = () => round(deps.now() - input.startedAt);
  const { userId, sessionId, isNewSession } = input;
  const client = new ClientChannel(sink);
  // Both ids now, user first: UUIDv7 keeps them in order, and the client learns the answer's id at once.
  const userMessageId = deps.newId();
  const assistantMessageId = deps.newId();
  client.send({ type: 'session_id', session_id: sessionId, message_id: assistantMessageId });
  const firstByteMs = elapsed();

  const writes = new BackgroundWrites(deps.outbox, deps.writer, deps.log);
  const stateless = input.transcript !== undefined;
  const placedAtOnce = isNewSession || stateless ? { parentId: null } : placeAtOnce(input);
  const asked =
    input.message === undefined ? undefined : userMessage(deps, input, userMessageId, placedAtOnce);
  // The files go to the store first; the queued message carries only their keys.
  let storedQuestion: Promise<ChatMessage> | undefined;
  const save = (message: ChatMessage) => {
    storedQuestion = withStoredAttachments(deps, message, input);
    writes.saveMessage(storedQuestion);
  };
  const context = await loadTurnContext(deps, writes, contextRequest(input, userMessageId));
  const { conversation, retrieved } = context;
  const { question, placement, regenerated } = placeTurn(input, conversation.history, {
    asked,
    queued: placedAtOnce !== undefined,
    save,
  });
  const sources = retrieved.passages.map(toSource);
  if (sources.length > 0) client.send({ type: 'sources', sources });

  // A question placed by the request alone is queued once the model request is on its way: nothing
  // before it on the critical path (one placed from the history was queued when that was read).
  const saveQuestion = asked && placedAtOnce && !stateless ? () => save(asked) : undefined;
  const answer = await answerQuestion(deps, input, context, { regenerated, placement, saveQuestion }, client);
  const timings = timingsOf(input, firstByteMs, context, answer);
  const cache = cacheStatesOf(context);
  const parentId = question?.messageId ?? regenerated?.question.messageId ?? null;
  const reply =
    answer.end.kind === 'answered'
      ? assistantMessage(deps, input, { id: assistantMessageId, answer, sources, regenerated, parentId })
      : undefined;
  saveTurn(deps, writes, input, {
    answer,
    storedQuestion,
    reply,
    historyReady: conversation.historyReady,
    assistantMessageId,
  });
  timings.total_ms = elapsed();
  client.send(finalEvent(answer, assistantMessageId, timings, cache));
  return {
    userId,
    sessionId,
    outcome: outcomeOf(answer.end),
    ...(answer.end.kind === 'failed' ? { errorCode: answer.end.code } : {}),
    timings,
    cache,
    usage: answer.usage,
    retrievalFailed: retrieved.failed,
    background: writes.settle(),
  };
}

const contextRequest = (input: TurnInput, currentMessageId: string) => ({
  stateless: input.transcript !== undefined,
  userId: input.userId,
  sessionId: input.sessionId,
  isNewSession: input.isNewSession,
  currentMessageId,
  question: input.message,
  regenerateOf: input.regenerateOf,
  place: placeRequest(input),
  useRag: input.useRag,
});

const cacheStatesOf = ({ conversation, retrieved }: TurnContext): TurnCacheStates => ({
  profile: conversation.profileState,
  history: conversation.historyState,
  rag: retrieved.state,
});

function timingsOf(
  input: TurnInput,
  firstByteMs: number,
  { conversation, retrieved }: TurnContext,
  answer: StreamedAnswer,
): TurnTimings {
  const firstToken = answer.firstTokenAt;
  return {
    first_byte_ms: firstByteMs,
    context_ms: round(conversation.ms),
    rag_ms: round(retrieved.ms),
    model_first_token_ms: firstToken === undefined ? 0 : round(firstToken - input.startedAt),
    model_latency_ms: firstToken === undefined ? 0 : round(firstToken - answer.modelStartedAt),
    total_ms: 0,
  };
}

/** The turn's messages to the queue and the history cache; a stateless turn writes only its usage. */
function saveTurn(
  deps: TurnDeps,
  writes: BackgroundWrites,
  input: TurnInput,
  turn: {
    answer: StreamedAnswer;
    storedQuestion: Promise<ChatMessage> | undefined;
    reply: ChatMessage | undefined;
    historyReady: TurnContext['conversation']['historyReady'];
    assistantMessageId: string;
  },
): void {
  if (input.transcript !== undefined) {
    const usage = { userId: input.userId, messageId: turn.assistantMessageId, model: input.model?.id };
    recordStatelessUsage(deps, writes, usage, turn.answer);
    return;
  }
  const { storedQuestion, reply } = turn;
  const messages = Promise.all([storedQuestion, reply]).then((all) => all.filter((m) => m !== undefined));
  rememberTurn(deps, writes, { ...input, historyReady: turn.historyReady, messages });
  if (reply) writes.saveMessage(reply);
}

/** A stateless turn stores no message, so its usage item is written here (the consumer never sees it). */
function recordStatelessUsage(
  deps: TurnDeps,
  writes: BackgroundWrites,
  turn: { userId: string; messageId: string; model: string | undefined },
  answer: StreamedAnswer,
) {
  if (!deps.usage || answer.usage.input_tokens + answer.usage.output_tokens === 0) return;
  writes.track(
    'stateless usage',
    deps.usage.recordUsage({ ...turn, createdAt: deps.clock().toISOString(), usage: answer.usage }),
  );
}

/** What places the question among the versions: the parent it names, or the message it edits. */
const placeRequest = (input: TurnInput) => ({
  parentRef: input.parentRef,
  clientMessageId: input.editable ? input.clientMessageId : undefined,
});

/**
 * The turn among the conversation's versions: a question after the message it follows (queued now if it
 * was not yet), or the question a regeneration answers again.
 */
function placeTurn(
  input: TurnInput,
  history: ChatMessage[],
  turn: { asked: ChatMessage | undefined; queued: boolean; save: (message: ChatMessage) => void },
) {
  const { asked, queued, save } = turn;
  if (!asked) {
    return {
      question: undefined,
      placement: undefined,
      regenerated: regenerationOf(history, input.regenerateOf),
    };
  }
  const placement = placeQuestion(history, placeRequest(input));
  if (queued) return { question: asked, placement, regenerated: undefined };
  const question = { ...asked, parentId: placement.parentId };
  save(question);
  return { question, placement, regenerated: undefined };
}

/**
 * The question's place when the request alone says it, so it is queued at once: the start (`null`), or
 * (no parent named, no client id that could be an edit's) after the newest message, which a message
 * without `parentId` means. A named parent is checked against the stored history first: the question
 * is placed, and queued, once that is read (still off the critical path).
 */
function placeAtOnce(input: TurnInput): { parentId?: null } | undefined {
  const { parentRef } = input;
  const clientMessageId = input.editable ? input.clientMessageId : undefined;
  if (parentRef === null) return { parentId: null };
  if (parentRef === undefined && clientMessageId === undefined) return {};
  return undefined;
}

const outcomeOf = (end: AnswerEnd): TurnReport['outcome'] =>
  end.kind === 'failed' ? 'error' : end.kind === 'client_gone' ? 'client_gone' : 'done';

/** The prompt from the context, then the model's answer; a regeneration with no stored question fails. */
async function answerQuestion(
  deps: TurnDeps,
  input: TurnInput,
  { conversation, retrieved }: TurnContext,
  branch: {
    regenerated: Regeneration | undefined;
    placement: Placement | undefined;
    saveQuestion: (() => void) | undefined;
  },
  client: ClientChannel,
): Promise<StreamedAnswer> {
  const { regenerated, placement, saveQuestion } = branch;
  const question = input.message ?? regenerated?.question.content;
  if (question === undefined) {
    deps.log.error('turn failed after streaming started', {
      code: 'nothing_to_regenerate',
      cause: { name: 'NothingToRegenerate', message: '' },
    });
    const end: AnswerEnd = { kind: 'failed', code: 'nothing_to_regenerate' };
    return {
      text: '',
      usage: { input_tokens: 0, output_tokens: 0 },
      end,
      modelStartedAt: 0,
      firstTokenAt: undefined,
    };
  }
  const historyFiles = input.transcript
    ? new Map<string, AttachmentContent[]>()
    : await loadHistoryAttachments(
        deps.attachments,
        conversation.history,
        {
          turns: deps.settings.historyAttachments?.turns ?? 0,
          bytes: deps.settings.historyAttachments?.bytes ?? 0,
          timeoutMs: deps.settings.storeTimeoutMs,
        },
        deps.log,
      );
  const questionFiles =
    input.attachments ?? (regenerated ? historyFiles.get(regenerated.question.messageId) : undefined);
  const prompt = input.transcript
    ? buildTranscriptPrompt({ ...input.transcript, passages: retrieved.passages, question, questionFiles })
    : buildPrompt({
        profile: conversation.profile,
        passages: retrieved.passages,
        // The branch the question continues, never the other versions.
        history: regenerated?.before ?? placement?.history ?? conversation.history,
        question,
        historyLimit: deps.settings.historyLimit,
        questionFiles,
        historyFiles,
      });
  return streamAnswer(
    deps,
    {
      ...prompt,
      model: input.model,
      metadata: { user_key: deps.userKey(input.userId), session_id: input.sessionId },
      stop: input.stop ?? new AbortController().signal,
      afterDispatch: saveQuestion,
    },
    client,
  );
}

function userMessage(
  deps: TurnDeps,
  input: TurnInput,
  messageId: string,
  placement: { parentId?: string | null } | undefined,
): ChatMessage {
  return {
    messageId,
    ...(placement?.parentId !== undefined ? { parentId: placement.parentId } : {}),
    sessionId: input.sessionId,
    userId: input.userId,
    ...(input.clientMessageId ? { clientMessageId: input.clientMessageId } : {}),
    role: 'user',
    content: input.message ?? '',
    createdAt: deps.clock().toISOString(),
  };
}

function assistantMessage(
  deps: TurnDeps,
  input: TurnInput,
  reply: {
    id: string;
    answer: StreamedAnswer;
    sources: Source[];
    regenerated: Regeneration | undefined;
    parentId: string | null;
  },
): ChatMessage {
  const { answer, sources, regenerated } = reply;
  return {
    messageId: reply.id,
    sessionId: input.sessionId,
    userId: input.userId,
    role: 'assistant',
    parentId: reply.parentId,
    content: answer.text,
    createdAt: deps.clock().toISOString(),
    stopReason: answer.end.kind === 'answered' ? answer.end.stopReason : 'end_turn',
    usage: answer.usage,
    ...(input.model ? { model: input.model.id } : {}),
    ...(sources.length > 0 ? { sources } : {}),
    ...(regenerated?.replaces ? { replaces: regenerated.replaces } : {}),
  };
}

/** `done` for an answer, `error` for a failure, nothing once the client is gone (it would not arrive). */
function finalEvent(
  answer: StreamedAnswer,
  messageId: string,
  timings: TurnTimings,
  cache: TurnCacheStates,
): TurnEvent {
  const { end, usage } = answer;
  if (end.kind === 'failed') return { type: 'error', code: end.code, message: ERROR_MESSAGES[end.code] };
  const stopReason = end.kind === 'answered' ? end.stopReason : 'end_turn';
  return { type: 'done', message_id: messageId, stop_reason: stopReason, usage, timings, cache };
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
    messages: Promise<ChatMessage[]>;
  },
) {
  const cache = deps.cache;
  if (!cache) return;
  if (turn.isNewSession) {
    const stored = turn.messages.then((messages) =>
      cache.storeHistory(turn.userId, turn.sessionId, messages),
    );
    writes.cacheWrite('history store', stored);
    return;
  }
  const appended = Promise.all([turn.historyReady, turn.messages]).then(([ready, messages]) =>
    ready ? cache.appendHistory(turn.userId, turn.sessionId, messages) : undefined,
  );
  writes.cacheWrite('history append', appended);
}

/**
 * The user message once its files are in the attachment store, pointing at them (key, type, name, size).
 * Started at once and awaited only by the writes that need it, so the model call never waits for it.
 */
async function withStoredAttachments(
  deps: TurnDeps,
  message: ChatMessage,
  input: TurnInput,
): Promise<ChatMessage> {
  const files = input.attachments ?? [];
  if (files.length === 0) return message;
  const store = deps.attachments;
  if (!store) throw new Error('attachments sent to a deployment without an attachment store');
  const owner = { userId: message.userId, sessionId: message.sessionId, messageId: message.messageId };
  const attachments = await Promise.all(files.map((file, index) => store.put(owner, index, file)));
  return { ...message, attachments };
}
