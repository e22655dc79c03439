import { RequestRejected } from './errors.ts';
import type { ChatMessage, Feedback } from './messages.ts';

export interface SessionSummary {
  sessionId: string;
  title: string;
  /** `auto` (the first words, a generated title may follow), `generated` or `user`: final once not `auto`. */
  titleSource: 'auto' | 'generated' | 'user';
  createdAt: string;
  updatedAt: string;
  messageCount: number;
}

export interface DailyUsage {
  day: string;
  turns: number;
  inputTokens: number;
  outputTokens: number;
  /** The same, per model that answered (`unknown` for answers stored before models were recorded). */
  byModel: Record<string, { turns: number; inputTokens: number; outputTokens: number }>;
}

/** What a person can do with their stored conversations; every call is scoped to the verified user. */
export interface ConversationArchive {
  /** `cursor` and `next` are opaque: only the archive knows what a position is made of. */
  listSessions(
    userId: string,
    limit: number,
    cursor: string | undefined,
  ): Promise<{
    sessions: SessionSummary[];
    next: string | undefined;
  }>;
  /**
   * Conversations whose messages or title hold every term (see `search-terms.ts`), newest activity first
   * within a page; a page may be short, even empty, and still have a `next` (each request reads a bounded
   * share of the user's conversations).
   */
  searchSessions(
    userId: string,
    terms: string[],
    limit: number,
    cursor: string | undefined,
  ): Promise<{ sessions: SessionSummary[]; next: string | undefined }>;
  getSession(userId: string, sessionId: string): Promise<SessionSummary | undefined>;
  /**
   * The newest `limit` messages before `beforeMessageId` (or the newest overall), oldest first;
   * `sessionFound` tells whether the session exists (and is not deleted) for this user.
   */
  listMessages(
    userId: string,
    sessionId: string,
    limit: number,
    beforeMessageId: string | undefined,
  ): Promise<{ messages: ChatMessage[]; more: boolean; sessionFound: boolean }>;
  /** Rates (or, with `undefined`, un-rates) a stored answer; `undefined` when there is no such answer. */
  setFeedback(
    userId: string,
    sessionId: string,
    messageId: string,
    feedback: Feedback | undefined,
  ): Promise<ChatMessage | undefined>;
  /** `undefined` when the session does not exist for this user. */
  renameSession(userId: string, sessionId: string, title: string): Promise<SessionSummary | undefined>;
  /** Leaves a tombstone the consumer honours, so a message still queued never brings the session back. */
  deleteSession(userId: string, sessionId: string): Promise<void>;
  /** Everything stored for the user, with the same guarantee for messages still queued. */
  eraseUser(userId: string): Promise<void>;
  usageOn(userId: string, day: string): Promise<DailyUsage>;
}

export const encodeCursor = (position: Record<string, string>) =>
  Buffer.from(JSON.stringify(position)).toString('base64url');

/** A cursor is only ever what this service handed out: anything else is a 400, never a query. */
export function decodeCursor(cursor: string | undefined, fields: readonly string[]) {
  if (cursor === undefined) return undefined;
  let position: unknown;
  try {
    position = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    position = undefined;
  }
  const valid =
    typeof position === 'object' &&
    position !== null &&
    !Array.isArray(position) &&
    Object.keys(position).length === fields.length &&
    fields.every((f) => typeof (position as Record<string, unknown>)[f] === 'string');
  if (!valid || cursor.length > 2048) {
    throw new RequestRejected('invalid', 'invalid_cursor', 'The cursor is not one this service returned.', {
      field: 'cursor',
    });
  }
  return position as Record<string, string>;
}

/** The epoch ms a UUIDv7 was minted; `undefined` for any other id. */
export function uuidv7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * When the message's turn started (epoch ms): both ids of a turn are minted before the model is called,
 * so a delete compares against this, never against `createdAt` (an answer's is taken when it ends).
 */
export const turnStartOf = (message: Pick<ChatMessage, 'messageId' | 'createdAt'>): number =>
  uuidv7Time(message.messageId) ?? Date.parse(message.createdAt);
