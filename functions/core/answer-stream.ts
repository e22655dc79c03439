import { startDeadline } from './deadline.ts';
import { ModelError } from './errors.ts';
import { estimateTokens } from './limits.ts';
import type { Usage } from './messages.ts';
import type { ChatModel, EventSink, InferenceSettings, ModelEvent, TurnLog } from './ports.ts';
import { type StopReason, type TurnErrorCode, type TurnEvent, toStopReason } from './turn-events.ts';

/** The turn's side of the client: sends until the sink first refuses, then remembers the client left. */
export class ClientChannel {
  readonly #sink: EventSink;
  #gone = false;

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  get gone(): boolean {
    return this.#gone;
  }

  send(event: TurnEvent): boolean {
    if (!this.#gone && !this.#sink.send(event)) this.#gone = true;
    return !this.#gone;
  }
}

/** How the model part of a turn ended; only an `answered` answer is remembered and saved. */
export type AnswerEnd =
  | { kind: 'answered'; stopReason: StopReason }
  | { kind: 'failed'; code: TurnErrorCode }
  | { kind: 'client_gone' };

export interface StreamedAnswer {
  text: string;
  usage: Usage;
  end: AnswerEnd;
  /** Monotonic times of the model call and of its first token (`undefined` when none came). */
  modelStartedAt: number;
  firstTokenAt: number | undefined;
}

export interface AnswerDeps {
  model: ChatModel;
  log: TurnLog;
  settings: { modelTimeoutMs: number };
  now(): number;
}

export interface AnswerRequest {
  /** The chosen model and the client's settings; the deployment's defaults when absent. */
  model?: { id: string; inference: InferenceSettings } | undefined;
  system: string;
  messages: Array<{ role: 'user' | 'assistant'; content: string }>;
  metadata: Record<string, string>;
  /** Aborts when someone asks this turn to stop: the answer so far is kept with stop reason `stopped`. */
  stop: AbortSignal;
  /** Work that must not delay the model request (the question's queue send): runs once it is on its way. */
  afterDispatch?: (() => void) | undefined;
}

const NO_USAGE: Usage = { input_tokens: 0, output_tokens: 0 };

const toUsage = (event: Extract<ModelEvent, { type: 'usage' }>): Usage => ({
  input_tokens: event.inputTokens,
  output_tokens: event.outputTokens,
  ...(event.cacheReadTokens ? { cache_read_input_tokens: event.cacheReadTokens } : {}),
  ...(event.cacheWriteTokens ? { cache_write_input_tokens: event.cacheWriteTokens } : {}),
});

function classify(error: unknown, timedOut: boolean): TurnErrorCode {
  if (timedOut) return 'timeout';
  return error instanceof ModelError ? error.code : 'internal';
}

/**
 * The provider's error name and message (AWS error texts carry no user content); never the prompt.
 * A stream that ended without a stop reason threw nothing: it is described as the model error it is.
 */
function describeCause(error: unknown) {
  if (error === undefined) return { name: 'ModelError', message: 'The model stream ended early.' };
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return cause instanceof Error ? { name: cause.name, message: cause.message } : { name: typeof cause };
}

/** What the model said, as it arrived; tracked apart from how the stream then ended. */
class AnswerText {
  text = '';
  stopReason: StopReason | undefined;
  usage: Usage = NO_USAGE;
  firstTokenAt: number | undefined;
}

/**
 * Streams the model's answer to the client under one deadline. Three things end it early: the user's
 * stop (the text so far is kept), the client leaving (the model call is cancelled) and the deadline.
 */
export async function streamAnswer(
  deps: AnswerDeps,
  request: AnswerRequest,
  client: ClientChannel,
): Promise<StreamedAnswer> {
  const cancel = new AbortController();
  const deadline = startDeadline(deps.settings.modelTimeoutMs, 'model stream');
  const { stop } = request;
  const modelStartedAt = deps.now();
  const answer = new AnswerText();
  let end: AnswerEnd;
  let cause: unknown;
  let settle: (() => void) | undefined;
  try {
    const events = dispatched(
      deps.model.stream({
        modelId: request.model?.id,
        inference: request.model?.inference,
        system: request.system,
        messages: request.messages,
        signal: AbortSignal.any([cancel.signal, deadline.signal, stop]),
        metadata: request.metadata,
      }),
      request.afterDispatch,
    );
    settle = events.settle;
    await forward(events.stream, answer, { client, stop, cancel, now: deps.now });
    end = endOf(answer, { clientGone: client.gone, stopped: stop.aborted, timedOut: deadline.expired });
  } catch (error) {
    cause = error;
    end =
      stop.aborted && !deadline.expired
        ? { kind: 'answered', stopReason: 'stopped' }
        : { kind: 'failed', code: classify(error, deadline.expired) };
  } finally {
    deadline.clear();
    (settle ?? request.afterDispatch)?.();
  }
  if (end.kind === 'failed') {
    deps.log.error('turn failed after streaming started', { code: end.code, cause: describeCause(cause) });
  }
  return {
    text: answer.text,
    usage: cutShort(end, stop.aborted) ? estimatedUsage(answer, request) : answer.usage,
    end,
    modelStartedAt,
    firstTokenAt: answer.firstTokenAt,
  };
}

/**
 * Asks for the first event at once, which runs the adapter up to its request, and leaves `then` to the
 * next turn of the event loop, so the request's own work goes first. `settle` runs `then` now if the
 * stream ended sooner (a write must start before the turn hands its writes over).
 */
function dispatched<T>(events: AsyncIterable<T>, then: (() => void) | undefined) {
  const iterator = events[Symbol.asyncIterator]();
  let first: Promise<IteratorResult<T>> | undefined = iterator.next();
  let pending = then;
  const run = () => {
    const work = pending;
    pending = undefined;
    work?.();
  };
  const timer = setImmediate(run);
  const stream: AsyncIterable<T> = {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        const next = first ?? iterator.next();
        first = undefined;
        return next;
      },
      return: async (value?: unknown) => (await iterator.return?.(value)) ?? { done: true, value },
    }),
  };
  return {
    stream,
    settle: () => {
      clearImmediate(timer);
      run();
    },
  };
}

