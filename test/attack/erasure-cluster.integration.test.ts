import { createHash } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { turnIndexKeys } from '../../functions/adapters/admission-keys.ts';
import { erasureKeys, RedisContextCache, RedisForgetter } from '../../functions/adapters/redis-cache.ts';
import { createRedisClient } from '../../functions/adapters/redis-connection.ts';
import { RedisTurnRegistry, turnKeys } from '../../functions/adapters/redis-turns.ts';
import type { ChatMessage } from '../../functions/core/messages.ts';
import { type RedisProcess, spawnRedisServer } from '../../local/emulators/redis-server.ts';
import { waitFor } from '../support/wait.ts';

// The delete's scripts on a Redis Cluster (production is ElastiCache Serverless, cluster mode, which
// refuses a script touching keys of two slots): every key they touch is in the user's slot. Also the
// storage-level guard on its own: a turn that started before the delete can neither write its journal
// nor its cached history afterwards, and is told to stop.
let node: RedisProcess;
let client: Cluster;

beforeAll(async () => {
  node = await spawnRedisServer({ cluster: true });
  client = createRedisClient(node.url, true, 2000) as Cluster;
  await client.connect();
});
afterAll(async () => {
  client.disconnect();
  await node.stop();
});

const options = {
  lockMs: 30_000,
  resumableMs: 60_000,
  retainMs: 3_600_000,
  flushMs: 20,
  followBlockMs: 200,
  maxConcurrentPerUser: 3,
  turnsPerMinute: 0,
  tokensPerDay: 0,
  admitTimeoutMs: 2000,
  leaseMs: 30_000,
};
/** The admission's slot tag of a user: every key of the user carries it, and never the raw sub. */
const tagOf = (userId: string) =>
  `{u:${createHash('sha256').update(userId).digest('base64url').slice(0, 22)}}`;
const turnFamily = (registry: RedisTurnRegistry) => ({
  keys: turnKeys,
  sessions: (userId: string) => turnIndexKeys(userId).sessions,
  forget: (userId: string, sessionId?: string) => registry.forget(userId, sessionId),
});
const cacheOptions = {
  historyLimit: 20,
  profileTtlSeconds: 600,
  historyTtlSeconds: 3600,
  ragTtlSeconds: 3600,
};
const message = (
  userId: string,
  sessionId: string,
  role: 'user' | 'assistant',
  content: string,
): ChatMessage =>
  ({
    messageId: uuidv7(),
    sessionId,
    userId,
    role,
    content,
    createdAt: new Date().toISOString(),
  }) as ChatMessage;
/** The user's keys apart from the limiter's (`adm:`), which no delete names. */
const keysOf = async (userId: string) =>
  (await client.keys(`*${tagOf(userId)}*`)).filter((k) => !k.startsWith('adm:')).sort();

describe('erasure on a Redis Cluster', () => {
  it('forgets a user by exact keys in one slot, refuses the running turn’s later writes and stops it', async () => {
    const user = `u-${uuidv7()}`;
    const cache = new RedisContextCache(client, cacheOptions);
    const registry = new RedisTurnRegistry(client, options);
    const forgetter = new RedisForgetter(client, turnFamily(registry));
    const [done, running] = [`s-${uuidv7()}`, `s-${uuidv7()}`];
    await cache.storeProfile({ userId: user, name: 'Mia' });
    const earlier = [
      message(user, done, 'user', 'ERASE-ME question'),
      message(user, done, 'assistant', 'answer'),
    ];
    await cache.storeHistory(user, done, earlier);
    const finished = await registry.claim(user, done, 'client-1', uuidv7());
    const finishedJournal = registry.journal(user, done, finished.kind === 'claimed' ? finished.turnId : '');
    finishedJournal.append({ id: 0, event: { type: 'token', text: 'old' } });
    await finishedJournal.finish();
    // A turn that started before the erasure and is still running.
    const turnId = uuidv7();
    const userMessage = message(user, running, 'user', 'ERASE-ME running question');
    await new Promise((r) => setTimeout(r, 3));
    expect((await registry.claim(user, running, undefined, turnId)).kind).toBe('claimed');
    const journal = registry.journal(user, running, turnId);
    journal.append({ id: 0, event: { type: 'token', text: 'ERASE-ME partial' } });
    await cache.storeHistory(user, running, []);
    await waitFor(
      async () => (await client.exists(turnKeys(user, running).events(turnId))) === 1 || undefined,
    );
    // Control: the probe sees the user's keys (history, profile, journals, pointers, ids).
    expect((await keysOf(user)).length).toBeGreaterThanOrEqual(8);

    await new Promise((r) => setTimeout(r, 3));
    await forgetter.forgetUser(user);
    expect(await keysOf(user)).toEqual([erasureKeys.userMarker(user)].concat(await stopFlags(user)));
    await waitFor(async () => journal.stopSignal.aborted || undefined, 5000, 'the running turn stopped');

    // The running turn's late writes: journal, history store and append, profile. All refused.
    journal.append({ id: 1, event: { type: 'token', text: 'ERASE-ME late' } });
    await journal.finish();
    await cache.storeHistory(user, running, [userMessage, message(user, running, 'assistant', 'late')]);
    await cache.appendHistory(user, done, [userMessage]);
    await cache.storeProfile({ userId: user, name: 'Mia' });
    const left = await keysOf(user);
    expect(left.filter((k) => !k.startsWith('forgotten:') && !k.startsWith('stop:'))).toEqual([]);
    expect(await client.pttl(erasureKeys.userMarker(user))).toBeGreaterThan(0);

    // Control: a turn that starts after the erasure writes as usual (the marker refuses only the past).
    await new Promise((r) => setTimeout(r, 3));
    const fresh = [message(user, running, 'user', 'new start')];
    await cache.storeHistory(user, running, fresh);
    expect((await cache.loadConversation(user, running, AbortSignal.timeout(1000))).history).toEqual(fresh);
  });

  it('forgets one session without touching the user’s other sessions or the limiter', async () => {
    const user = `u-${uuidv7()}`;
    const cache = new RedisContextCache(client, cacheOptions);
    const registry = new RedisTurnRegistry(client, options);
    const forgetter = new RedisForgetter(client, turnFamily(registry));
    const [kept, gone] = [`s-${uuidv7()}`, '2026-12-04'];
    for (const s of [kept, gone]) {
      await cache.storeHistory(user, s, [message(user, s, 'user', `q ${s}`)]);
      const claim = await registry.claim(user, s, `m-${s}`, uuidv7());
      await registry.journal(user, s, claim.kind === 'claimed' ? claim.turnId : '').finish();
    }
    // The limiter's day counter, whose name ends like the session deleted here.
    const limiter = `adm:${tagOf(user)}:tokens:${gone}`;
    await client.set(limiter, '900');
    await new Promise((r) => setTimeout(r, 3));
    await forgetter.forgetSession(user, gone);
    const left = await client.keys(`*${tagOf(user)}*`);
    expect(left.filter((k) => k.includes(gone)).sort()).toEqual(
      [erasureKeys.sessionMarker(user, gone), limiter].sort(),
    );
    expect(left.filter((k) => k.includes(kept)).length).toBeGreaterThanOrEqual(3);
    expect(await client.smembers(erasureKeys.sessions(user))).toEqual([kept]);
  });
});

/** Stop flags the erasure set for turns still running (they expire within seconds). */
async function stopFlags(user: string) {
  return (await client.keys(`stop:${tagOf(user)}*`)).sort();
}
