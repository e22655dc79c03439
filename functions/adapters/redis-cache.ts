import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { turnStartOf } from '../core/conversations.ts';
import type { ChatMessage, Passage, UserProfile } from '../core/messages.ts';
import type { CachedConversation, ContextCache } from '../core/ports.ts';
import { userSlotTag } from './admission-keys.ts';

export type RedisClient = Redis | Cluster;

export interface RedisCacheOptions {
  historyLimit: number;
  profileTtlSeconds: number;
  historyTtlSeconds: number;
  ragTtlSeconds: number;
}

/** Marks a cached history as present even when the conversation has no messages yet. */
const HISTORY_MARKER = '#';

/**
 * Every key of one user carries the admission's `{u:<hash of the sub>}` hash tag, so all of them (cache,
 * markers, turn data, limiter) share one cluster slot: a script may touch several, a marker check is in
 * the slot of the write it guards, and the raw sub never appears in a key name.
 */
const userTag = userSlotTag;
export const profileKey = (userId: string) => `profile:${userTag(userId)}`;
export const historyKey = (userId: string, sessionId: string) => `history:${userTag(userId)}:${sessionId}`;
export const ragKey = (knowledgeBaseId: string, question: string) =>
  `rag:${knowledgeBaseId}:${createHash('sha256').update(question.toLowerCase().replace(/\s+/g, ' ').trim()).digest('hex')}`;

/**
 * The cache's keys a user's delete touches: the sessions that have a cached history (a set per user),
 * and the markers. The turn family (pointer, message ids, journals, stop flags) is the turn registry's,
 * which forgets it by its own exact index; the limiter's keys (`adm:`) are in no family a delete names.
 */
export const erasureKeys = {
  /** Session ids of the user with a cached history. */
  sessions: (userId: string) => `sessions:${userTag(userId)}`,
  /** Set by `DELETE /me`: the epoch ms of the erasure; writes of anything older are refused. */
  userMarker: (userId: string) => `forgotten:${userTag(userId)}`,
  /** Set by `DELETE /sessions/{id}`: the same, for one session. */
  sessionMarker: (userId: string, sessionId: string) => `forgotten:${userTag(userId)}:${sessionId}`,
};

/**
 * How long a delete's marker refuses late writes: longer than any invocation (Lambda stops one at 900 s),
 * so no turn that started before the delete can write after the marker is gone.
 */
const FORGET_MARKER_TTL_MS = 900_000;

/** How long a delete leaves a running turn's stop flag: several journal flushes, then the flag goes too. */
const STOP_FLAG_TTL_MS = 10_000;

/**
 * Lua: `forgotten(since, markers...)` is true when a delete's marker refuses data from `since` (epoch ms
 * of the turn that made it; '' when unknown, which any marker refuses); one MGET reads every marker.
 * Prepended to every write script of a user's keys, so a turn that started before a delete cannot
 * write after it, whatever its code path.
 */
const FORGOTTEN_LUA = `
local function forgotten(since, ...)
  for _, at in ipairs(redis.call('MGET', ...)) do
    if at and (since == '' or tonumber(since) <= tonumber(at)) then return true end
  end
  return false
end
`;

/** Lua: registers a session with a cached history for the exact delete, the index living as long as it. */
const REGISTER_LUA = `
local function register(sessions, sessionId, ttlMs)
  redis.call('SADD', sessions, sessionId)
  if redis.call('PTTL', sessions) < tonumber(ttlMs) then redis.call('PEXPIRE', sessions, ttlMs) end
end
`;

// KEYS: history, user marker, session marker, sessions index. ARGV: since, ttl s, session id, entries...
const STORE_HISTORY = `${FORGOTTEN_LUA}${REGISTER_LUA}
if forgotten(ARGV[1], KEYS[2], KEYS[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[2])
register(KEYS[4], ARGV[3], tonumber(ARGV[2]) * 1000)
return 1
`;

// KEYS: history, user marker, session marker, sessions index. ARGV: since, ttl s, keep (entries), session id, entries...
// Nothing happens on a missing key: an expired history is refilled from the table, never rebuilt partially.
// The index lives as long as the history it lists.
const APPEND_HISTORY = `${FORGOTTEN_LUA}${REGISTER_LUA}
if forgotten(ARGV[1], KEYS[2], KEYS[3]) then return 0 end
if redis.call('RPUSHX', KEYS[1], unpack(ARGV, 5)) == 0 then return 0 end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
register(KEYS[4], ARGV[4], tonumber(ARGV[2]) * 1000)
return 1
`;

