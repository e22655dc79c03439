import { type Cluster, Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  historyKey,
  profileKey,
  type RedisClient,
  RedisContextCache,
} from '../../../functions/adapters/redis-cache.ts';
import { createRedisClient } from '../../../functions/adapters/redis-connection.ts';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { type RedisProcess, spawnRedisServer } from '../../../local/emulators/redis-server.ts';
import { testRedis } from '../../support/redis.ts';

const message = (userId: string, sessionId: string, i: number): ChatMessage => ({
  messageId: uuidv7(),
  sessionId,
  userId,
  role: i % 2 === 0 ? 'user' : 'assistant',
  content: `m${i}`,
  createdAt: new Date().toISOString(),
});
const options = { historyLimit: 4, profileTtlSeconds: 60, historyTtlSeconds: 60, ragTtlSeconds: 60 };

function contractTests(
  name: string,
  setup: () => Promise<{ client: RedisClient; prefix: string; teardown: () => Promise<void> }>,
) {
  describe(name, () => {
    let client: RedisClient;
    let cache: RedisContextCache;
    let teardown: () => Promise<void>;
    let prefix: string;

    beforeAll(async () => {
      ({ client, prefix, teardown } = await setup());
      cache = new RedisContextCache(client, options, prefix);
    });
    afterAll(() => teardown());

    it('misses, then serves profile and history in one round trip after they are stored', async () => {
      const [userId, sessionId] = [`u-${uuidv7()}`, uuidv7()];
      expect(await cache.loadConversation(userId, sessionId)).toEqual({
        profile: undefined,
        history: undefined,
      });
      const history = [0, 1].map((i) => message(userId, sessionId, i));
      await cache.storeProfile({ userId, name: 'Alex' });
      await cache.storeHistory(userId, sessionId, history);
      expect(await cache.loadConversation(userId, sessionId)).toEqual({
        profile: { userId, name: 'Alex' },
        history,
      });
    });

    it('caches an empty history as present, not as a miss', async () => {
      const [userId, sessionId] = [`u-${uuidv7()}`, uuidv7()];
      await cache.storeHistory(userId, sessionId, []);
      expect((await cache.loadConversation(userId, sessionId)).history).toEqual([]);
    });

    it('never creates a partial list by appending to a missing key', async () => {
      const [userId, sessionId] = [`u-${uuidv7()}`, uuidv7()];
      await cache.appendHistory(userId, sessionId, [message(userId, sessionId, 0)]);
      expect((await cache.loadConversation(userId, sessionId)).history).toBeUndefined();
      expect(await client.exists(prefix + historyKey(userId, sessionId))).toBe(0);
    });

    it('appends to a cached history and keeps only the newest N', async () => {
      const [userId, sessionId] = [`u-${uuidv7()}`, uuidv7()];
      const all = [0, 1, 2, 3, 4, 5, 6].map((i) => message(userId, sessionId, i));
      await cache.storeHistory(userId, sessionId, all.slice(0, 2));
      await cache.appendHistory(userId, sessionId, all.slice(2, 4));
      await cache.appendHistory(userId, sessionId, all.slice(4));
      expect((await cache.loadConversation(userId, sessionId)).history).toEqual(all.slice(-4));
      expect(await client.ttl(prefix + historyKey(userId, sessionId))).toBeGreaterThan(0);
    });

    it('caches retrieved passages under a normalised question', async () => {
      const kb = `kb-${uuidv7()}`;
      const passages = [{ id: '1', title: 't', uri: 'u', score: 0.5, excerpt: 'e', text: 'x' }];
      expect(await cache.loadPassages(kb, 'What is a Roth IRA?')).toBeUndefined();
      await cache.storePassages(kb, 'What is a Roth IRA?', passages);
      expect(await cache.loadPassages(kb, '  what is a   ROTH ira? ')).toEqual(passages);
    });
  });
}

let standalone: RedisProcess | undefined;
let clusterNode: RedisProcess | undefined;
afterAll(async () => {
  await standalone?.stop();
  await clusterNode?.stop();
});

// Real Redis: REDIS_URL or the machine's server (database 5, keys under a unique prefix), else one we start.
contractTests('RedisContextCache on a standalone Redis', async () => {
  const redis = await testRedis(5, 'standalone');
  standalone = redis.owned;
  const client = createRedisClient(redis.url, false, 1000);
  await client.connect();
  const prefix = `test:${uuidv7()}:`;
  return {
    client,
    prefix,
    teardown: async () => {
      const keys = await (client as Redis).keys(`${prefix}*`);
      if (keys.length) await client.del(...keys);
      client.disconnect();
    },
  };
});

// A one-node Redis Cluster raises CROSSSLOT like ElastiCache Serverless, which a single node would hide.
contractTests('RedisContextCache on a Redis Cluster (ioredis Cluster client)', async () => {
  clusterNode = await spawnRedisServer({ cluster: true });
  const client = createRedisClient(clusterNode.url, true, 1000) as Cluster;
  await client.connect();
  return { client, prefix: '', teardown: async () => client.disconnect() };
});

describe('the one-node cluster is strict about slots', () => {
  it("rejects a multi-key command across slots, while one user's keys share a slot", async () => {
    const node = clusterNode ?? (await spawnRedisServer({ cluster: true }));
    clusterNode = node;
    const client = new Redis(node.url);
    try {
      await expect(client.mget('profile:a', 'history:b:1')).rejects.toThrow(/CROSSSLOT/);
      await expect(client.mget(profileKey('alice'), historyKey('alice', 's1'))).resolves.toEqual([
        null,
        null,
      ]);
    } finally {
      client.disconnect();
    }
  });
});
