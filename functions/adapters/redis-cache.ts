import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
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

/** The `{userId}` hash tag keeps one user's keys in one slot, so profile + history is one round trip. */
export const userTag = (userId: string) => `{${encodeURIComponent(userId)}}`;
export const profileKey = (userId: string) => `profile:${userTag(userId)}`;
export const historyKey = (userId: string, sessionId: string) => `history:${userTag(userId)}:${sessionId}`;
export const ragKey = (knowledgeBaseId: string, question: string) =>
  `rag:${knowledgeBaseId}:${createHash('sha256').update(question.toLowerCase().replace(/\s+/g, ' ').trim()).digest('hex')}`;

/** Glob-escapes a key part for SCAN MATCH. */
const literal = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/** Every key matching `pattern`, on every primary of a cluster (SCAN is per node). */
async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const found: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  return found;
}

/**
 * Deletes every key of one user (all carry the `{user}` hash tag), or of one of their sessions: the
 * cached history, the turn registry's pointer, events and ids. Deletes key by key, since a cluster
 * refuses multi-key commands across slots and a prefix may put them apart.
 */
export async function forgetKeys(
  redis: RedisClient,
  userId: string,
  sessionId: string | undefined,
  prefix = '',
): Promise<number> {
  const tag = literal(userTag(userId));
  const patterns =
    sessionId === undefined
      ? [`${literal(prefix)}*${tag}*`]
      : [`${literal(prefix)}*${tag}:${sessionId}`, `${literal(prefix)}*${tag}:${sessionId}:*`];
  let deleted = 0;
  for (const pattern of patterns) {
    for (const key of await scanKeys(redis, pattern)) deleted += await redis.del(key);
  }
  return deleted;
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
    await this.#redis.set(
      this.#prefix + profileKey(profile.userId),
      JSON.stringify(profile),
      'EX',
      this.#options.profileTtlSeconds,
    );
  }

  async storeHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void> {
    const key = this.#prefix + historyKey(userId, sessionId);
    await this.#redis
      .multi()
      .del(key)
      .rpush(
        key,
        HISTORY_MARKER,
        ...messages.slice(-this.#options.historyLimit).map((m) => JSON.stringify(m)),
      )
      .expire(key, this.#options.historyTtlSeconds)
      .exec();
  }

  async appendHistory(userId: string, sessionId: string, messages: ChatMessage[]): Promise<void> {
    const key = this.#prefix + historyKey(userId, sessionId);
    // RPUSHX, LTRIM and EXPIRE all do nothing on a missing key: an expired history is refilled from the table, never rebuilt partially.
    await this.#redis
      .multi()
      .rpushx(key, ...messages.map((m) => JSON.stringify(m)))
      .ltrim(key, -(this.#options.historyLimit + 1), -1)
      .expire(key, this.#options.historyTtlSeconds)
      .exec();
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
