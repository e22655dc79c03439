import { createHash } from 'node:crypto';
import { errorName } from './background-writes.ts';
import { dependencyUnavailable, RequestRejected } from './errors.ts';
import { checkRoute, type UserLimits } from './limits.ts';
import type {
  EventSink,
  TurnJournal,
  TurnLog,
  TurnObserver,
  TurnRegistry,
  TurnReplay,
  WireSink,
} from './ports.ts';
import { ERROR_MESSAGES, runTurn, type TurnDeps, type TurnInput } from './turn.ts';
import type { TurnAdmission } from './turn-admission.ts';
import type { BackgroundReport, TurnEvent, TurnReport } from './turn-events.ts';

export interface ChatTurnDeps {
  turn: TurnDeps;
  /** Charges tokens and limits the costly routes (resume, stop). */
  limits: UserLimits;
  /** Per-user limits, the stream cap, the session lock and idempotency in one round trip; resume's slot. */
  admission: Pick<TurnAdmission, 'admit' | 'follow'>;
  /** Stop; `undefined` without a cache (turns still run, with this environment's admission). */
  registry: Pick<TurnRegistry, 'requestStop'> | undefined;
  observer: TurnObserver;
  log: TurnLog & { info(message: string, attributes?: Record<string, unknown>): void };
}

export interface TurnRequest {
  userId: string;
  /** `undefined` starts a new session. */
  sessionId: string | undefined;
  /** `undefined` regenerates the answer to the last stored question. */
  message: string | undefined;
  clientMessageId: string | undefined;
  /** Where the question goes among the conversation's versions (see `TurnInput`). */
  parentRef?: string | null | undefined;
  /** Regenerating: the answer the new one is a version of. */
  regenerateOf?: string | undefined;
  /** The same client id with new text is an edit, not a retry (see `TurnInput.editable`). */
  editable?: boolean | undefined;
  useRag: boolean;
  /** Monotonic time the request reached the handler. */
  startedAt: number;
  /** How long a retry may follow the turn it attaches to (what is left of the invocation). */
  replayBudgetMs: number;
  model?: TurnInput['model'];
  transcript?: TurnInput['transcript'];
  attachments?: TurnInput['attachments'];
}

/** An admitted turn: its session, and `deliver`, which writes it to a wire format and finishes it. */
export interface StartedTurn {
  sessionId: string;
  /** Resolves once the turn is finished: body ended, session freed, tokens charged, writes settled. */
  deliver(wire: WireSink): Promise<void>;
}

/**
 * Numbers a turn's events, keeps them in the turn's journal for resume (when there is one), and
 * hands them to the wire format the route chose.
 */
class NumberedSink implements EventSink {
  readonly #wire: WireSink;
  readonly #journal: TurnJournal | undefined;
  #next = 0;

  constructor(wire: WireSink, journal?: TurnJournal) {
    this.#wire = wire;
    this.#journal = journal;
  }

  send(event: TurnEvent): boolean {
    const id = this.#next++;
    this.#journal?.append({ id, event });
    return this.#wire.send(event, id);
  }
}

/**
 * Holds a turn's `done` until its messages are known to be saved: a turn the queue and the direct
 * write both lost ends with a `not_saved` error the client can act on (send again), never with `done`.
 */
class SavedBeforeDoneSink implements EventSink {
  readonly #inner: EventSink;
  #done: TurnEvent | undefined;

  constructor(inner: EventSink) {
    this.#inner = inner;
  }

  send(event: TurnEvent): boolean {
    if (event.type !== 'done') return this.#inner.send(event);
    this.#done = event;
    return true;
  }

  /** Sends the held `done`, or in its place the error saying the answer was not saved; `true` if one was held. */
  settle(saved: boolean): boolean {
    const done = this.#done;
    if (!done) return false;
    this.#done = undefined;
    this.#inner.send(saved ? done : { type: 'error', code: 'not_saved', message: ERROR_MESSAGES.not_saved });
    return true;
  }
}

/**
 * The id a message is admitted under: the client's id and a digest of its text. The same id with the
 * same text is a retry (it follows or replays that turn); the same id with new text is an edit (the AI
 * SDK's `sendMessage({ text, messageId })`), which answers the new text as a new version.
 */
function admissionKey(clientMessageId: string | undefined, text: string | undefined) {
  if (clientMessageId === undefined || text === undefined) return clientMessageId;
  return `${clientMessageId}.${createHash('sha256').update(text).digest('base64url').slice(0, 16)}`;
}

const CRASHED: TurnEvent = {
  type: 'error',
  code: 'internal',
  message: 'Something went wrong while answering.',
};

/**
 * The chat turn use case, from admission to the last write: limits and the session lock, the turn
 * itself, then its finish (journal closed, body ended, tokens charged, background writes awaited,
 * outcome logged and published). Resume and stop of a running turn go through here too.
 */
