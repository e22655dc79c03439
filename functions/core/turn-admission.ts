import { errorName } from './background-writes.ts';
import { RequestRejected } from './errors.ts';
import { limitReached } from './limits.ts';
import type { TurnJournal, TurnLog, TurnRegistry, TurnReplay } from './ports.ts';

export type Admission =
  /** Run a new turn; `journal` is absent when no registry is reachable (no lock, no resume, no stop). */
  | { kind: 'run'; sessionId: string; isNewSession: boolean; journal: TurnJournal | undefined }
  /** A retry of a message already taken: follow (or replay) that turn instead of answering twice. */
  | { kind: 'attach'; sessionId: string; replay: TurnReplay };

export interface AdmissionRequest {
  userId: string;
  sessionId: string | undefined;
  clientMessageId: string | undefined;
}

/**
 * One turn at a time per session, and never two turns for one client message id. Without a registry
 * (Redis down or not configured) turns still run: availability over strictness, as documented.
 */
export async function admitTurn(
  registry: TurnRegistry | undefined,
  log: TurnLog,
  request: AdmissionRequest,
  newId: () => string,
): Promise<Admission> {
  const isNewSession = request.sessionId === undefined;
  const sessionId = request.sessionId ?? newId();
  if (!registry) return { kind: 'run', sessionId, isNewSession, journal: undefined };
  const turnId = newId();
  let claim: Awaited<ReturnType<TurnRegistry['claim']>>;
  try {
    claim = await registry.claim(request.userId, sessionId, request.clientMessageId, turnId);
  } catch (error) {
    log.warn('turn registry unavailable: no lock, no resume, no stop for this turn', {
      error: errorName(error),
    });
    return { kind: 'run', sessionId, isNewSession, journal: undefined };
  }
  if (claim.kind === 'busy') {
    throw new RequestRejected(
      'conflict',
      'turn_in_progress',
      'Another answer is being written in this conversation. Stop it or wait for it to finish.',
    );
  }
  if (claim.kind === 'limited') throw limitReached('concurrent_streams', 5);
  if (claim.kind === 'claimed') {
    return {
      kind: 'run',
      sessionId,
      isNewSession,
      journal: registry.journal(request.userId, sessionId, claim.turnId),
    };
  }
  const replay = await registry.replay(request.userId, sessionId, claim.turnId);
  if (!replay) {
    throw new RequestRejected(
      'conflict',
      'message_already_answered',
      'This message was answered already; read the answer from the conversation.',
    );
  }
  return { kind: 'attach', sessionId, replay };
}
