import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { turnStartOf } from '../core/conversations.ts';
import type { ChatMessage, Passage, UserProfile } from '../core/messages.ts';
import type { CachedConversation, ContextCache } from '../core/ports.ts';

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
 * Every key of one user carries the `{user}` hash tag (the sub, URI-escaped), so all of them share one
 * cluster slot: a script may touch several, and a user's delete never needs to look beyond that slot.
 */
export const userTag = (userId: string) => `{${encodeURIComponent(userId)}}`;
export const profileKey = (userId: string) => `profile:${userTag(userId)}`;
export const historyKey = (userId: string, sessionId: string) => `history:${userTag(userId)}:${sessionId}`;
export const ragKey = (knowledgeBaseId: string, question: string) =>
  `rag:${knowledgeBaseId}:${createHash('sha256').update(question.toLowerCase().replace(/\s+/g, ' ').trim()).digest('hex')}`;

/**
 * The key families a user's delete touches, and nothing else: the sessions that have Redis state (a set
 * per user), and per session the keys whose names carry a turn or message id (a set per session, filled
 * by whoever creates such a key). The limiter's keys (`limit-*`, `running:`) are in none of them.
 */
export const erasureKeys = {
  /** Session ids of the user with keys in Redis. */
  sessions: (userId: string) => `sessions:${userTag(userId)}`,
  /** Full names of a session's keys named by a turn or message id (journal, stop flag, client message id). */
  sessionKeys: (userId: string, sessionId: string) => `keys:${userTag(userId)}:${sessionId}`,
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
 * Lua: `forgotten(marker, since)` is true when a delete's marker refuses data from `since` (epoch ms of
 * the turn that made it; '' when unknown, which any marker refuses). Prepended to every write script of
 * a user's keys, so a turn that started before a delete cannot write after it, whatever its code path.
 */
export const FORGOTTEN_LUA = `
local function forgotten(marker, since)
  local at = redis.call('GET', marker)
  if not at then return false end
  return since == '' or tonumber(since) <= tonumber(at)
end
`;

/** Lua: registers a session (and optionally its id-named keys) for the exact delete, TTLs kept long enough. */
export const REGISTER_LUA = `
local function register(sessions, sessionId, ttlMs, sessionKeys, ...)
  redis.call('SADD', sessions, sessionId)
  if redis.call('PTTL', sessions) < tonumber(ttlMs) then redis.call('PEXPIRE', sessions, ttlMs) end
  if sessionKeys and select('#', ...) > 0 then
    redis.call('SADD', sessionKeys, ...)
    if redis.call('PTTL', sessionKeys) < tonumber(ttlMs) then redis.call('PEXPIRE', sessionKeys, ttlMs) end
  end
end
`;

// KEYS: history, user marker, session marker, sessions index. ARGV: since, ttl s, session id, entries...
const STORE_HISTORY = `${FORGOTTEN_LUA}${REGISTER_LUA}
if forgotten(KEYS[2], ARGV[1]) or forgotten(KEYS[3], ARGV[1]) then return 0 end
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
if forgotten(KEYS[2], ARGV[1]) or forgotten(KEYS[3], ARGV[1]) then return 0 end
if redis.call('RPUSHX', KEYS[1], unpack(ARGV, 5)) == 0 then return 0 end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
register(KEYS[4], ARGV[4], tonumber(ARGV[2]) * 1000)
return 1
`;

// KEYS: profile, user marker. ARGV: profile JSON, ttl s. A profile carries no time: any marker refuses it.
const STORE_PROFILE = `${FORGOTTEN_LUA}
if forgotten(KEYS[2], '') then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`;

// KEYS: marker (the session's, or the user's with the erasure's own time), pointer, history, session keys. ARGV: now ms, marker ttl ms, stop key
// prefix, stop flag ttl ms. A running turn gets its stop flag (the stop route's mechanism) and everything
// else of the session goes, in one step no write can interleave with.
const FORGET_SESSION = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local running = nil
local pointer = redis.call('GET', KEYS[2])
if pointer then
  local turn = cjson.decode(pointer)
  if turn.status == 'running' then running = turn.turnId end
end
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[4])) do deleted = deleted + redis.call('DEL', key) end
deleted = deleted + redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if running then redis.call('SET', ARGV[3] .. running, '1', 'PX', ARGV[4]) end
return deleted
`;

/** Names of the turn registry's per-session keys the delete must know: its pointer and its stop flags. */
export interface TurnKeyNames {
  pointer: string;
  stop(turnId: string): string;
}

/**
 * Forgets one user's sessions, or the user, by exact keys only: never a SCAN or KEYS over the keyspace,
 * and never a key of the limiter. The marker goes first and refuses every later write of older data.
 */
export class RedisForgetter {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #turnKeys: (userId: string, sessionId: string) => TurnKeyNames;

  /** `turnKeys` names the registry's keys (its owner exports the builder); `prefix` as for the cache. */
  constructor(
    redis: RedisClient,
    turnKeys: (userId: string, sessionId: string) => TurnKeyNames,
    prefix = '',
  ) {
    this.#redis = redis;
    this.#turnKeys = turnKeys;
    this.#prefix = prefix;
  }

  async forgetSession(userId: string, sessionId: string): Promise<number> {
    const deleted = await this.#forget(
      userId,
      sessionId,
      erasureKeys.sessionMarker(userId, sessionId),
      Date.now(),
    );
    await this.#redis.srem(this.#prefix + erasureKeys.sessions(userId), sessionId);
    return deleted;
  }

  async forgetUser(userId: string): Promise<number> {
    const p = this.#prefix;
    const now = Date.now();
    const marked = await this.#redis
      .multi()
      .set(p + erasureKeys.userMarker(userId), String(now), 'PX', FORGET_MARKER_TTL_MS)
      .del(p + profileKey(userId))
      .smembers(p + erasureKeys.sessions(userId))
      .exec();
    const failed = marked?.find(([error]) => error);
    if (!marked || failed) throw failed?.[0] ?? new Error('erasure marker not set');
    const sessionIds = (marked[2]?.[1] as string[]) ?? [];
    let deleted = Number(marked[1]?.[1] ?? 0);
    // One script per session, sent together (one connection pipelines them).
    const counts = await Promise.all(
      sessionIds.map((sessionId) => this.#forget(userId, sessionId, erasureKeys.userMarker(userId), now)),
    );
    deleted += counts.reduce((sum, n) => sum + n, 0);
    // Only the sessions forgotten here: one a new turn registered meanwhile is after the erasure, and stays.
    if (sessionIds.length > 0) await this.#redis.srem(p + erasureKeys.sessions(userId), ...sessionIds);
    return deleted;
  }

  /** `marker` is in the user's slot like every key here: a cluster refuses a script across slots. */
  async #forget(userId: string, sessionId: string, marker: string, now: number): Promise<number> {
    const p = this.#prefix;
    const turn = this.#turnKeys(userId, sessionId);
    return (await this.#redis.eval(
      FORGET_SESSION,
      4,
      p + marker,
      p + turn.pointer,
      p + historyKey(userId, sessionId),
      p + erasureKeys.sessionKeys(userId, sessionId),
      now,
      FORGET_MARKER_TTL_MS,
      p + turn.stop(''),
      STOP_FLAG_TTL_MS,
    )) as number;
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