// KEYS: profile, user marker. ARGV: profile JSON, ttl s. A profile carries no time: any marker refuses it.
const STORE_PROFILE = `${FORGOTTEN_LUA}
if forgotten('', KEYS[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`;

// KEYS: marker (the session's, or the user's with the erasure's own time), user's sessions index, history,
// and the turn pointer when there is a registry. ARGV: now ms, marker ttl ms, session id. The marker first, in the same step as the delete
// of the history, so no write can land between them; returns the deleted count and a running turn's id.
const FORGET_SESSION = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local running = ''
local pointer = KEYS[4] and redis.call('GET', KEYS[4])
if pointer then
  local turn = cjson.decode(pointer)
  if turn.status == 'running' then running = turn.turnId end
end
redis.call('SREM', KEYS[2], ARGV[3])
return {redis.call('DEL', KEYS[3]), running}
`;

/** What a delete needs of the turn registry: its key names, and its exact forget of the turn family. */
export interface TurnFamily {
  /** The session's lock pointer (to find a running turn) and a turn's stop flag. */
  keys(userId: string, sessionId: string): { pointer: string; stop(turnId: string): string };
  /** The set of the user's sessions with turn data. */
  sessions(userId: string): string;
  /** Deletes the turn data of one session, or of every session of the user; never a limiter key. */
  forget(userId: string, sessionId?: string): Promise<number>;
}

/**
 * Forgets one user's sessions, or the user, by exact keys only: never a SCAN or KEYS over the keyspace,
 * and never a key of the limiter. The marker goes first and refuses every later write of older data; a
 * running turn gets its stop flag after the registry's forget, which would otherwise take it too.
 */
export class RedisForgetter {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #turns: TurnFamily | undefined;

  /** `turns` is the turn registry's part (none without one); `prefix` as for the cache. */
  constructor(redis: RedisClient, turns: TurnFamily | undefined, prefix = '') {
    this.#redis = redis;
    this.#turns = turns;
    this.#prefix = prefix;
  }

  async forgetSession(userId: string, sessionId: string): Promise<number> {
    const marker = erasureKeys.sessionMarker(userId, sessionId);
    const [deleted, running] = await this.#forgetCached(userId, sessionId, marker, Date.now());
    const turnKeys = (await this.#turns?.forget(userId, sessionId)) ?? 0;
    await this.#stop(userId, [[sessionId, running]]);
    return deleted + turnKeys;
  }

  async forgetUser(userId: string): Promise<number> {
    const p = this.#prefix;
    const now = Date.now();
    const marked = await this.#redis
      .multi()
      .set(p + erasureKeys.userMarker(userId), String(now), 'PX', FORGET_MARKER_TTL_MS)
      .del(p + profileKey(userId))
      .smembers(p + erasureKeys.sessions(userId))
      .smembers(p + (this.#turns?.sessions(userId) ?? erasureKeys.sessions(userId)))
      .exec();
    const failed = marked?.find(([error]) => error);
    if (!marked || failed) throw failed?.[0] ?? new Error('erasure marker not set');
    const sessionIds = [
      ...new Set([marked[2]?.[1], marked[3]?.[1]].flatMap((ids) => (ids as string[]) ?? [])),
    ];
    // One script per session, sent together (one connection pipelines them).
    const forgotten = await Promise.all(
      sessionIds.map((sessionId) =>
        this.#forgetCached(userId, sessionId, erasureKeys.userMarker(userId), now),
      ),
    );
    const turnKeys = (await this.#turns?.forget(userId)) ?? 0;
    await this.#stop(
      userId,
      forgotten.map(([, running], index) => [sessionIds[index] ?? '', running]),
    );
    return Number(marked[1]?.[1] ?? 0) + forgotten.reduce((sum, [n]) => sum + n, 0) + turnKeys;
  }

  /** `marker` is in the user's slot like every key here: a cluster refuses a script across slots. */
  async #forgetCached(
    userId: string,
    sessionId: string,
    marker: string,
    now: number,
  ): Promise<[number, string]> {
    const p = this.#prefix;
    const pointer = this.#turns?.keys(userId, sessionId).pointer;
    const keys = [p + marker, p + erasureKeys.sessions(userId), p + historyKey(userId, sessionId)];
    if (pointer) keys.push(p + pointer);
    return (await this.#redis.eval(
      FORGET_SESSION,
      keys.length,
      ...keys,
      now,
      FORGET_MARKER_TTL_MS,
      sessionId,
    )) as [number, string];
  }

  /** Tells each running turn to stop (the stop route's flag); the marker already refuses its writes. */
  async #stop(userId: string, running: [sessionId: string, turnId: string][]): Promise<void> {
    const stops = running.filter(([, turnId]) => turnId !== '');
    if (!this.#turns || stops.length === 0) return;
    const pipeline = this.#redis.pipeline();
    for (const [sessionId, turnId] of stops) {
      pipeline.set(
        this.#prefix + this.#turns.keys(userId, sessionId).stop(turnId),
        '1',
        'PX',
        STOP_FLAG_TTL_MS,
      );
    }
    await pipeline.exec();
  }
}

/** The oldest turn start among messages, as epoch ms; '' when unknown (any marker refuses it). */
function oldestTurnStart(messages: ChatMessage[]): string {
  const starts = messages.map(turnStartOf);
  return starts.length > 0 && starts.every(Number.isFinite) ? String(Math.min(...starts)) : '';
}

export class RedisContextCache implements ContextCache {
  readonly #redis: RedisClient;
  readonly #options: RedisCacheOptions;
  readonly #prefix: string;

  /** `prefix` namespaces every key (tests share one server). */
  constructor(redis: RedisClient, options: RedisCacheOptions, prefix = '') {
    this.#redis = redis;
    this.#options = options;
    this.#prefix = prefix;
  }

  /** ioredis takes no abort signal; its command timeout (the cache deadline) bounds each call instead. */
  async loadConversation(
    userId: string,
    sessionId: string,
    _signal?: AbortSignal,
  ): Promise<CachedConversation> {
    const results = await this.#redis
      .pipeline()
      .get(this.#prefix + profileKey(userId))
      .lrange(this.#prefix + historyKey(userId, sessionId), 0, -1)
      .exec();
    const [profileResult, historyResult] = results ?? [];
    if (profileResult?.[0]) throw profileResult[0];
    if (historyResult?.[0]) throw historyResult[0];
    const profile = profileResult?.[1] as string | null;
    const history = historyResult?.[1] as string[];
    return {
      profile: profile ? (JSON.parse(profile) as UserProfile) : undefined,
      history:
        history.length > 0
          ? history
              .filter((entry) => entry !== HISTORY_MARKER)
              .map((entry) => JSON.parse(entry) as ChatMessage)
              .slice(-this.#options.historyLimit)
          : undefined,
    };
  }

  async storeProfile(profile: UserProfile): Promise<void> {
    await this.#redis.eval(
      STORE_PROFILE,
      2,
      this.#prefix + profileKey(profile.userId),
      this.#prefix + erasureKeys.userMarker(profile.userId),
      JSON.stringify(profile),
      this.#options.profileTtlSeconds,
    );
  }

  /** Refused (a no-op) when a delete of the user or session is newer than the messages' turn. */
  async storeHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void> {
    const p = this.#prefix;
    await this.#redis.eval(
      STORE_HISTORY,
      4,
      p + historyKey(userId, sessionId),
      p + erasureKeys.userMarker(userId),
      p + erasureKeys.sessionMarker(userId, sessionId),
      p + erasureKeys.sessions(userId),
      oldestTurnStart(messages),
      this.#options.historyTtlSeconds,
      sessionId,
      HISTORY_MARKER,
      ...messages.slice(-this.#options.historyLimit).map((m) => JSON.stringify(m)),
    );
  }

  async dropHistory(userId: string, sessionId: string): Promise<void> {
    await this.#redis.del(this.#prefix + historyKey(userId, sessionId));
  }

  async appendHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const p = this.#prefix;
    await this.#redis.eval(
      APPEND_HISTORY,
      4,
      p + historyKey(userId, sessionId),
      p + erasureKeys.userMarker(userId),
      p + erasureKeys.sessionMarker(userId, sessionId),
      p + erasureKeys.sessions(userId),
      oldestTurnStart(messages),
      this.#options.historyTtlSeconds,
      this.#options.historyLimit + 1,
      sessionId,
      ...messages.map((m) => JSON.stringify(m)),
    );
  }

  async loadPassages(
    knowledgeBaseId: string,
    question: string,
    _signal?: AbortSignal,
  ): Promise<Passage[] | undefined> {
    const cached = await this.#redis.get(this.#prefix + ragKey(knowledgeBaseId, question));
    return cached ? (JSON.parse(cached) as Passage[]) : undefined;
  }

  async storePassages(knowledgeBaseId: string, question: string, passages: Passage[]): Promise<void> {
    await this.#redis.set(
      this.#prefix + ragKey(knowledgeBaseId, question),
      JSON.stringify(passages),
      'EX',
      this.#options.ragTtlSeconds,
    );
  }
}
