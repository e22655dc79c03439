import { errorName } from './background-writes.ts';
import { RequestRejected } from './errors.ts';
import { limitReached, type UserLimits } from './limits.ts';
import {
  AdmissionUncertain,
  type TurnJournal,
  type TurnLog,
  type TurnRegistry,
  type TurnReplay,
} from './ports.ts';

export type Admission =
  /** Run a new turn; without the shared registry the journal is this environment's (no resume, no stop). */
  | { kind: 'run'; sessionId: string; isNewSession: boolean; journal: TurnJournal | undefined }
  /** A retry of a message already taken: follow (or replay) that turn instead of answering twice. */
  | { kind: 'attach'; sessionId: string; replay: TurnReplay };

export interface AdmissionRequest {
  userId: string;
  sessionId: string | undefined;
  clientMessageId: string | undefined;
}

interface AdmissionSettings {
  /** Turns and followers one user may have open at once; 0 turns the cap off. */
  maxConcurrentPerUser: number;
  /** The longest a follower may hold its stream slot (the invocation's time limit). */
  followHoldMs: number;
  /** Client message ids remembered per environment while the registry is unreachable. */
  recentMessageIds: number;
}

export interface AdmissionDeps {
  registry: TurnRegistry | undefined;
  limits: UserLimits;
  log: TurnLog;
  newId: () => string;
  settings: AdmissionSettings;
}

const busy = () =>
  new RequestRejected(
    'conflict',
    'turn_in_progress',
    'Another answer is being written in this conversation. Stop it or wait for it to finish.',
  );
const unavailable = () =>
  new RequestRejected('unavailable', 'admission_unavailable', 'Busy right now. Retry in 1 s.', {
    retry_after_seconds: 1,
  });
const alreadyAnswered = () =>
  new RequestRejected(
    'conflict',
    'message_already_answered',
    'This message was answered already; read the answer from the conversation.',
  );

/**
 * Decides a turn before the first byte: per-user limits, the stream cap, one turn per session and one
 * turn per client message id, in one round trip to the shared registry. When the registry is
 * unreachable (or not configured), this environment's memory enforces the same rules for the
 * requests it sees; when the registry is reachable but too slow to answer, the claim is released
 * and the request gets 503, never a turn without a lock.
 */
export class TurnAdmission {
  readonly #deps: AdmissionDeps;
  readonly #memory: MemoryAdmission;

  constructor(deps: AdmissionDeps) {
    this.#deps = deps;
    this.#memory = new MemoryAdmission(deps.limits, deps.settings);
  }

  async admit(request: AdmissionRequest): Promise<Admission> {
    const { registry, log, newId } = this.#deps;
    const isNewSession = request.sessionId === undefined;
    const sessionId = request.sessionId ?? newId();
    if (!registry)
      return this.#memory.admit(request.userId, sessionId, isNewSession, request.clientMessageId);
    const turnId = newId();
    let claim: Awaited<ReturnType<TurnRegistry['claim']>>;
    try {
      claim = await registry.claim(request.userId, sessionId, request.clientMessageId, turnId);
    } catch (error) {
      if (error instanceof AdmissionUncertain) {
        log.warn('turn admission timed out; the claim was released', { error: errorName(error) });
        throw unavailable();
      }
      log.warn('turn registry unreachable: admitting from this environment', { error: errorName(error) });
      return this.#memory.admit(request.userId, sessionId, isNewSession, request.clientMessageId);
    }
    if (claim.kind === 'busy') throw busy();
    if (claim.kind === 'limited') throw limitReached(claim.limit, claim.retryAfterSeconds);
    if (claim.kind === 'claimed') {
      return {
        kind: 'run',
        sessionId,
        isNewSession,
        journal: registry.journal(request.userId, sessionId, claim.turnId),
      };
    }
    const followed = await registry
      .follow(request.userId, sessionId, turnId, {
        turnId: claim.turnId,
        holdMs: this.#deps.settings.followHoldMs,
      })
      .catch((error: unknown) => {
        log.warn('turn registry unavailable for an attach', { error: errorName(error) });
        throw unavailable();
      });
    if (followed.kind === 'limited') throw limitReached('concurrent_streams', followed.retryAfterSeconds);
    if (followed.kind === 'none') throw alreadyAnswered();
    return { kind: 'attach', sessionId, replay: followed.replay };
  }

  /** A resume of the session's running or just-finished turn; it takes a stream slot like a turn. */
  async follow(userId: string, sessionId: string): Promise<TurnReplay | undefined> {
    const { registry, log, newId, settings } = this.#deps;
    if (!registry) return undefined;
    let followed: Awaited<ReturnType<TurnRegistry['follow']>>;
    try {
      followed = await registry.follow(userId, sessionId, newId(), { holdMs: settings.followHoldMs });
    } catch (error) {
      log.warn('turn registry unavailable for resume', { error: errorName(error) });
      return undefined;
    }
    if (followed.kind === 'limited') throw limitReached('concurrent_streams', followed.retryAfterSeconds);
    return followed.kind === 'follow' ? followed.replay : undefined;
  }
}

/**
 * The stream cap, the session lock and recent client message ids in one environment's memory, for
 * while the shared registry is unreachable: exact for the requests this environment sees.
 */
class MemoryAdmission {
  readonly #limits: UserLimits;
  readonly #settings: AdmissionSettings;
  readonly #runningSessions = new Set<string>();
  readonly #streamsByUser = new Map<string, number>();
  /** Insertion-ordered, so the oldest id is evicted first. */
  readonly #recentMessages = new Set<string>();

  constructor(limits: UserLimits, settings: AdmissionSettings) {
    this.#limits = limits;
    this.#settings = settings;
  }

  admit(
    userId: string,
    sessionId: string,
    isNewSession: boolean,
    clientMessageId: string | undefined,
  ): Admission {
    const session = JSON.stringify([userId, sessionId]);
    const message =
      clientMessageId === undefined ? undefined : JSON.stringify([userId, sessionId, clientMessageId]);
    if (message !== undefined && this.#recentMessages.has(message)) throw alreadyAnswered();
    if (this.#runningSessions.has(session)) throw busy();
    const open = this.#streamsByUser.get(userId) ?? 0;
    const cap = this.#settings.maxConcurrentPerUser;
    if (cap > 0 && open >= cap) throw limitReached('concurrent_streams', 5);
    const check = this.#limits.checkInMemory(userId);
    if (!check.allowed) throw limitReached(check.limit, check.retryAfterSeconds);
    this.#runningSessions.add(session);
    this.#streamsByUser.set(userId, open + 1);
    if (message !== undefined) {
      this.#recentMessages.add(message);
      if (this.#recentMessages.size > this.#settings.recentMessageIds) {
        const oldest = this.#recentMessages.values().next().value;
        if (oldest !== undefined) this.#recentMessages.delete(oldest);
      }
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#runningSessions.delete(session);
      const left = (this.#streamsByUser.get(userId) ?? 1) - 1;
      if (left > 0) this.#streamsByUser.set(userId, left);
      else this.#streamsByUser.delete(userId);
    };
    const journal: TurnJournal = {
      append: () => undefined,
      stopSignal: new AbortController().signal,
      finish: async () => release(),
    };
    return { kind: 'run', sessionId, isNewSession, journal };
  }
}