export class ChatTurns {
  readonly #deps: ChatTurnDeps;

  constructor(deps: ChatTurnDeps) {
    this.#deps = deps;
  }

  /**
   * Refuses with `RequestRejected` (limit, busy, already answered, or `unavailable` when the registry
   * answered the claim too late); otherwise the turn is ready to deliver.
   */
  async start(request: TurnRequest): Promise<StartedTurn> {
    // The one admission call site: per-user limits, stream cap, session lock and idempotency together.
    const key = request.editable
      ? admissionKey(request.clientMessageId, request.message)
      : request.clientMessageId;
    const admission = await this.#deps.admission
      .admit({ ...request, clientMessageId: key })
      .catch((error: unknown) => {
        if (error instanceof RequestRejected && error.kind === 'limited')
          this.#deps.observer.countLimitRejection();
        throw error;
      });
    if (admission.kind === 'attach') {
      const { replay } = admission;
      return {
        sessionId: admission.sessionId,
        deliver: (wire) => this.#follow(replay, -1, wire, request.replayBudgetMs),
      };
    }
    const input: TurnInput = {
      ...request,
      sessionId: admission.sessionId,
      isNewSession: admission.isNewSession,
      stop: admission.journal?.stopSignal,
    };
    return { sessionId: admission.sessionId, deliver: (wire) => this.#run(input, admission.journal, wire) };
  }

  /** The running or just-finished turn of a session from after `afterId`, or `undefined` when there is none. */
  async resume(
    userId: string,
    sessionId: string,
    afterId: number,
    budgetMs: number,
  ): Promise<{ deliver(wire: WireSink): Promise<void> } | undefined> {
    await checkRoute(this.#deps.limits, userId, 'resume');
    // A follower takes one of the user's stream slots until the turn's events end.
    const replay = await this.#deps.admission.follow(userId, sessionId);
    if (!replay) return undefined;
    return { deliver: (wire) => this.#follow(replay, afterId, wire, budgetMs) };
  }

  /** `true` when a running turn was asked to stop, `false` when none was running. */
  async stop(userId: string, sessionId: string): Promise<boolean> {
    await checkRoute(this.#deps.limits, userId, 'stop');
    const { registry } = this.#deps;
    if (!registry) {
      throw new RequestRejected(
        'unavailable',
        'stop_unavailable',
        'Stopping needs the cache, which this deployment does not have.',
      );
    }
    return registry.requestStop(userId, sessionId).catch((error: unknown) => {
      this.#deps.log.warn('turn registry unavailable for stop', { error: errorName(error) });
      throw dependencyUnavailable('stop_unavailable', 'The turn registry is unreachable. Try again shortly.');
    });
  }

  async #run(input: TurnInput, journal: TurnJournal | undefined, wire: WireSink): Promise<void> {
    const sink = new SavedBeforeDoneSink(new NumberedSink(wire, journal));
    let report: TurnReport;
    try {
      report = await runTurn(this.#deps.turn, input, sink);
    } catch (error) {
      this.#deps.log.error('turn crashed', { error: errorName(error) });
      sink.send(CRASHED);
      await journal?.finish();
      wire.end();
      return;
    }
    // `done` only once the messages are saved (queued or written): a lost turn ends with an error instead.
    const background = await report.background;
    const lost = sink.settle(background.failedSaves === 0) && background.failedSaves > 0;
    // Frees the session before the client sees the end, so its next message is never refused as busy.
    await journal?.finish();
    wire.end();
    await this.#settle(lost ? { ...report, outcome: 'error', errorCode: 'not_saved' } : report, background);
  }

  /** After the body ended: charge the tokens, log and publish. */
  async #settle(report: TurnReport, background: BackgroundReport): Promise<void> {
    const { limits, log, observer } = this.#deps;
    const tokens = report.usage.input_tokens + report.usage.output_tokens;
    await limits
      .charge(report.userId, tokens)
      .catch((error: unknown) => log.warn('tokens not charged', { error: errorName(error) }));
    log.info('turn finished', {
      outcome: report.outcome,
      errorCode: report.errorCode,
      timings: report.timings,
      cache: report.cache,
      usage: report.usage,
      retrievalFailed: report.retrievalFailed,
      ...background,
    });
    observer.publishTurn(report, background);
  }

  /** Writes a turn's journaled events after `afterId` and follows it to its end, within the budget. */
  async #follow(replay: TurnReplay, afterId: number, wire: WireSink, budgetMs: number): Promise<void> {
    try {
      for await (const { id, event } of replay.events(afterId, AbortSignal.timeout(budgetMs))) {
        wire.send(event, id);
      }
    } catch (error) {
      this.#deps.log.warn('resume ended early', { error: errorName(error) });
    }
    wire.end();
  }
}
