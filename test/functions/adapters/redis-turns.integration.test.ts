import { setTimeout as sleep } from 'node:timers/promises';
import { type Cluster, Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../../functions/adapters/redis-cache.ts';
import { createRedisClient } from '../../../functions/adapters/redis-connection.ts';
import { RedisTurnRegistry } from '../../../functions/adapters/redis-turns.ts';
import type { JournaledEvent, TurnReplay } from '../../../functions/core/ports.ts';
import { type RedisProcess, spawnRedisServer } from '../../../local/redis-server.ts';
import { testRedis } from '../../support/redis.ts';

const options = {
  lockMs: 5000,
  resumableMs: 300,
  retainMs: 60_000,
  flushMs: 20,
  pollMs: 20,
  maxConcurrentPerUser: 0,
};
const token = (id: number, text: string): JournaledEvent => ({ id, event: { type: 'token', text } });
const started = (id: number): JournaledEvent => ({
  id,
  event: { type: 'session_id', session_id: 's', message_id: 'm' },
});
const done = (id: number): JournaledEvent => ({
  id,
  event: {
    type: 'done',
    message_id: 'm',
    stop_reason: 'end_turn',
    usage: { input_tokens: 1, output_tokens: 1 },
    timings: {
      first_byte_ms: 0,
      context_ms: 0,
      rag_ms: 0,
      model_first_token_ms: 0,
      model_latency_ms: 0,
      total_ms: 0,
    },
    cache: { profile: 'miss', history: 'miss', rag: 'skipped' },
  },
});

async function collect(replay: TurnReplay | undefined, afterId = -1) {
  const out: JournaledEvent[] = [];
  if (!replay) throw new Error('nothing to replay');
  for await (const entry of replay.events(afterId, AbortSignal.timeout(5000))) out.push(entry);
  return out;
}

function contractTests(name: string, setup: () => Promise<{ client: RedisClient; prefix: string }>) {
  describe(name, () => {
    let registry: RedisTurnRegistry;
    const ids = () => [`u-${uuidv7()}`, `s-${uuidv7()}`] as const;

    it('lets one turn run per session: a second turn is busy, a retry of the same message is a duplicate', async () => {
      const { client, prefix } = await setup();
      registry = new RedisTurnRegistry(client, options, prefix);
      const [user, session] = ids();
      expect(await registry.claim(user, session, 'msg-1', 't1')).toEqual({ kind: 'claimed', turnId: 't1' });
      expect(await registry.claim(user, session, 'msg-2', 't2')).toEqual({ kind: 'busy' });
      expect(await registry.claim(user, session, undefined, 't3')).toEqual({ kind: 'busy' });
      expect(await registry.claim(user, session, 'msg-1', 't4')).toEqual({ kind: 'duplicate', turnId: 't1' });
      // Another user, or another session of the same user, is not blocked.
      expect((await registry.claim(`${user}-b`, session, 'msg-1', 't5')).kind).toBe('claimed');
      expect((await registry.claim(user, `${session}-b`, 'msg-2', 't6')).kind).toBe('claimed');
      await registry.journal(user, session, 't1').finish();
      expect(await registry.claim(user, session, 'msg-2', 't7')).toEqual({ kind: 'claimed', turnId: 't7' });
      expect(await registry.claim(user, session, 'msg-1', 't8')).toEqual({ kind: 'duplicate', turnId: 't1' });
    });

    it('replays a finished turn in order with its ids, from the start or after a given id', async () => {
      const [user, session] = ids();
      await registry.claim(user, session, undefined, 't1');
      const journal = registry.journal(user, session, 't1');
      for (const entry of [started(0), token(1, 'Hel'), token(2, 'lo'), done(3)]) journal.append(entry);
      await journal.finish();
      expect((await collect(await registry.replay(user, session))).map((e) => e.id)).toEqual([0, 1, 2, 3]);
      expect(await collect(await registry.replay(user, session), 1)).toEqual([token(2, 'lo'), done(3)]);
    });

    it('follows a running turn live: events written after the replay started arrive, then it ends', async () => {
      const [user, session] = ids();
      await registry.claim(user, session, undefined, 't1');
      const journal = registry.journal(user, session, 't1');
      journal.append(started(0));
      const replayed = collect(await registry.replay(user, session));
      await sleep(60);
      journal.append(token(1, 'a'));
      await sleep(60);
      journal.append(token(2, 'b'));
      journal.append(done(3));
      await journal.finish();
      expect((await replayed).map((e) => e.id)).toEqual([0, 1, 2, 3]);
    });

    it('reaches a running turn with a stop through its journal, and says when nothing runs', async () => {
      const [user, session] = ids();
      expect(await registry.requestStop(user, session)).toBe(false);
      await registry.claim(user, session, undefined, 't1');
      const journal = registry.journal(user, session, 't1');
      const stopped = new Promise((resolve) => journal.stopSignal.addEventListener('abort', resolve));
      expect(journal.stopSignal.aborted).toBe(false);
      expect(await registry.requestStop(user, session)).toBe(true);
      await stopped;
      await journal.finish();
      expect(await registry.requestStop(user, session)).toBe(false);
    });

    it('forgets a finished turn for resume after the resumable window, but keeps it for a retry', async () => {
      const [user, session] = ids();
      await registry.claim(user, session, 'msg-1', 't1');
      const journal = registry.journal(user, session, 't1');
      journal.append(done(0));
      await journal.finish();
      expect(await registry.replay(user, session)).toBeDefined();
      await sleep(options.resumableMs + 100);
      expect(await registry.replay(user, session)).toBeUndefined();
      expect(await collect(await registry.replay(user, session, 't1'))).toEqual([done(0)]);
    });
  });
}

let owned: RedisProcess | undefined;
let clusterNode: RedisProcess | undefined;
const clients: RedisClient[] = [];
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await owned?.stop();
  await clusterNode?.stop();
});

contractTests('RedisTurnRegistry on a standalone Redis', async () => {
  const redis = await testRedis(9);
  owned = redis.owned;
  const client = createRedisClient(redis.url, false, 1000);
  await client.connect();
  clients.push(client);
  return { client, prefix: `test:${uuidv7()}:` };
});

// Scripts touch several keys: on a cluster they must share a slot, which a single node would not check.
contractTests('RedisTurnRegistry on a Redis Cluster (ioredis Cluster client)', async () => {
  clusterNode = await spawnRedisServer({ cluster: true });
  const client = createRedisClient(clusterNode.url, true, 1000) as Cluster;
  await client.connect();
  clients.push(client);
  return { client, prefix: '' };
});

describe('turn keys on a cluster', () => {
  it('keep one session turn keys in one slot', async () => {
    const node = clusterNode ?? (await spawnRedisServer({ cluster: true }));
    clusterNode = node;
    const client = new Redis(node.url);
    try {
      const { turnKeys } = await import('../../../functions/adapters/redis-turns.ts');
      const keys = turnKeys('alice', 's1');
      await expect(
        client.mget(keys.pointer, keys.clientMessage('m'), keys.events('t'), keys.stop('t')),
      ).resolves.toEqual([null, null, null, null]);
    } finally {
      client.disconnect();
    }
  });
});