async function forward(
  events: AsyncIterable<ModelEvent>,
  answer: AnswerText,
  run: { client: ClientChannel; stop: AbortSignal; cancel: AbortController; now: () => number },
) {
  for await (const event of events) {
    // Whatever the provider still delivers after a stop is not part of the answer.
    if (run.stop.aborted) break;
    if (event.type === 'stop') answer.stopReason = toStopReason(event.stopReason);
    else if (event.type === 'usage') answer.usage = toUsage(event);
    else {
      answer.firstTokenAt ??= run.now();
      answer.text += event.text;
      if (!run.client.send({ type: 'token', text: event.text })) {
        run.cancel.abort();
        break;
      }
    }
  }
}

/** How a stream that did not throw ended; a stream with no stop reason was cut off by the provider. */
function endOf(
  answer: AnswerText,
  state: { clientGone: boolean; stopped: boolean; timedOut: boolean },
): AnswerEnd {
  if (state.clientGone) return { kind: 'client_gone' };
  if (state.timedOut) return { kind: 'failed', code: 'timeout' };
  if (state.stopped) return { kind: 'answered', stopReason: 'stopped' };
  if (answer.stopReason === undefined) return { kind: 'failed', code: 'model_error' };
  return { kind: 'answered', stopReason: answer.stopReason };
}

/** A stopped, abandoned or failed stream; a throttled request was never processed, so it costs nothing. */
const cutShort = (end: AnswerEnd, stopped: boolean) =>
  stopped || end.kind === 'client_gone' || (end.kind === 'failed' && end.code !== 'throttled');

/**
 * A stream cut short never reaches the model's usage report: estimate it by characters (not UTF-16
 * length or spaces, which undercount non-Latin text), so that no stopped, abandoned or failed turn is free.
 */
function estimatedUsage(answer: AnswerText, request: AnswerRequest): Usage {
  if (answer.usage.input_tokens !== 0 || answer.usage.output_tokens !== 0) return answer.usage;
  const prompt = [request.system, ...request.messages.map((m) => m.content)];
  return {
    input_tokens: prompt.reduce((sum, text) => sum + estimateTokens(text), 0),
    output_tokens: estimateTokens(answer.text),
  };
}
