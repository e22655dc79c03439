import { createHash } from 'node:crypto';
import type { RouteName } from '../core/limits.ts';

/**
 * Every Redis key of turn admission, in one place. All of a user's keys carry one hash tag,
 * `{u:<hash of the sub>}`, so one script can touch them on a cluster (one slot); the hash keeps any
 * character of the `sub` out of key names. Two families:
 * - `adm:` limiter and stream-slot keys. No user-facing operation (DELETE of a session, DELETE /me)
 *   ever names them, so a user cannot reset their own limits.
 * - `turn:`, `msgid:`, `events:`, `stop:` and the two indexes: the user's turn data, which deletion and
 *   erasure remove by exact name (see `turnKeys`, `turnIndexKeys`), never by pattern.
 */
export const userSlotTag = (userId: string) =>
  `{u:${createHash('sha256').update(userId).digest('base64url').slice(0, 22)}}`;

export const admissionKeys = (userId: string) => {
  const tag = userSlotTag(userId);
  return {
    /** Turns admitted in the current fixed minute window (INCR, expires with the window). */
    turnsThisMinute: `adm:${tag}:tpm`,
    /** Tokens charged on a UTC day, `YYYY-MM-DD` (INCRBY, expires a day and an hour later). */
    tokensOn: (day: string) => `adm:${tag}:tokens:${day}`,
    /** The user's open streams (running turns and followers), a sorted set scored by expiry in ms. */
    streams: `adm:${tag}:streams`,
    /** Requests to one costly route in the current fixed window. */
    route: (route: RouteName) => `adm:${tag}:route:${route}`,
  };
};

/** The turn data of one session: lock pointer, client message ids, event journals and stop flags. */
export const turnKeys = (userId: string, sessionId: string) => {
  const base = `${userSlotTag(userId)}:${sessionId}`;
  return {
    pointer: `turn:${base}`,
    clientMessage: (clientMessageId: string) => `msgid:${base}:${clientMessageId}`,
    events: (turnId: string) => `events:${base}:${turnId}`,
    stop: (turnId: string) => `stop:${base}:${turnId}`,
    /** A set naming every `msgid:`, `events:` and `stop:` key of the session, for an exact delete. */
    index: `turnkeys:${base}`,
  };
};

/** The set of the user's session ids that have turn data (for an exact erase of every session). */
export const turnIndexKeys = (userId: string) => ({ sessions: `turnsessions:${userSlotTag(userId)}` });
