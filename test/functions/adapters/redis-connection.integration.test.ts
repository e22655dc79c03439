import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CacheToken, iamTokenSource } from '../../../functions/adapters/elasticache-iam.ts';
import { RedisContextCache } from '../../../functions/adapters/redis-cache.ts';
import {
  type CacheConnection,
  type CacheEvent,
  CacheUnavailableError,
  createCacheConnection,
} from '../../../functions/adapters/redis-connection.ts';
import { definedScript, RedisTurnRegistry } from '../../../functions/adapters/redis-turns.ts';
import { RedisUserLimits } from '../../../functions/adapters/user-limits.ts';
import {
  LOCAL_CACHE_NAME,
  LOCAL_CACHE_USER,
  LOCAL_CREDENTIALS,
  type RedisProcess,
  spawnShapedCache,
} from '../../../local/emulators/redis-server.ts';
import { LOCAL_REGION } from '../../../local/stack/client-config.ts';
import { journaledDone } from '../../support/journal-events.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: a three-shard Redis Cluster of this file's own, default user off, one ACL user whose
// password is a SigV4 token the local token authority accepts for 3 s (ElastiCache: 15 minutes).
let cache: RedisProcess;
const saved = { ...process.env };
beforeAll(async () => {
  cache = await spawnShapedCache({ shards: 3, tokenSeconds: 3 });
});
afterAll(async () => {
  await cache.stop();
});
beforeEach(() => {
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  });
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
});
afterEach(() => {
  process.env = { ...saved };
});

const tokens = () =>
  iamTokenSource({
    cacheName: LOCAL_CACHE_NAME,
    user: LOCAL_CACHE_USER,
    region: LOCAL_REGION,
    endpoint: cache.env.AWS_ENDPOINT_URL_ELASTICACHE,
  });

interface Observed {
  errors: { message: string; attributes: Record<string, unknown> }[];
  infos: string[];
  events: CacheEvent[];
}

function connection(
  source: () => Promise<CacheToken> = tokens(),
  options: { url?: string; retryMs?: number } = {},
): { connection: CacheConnection; observed: Observed } {
  const observed: Observed = { errors: [], infos: [], events: [] };
  const created = createCacheConnection({
    url: options.url ?? cache.env.REDIS_URL ?? '',
    cluster: true,
    commandTimeoutMs: 1000,
    auth: { user: LOCAL_CACHE_USER, tokens: source },
    log: {
      error: (message, attributes) => observed.errors.push({ message, attributes }),
      info: (message) => observed.infos.push(message),
    },
    count: (event) => observed.events.push(event),
    retryMs: options.retryMs ?? 200,
  });
  opened.push(created);
  return { connection: created, observed };
}
const opened: CacheConnection[] = [];
afterEach(() => {
  for (const c of opened.splice(0)) c.close();
});

/** One AUTH on a fresh connection, as a client signs in: the server's reply line. */
async function rawAuth(port: number, user: string, password: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  try {
    const args = ['AUTH', user, password];
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    const [reply] = (await once(socket, 'data')) as [Buffer];
    return reply.toString().trim();
  } finally {
    socket.destroy();
  }
}

/** The admin's view of one node: which users its client connections signed in as. */
async function usersOnNodes(): Promise<string[][]> {
  const admin = new URL(cache.url);
  return Promise.all(
    cache.nodes.map(async (node) => {
      const client = new Redis({
        port: node.port,
        host: '127.0.0.1',
        username: admin.username,
        password: decodeURIComponent(admin.password),
      });
      try {
        const list = String(await client.client('LIST'));
        return [...list.matchAll(/ user=(\S+)/g)].map((m) => m[1] ?? '');
      } finally {
        client.disconnect();
      }
    }),
  );
}

describe('credentials on a cluster with ACL auth (ElastiCache Serverless shape)', () => {
  it('the old way, credentials set on the Cluster after construction, never reaches a node: NOAUTH', async () => {
    const token = await tokens()();
    const cluster = new Cluster([{ host: '127.0.0.1', port: cache.port }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: () => null,
      redisOptions: { lazyConnect: true, connectTimeout: 1000 },
    });
    cluster.on('error', () => undefined);
    // What `applyCredentials` did before this change.
    cluster.options.redisOptions = {
      ...cluster.options.redisOptions,
      username: LOCAL_CACHE_USER,
      password: token.password,
    };
    try {
      await expect(cluster.connect()).rejects.toThrow(/startup nodes|refresh slots/);
    } finally {
      cluster.disconnect();
    }
  });

  it('signs in on every node of three shards before the first command, as the ACL user', async () => {
    const { connection: c, observed } = connection();
    await c.connect();
    // Keys spread over all three shards: each command reaches the node that owns its slot.
    const keys = Array.from({ length: 30 }, (_, i) => `spread:${i}:${uuidv7()}`);
    for (const key of keys) await c.client.set(key, 'v', 'EX', 60);
    const slotsOwners = new Set(
      await Promise.all(
        keys.map(async (key) => {
          const slot = Number(await c.client.cluster('KEYSLOT', key));
          return cache.nodes.findIndex((_, index) => slot >= index * 5462 && slot < (index + 1) * 5462);
        }),
      ),
    );
    expect(slotsOwners.size).toBe(3);
    const users = await usersOnNodes();
    for (const onNode of users) expect(onNode).toContain(LOCAL_CACHE_USER);
    expect(users.flat()).not.toContain('default');
    expect(observed.errors).toEqual([]);
    expect(c.state).toBe('up');
  });

  it('keys that meet in one script or pipeline share a hash tag: cache, turns and limits work on three shards', async () => {
    const { connection: c } = connection();
    await c.connect();
    const history = new RedisContextCache(c.client, {
      historyLimit: 10,
      profileTtlSeconds: 60,
      historyTtlSeconds: 60,
      ragTtlSeconds: 60,
    });
    const turns = new RedisTurnRegistry(c.client, {
      lockMs: 5000,
      resumableMs: 5000,
      retainMs: 5000,
      flushMs: 10,
      maxConcurrentPerUser: 2,
      followBlockMs: 1000,
      turnsPerMinute: 5,
      tokensPerDay: 1000,
      admitTimeoutMs: 1000,
      leaseMs: 5000,
    });
    const fallbacks: number[] = [];
    const limits = new RedisUserLimits(c.client, { turnsPerMinute: 5, tokensPerDay: 1000 }, () =>
      fallbacks.push(1),
    );
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}-${uuidv7()}`);
    const slots = new Set<number>();
    for (const user of users) {
      const session = uuidv7();
      await history.storeHistory(user, session, [
        {
          messageId: uuidv7(),
          sessionId: session,
          userId: user,
          role: 'user',
          content: 'hi 😀 你好',
          createdAt: new Date().toISOString(),
        },
      ]);
      expect((await history.loadConversation(user, session)).history?.[0]?.content).toBe('hi 😀 你好');
      expect((await turns.claim(user, session, 'client-1', uuidv7())).kind).toBe('claimed');
      expect((await turns.claim(user, session, 'client-1', uuidv7())).kind).toBe('duplicate');
      expect((await limits.checkRoute(user, 'list')).allowed).toBe(true);
      slots.add(Number(await c.client.cluster('KEYSLOT', `{${user}}`)) >= 5462 ? 1 : 0);
    }
    expect(slots.size).toBe(2);
    expect(fallbacks).toEqual([]);
  });
  it("a script defined while a tick's commands wait for their shared write leaves with them (ioredis 6.0 threw outside any caller)", async () => {
    const { connection: c } = connection();
    await c.connect();
    expect(c.client.options.enableAutoPipelining).toBe(true);
    const tag = `{late-${uuidv7()}}`;
    await c.client.set(`${tag}:a`, 'before');
    // A write: on a cluster, reads and writes of one node wait in separate pipelines.
    const pending = c.client.set(`${tag}:b`, 'during');
    // Microtasks, no I/O: the guarded write reaches ioredis and its pipeline waits for the next check phase.
    for (let hop = 0; hop < 20; hop += 1) await Promise.resolve();
    const late = definedScript(
      c.client,
      `late${uuidv7().replaceAll('-', '')}`,
      'return redis.call("GET", KEYS[1])',
      1,
    );
    await expect(Promise.all([pending, late(`${tag}:a`)])).resolves.toEqual(['OK', 'before']);
  });
});

describe('a resume follower on the IAM-authenticated cluster', () => {
  it('waits on a blocking read of its own connection, signed in with the current token, and sees the turn end', async () => {
    const { connection: c } = connection();
    await c.connect();
    const turns = new RedisTurnRegistry(c.client, {
      lockMs: 5000,
      resumableMs: 5000,
      retainMs: 5000,
      flushMs: 10,
      maxConcurrentPerUser: 2,
      followBlockMs: 1000,
      turnsPerMinute: 5,
      tokensPerDay: 1000,
      admitTimeoutMs: 1000,
      leaseMs: 5000,
    });
    const user = `user-${uuidv7()}`;
    try {
      expect((await turns.claim(user, 's', undefined, 't1')).kind).toBe('claimed');
      const journal = turns.journal(user, 's', 't1');
      journal.append({ id: 0, event: { type: 'session_id', session_id: 's', message_id: 'm' } });
      const follower = await turns.follow(user, 's', 'f1', { holdMs: 10_000 });
      if (follower.kind !== 'follow') throw new Error(`not following: ${follower.kind}`);
      const ids: number[] = [];
      // The end is written only once the follower has caught up, so it arrives through the blocking read.
      for await (const entry of follower.replay.events(-1, AbortSignal.timeout(10_000))) {
        ids.push(entry.id);
        if (entry.id !== 0) continue;
        journal.append(journaledDone(1));
        void journal.finish();
      }
      expect(ids).toEqual([0, 1]);
    } finally {
      turns.close();
    }
  });
});

describe('token renewal (tokens accepted for 3 s)', () => {
  it('renews before expiry, new node connections sign in with the fresh token, signed-in ones live on', async () => {
    const { connection: c, observed } = connection();
    await c.connect();
    await c.client.set('renewal', '1');
    const acceptedBefore = cache.tokens?.accepted ?? 0;
    // Past the first token's life: the connection made with it still works (ElastiCache: up to 12 h).
    await sleep(3500);
    await expect(c.client.get('renewal')).resolves.toBe('1');
    await waitFor(async () => ((cache.tokens?.accepted ?? 0) > acceptedBefore ? true : undefined));
    // Drop every connection of the user: each node reconnects, which needs the renewed token.
    const admin = new URL(cache.url);
    for (const node of cache.nodes) {
      const client = new Redis({
        port: node.port,
        host: '127.0.0.1',
        username: admin.username,
        password: decodeURIComponent(admin.password),
      });
      await client.client('KILL', 'USER', LOCAL_CACHE_USER);
      client.disconnect();
    }
    await waitFor(async () => ((await c.client.get('renewal').catch(() => null)) === '1' ? true : undefined));
    expect(observed.errors).toEqual([]);
    expect(observed.events).not.toContain('authFailure');
  });

  it('an expired token is refused on AUTH, as ElastiCache refuses it', async () => {
    const token = await tokens()();
    await expect(rawAuth(cache.port, LOCAL_CACHE_USER, token.password)).resolves.toBe('+OK');
    await cache.tokens?.expireAll();
    await expect(rawAuth(cache.port, LOCAL_CACHE_USER, token.password)).resolves.toMatch(/^-WRONGPASS/);
  });

  it('a token signed with other credentials is refused by the token authority', async () => {
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-local-secret';
    await expect(tokens()()).rejects.toThrow(/403/);
  });
});

describe('a cache that refuses the credentials or stops answering', () => {
  it('logs the cause once, counts, refuses calls at once, and recovers through a probe', async () => {
    let refuse = true;
    const real = tokens();
    const source = async (): Promise<CacheToken> =>
      refuse ? { password: 'not-a-token', expiresAt: Date.now() + 60_000 } : real();
    const { connection: c, observed } = connection(source);
    await expect(c.connect()).rejects.toThrow();
    expect(c.state).toBe('down');
    // Refused before reaching ioredis: a CacheUnavailableError never waited for a connection or a timeout.
    for (let i = 0; i < 20; i++)
      await expect(c.client.get('x')).rejects.toBeInstanceOf(CacheUnavailableError);
    const pipeline = c.client.pipeline().get('a').get('b');
    await expect(pipeline.exec()).rejects.toBeInstanceOf(CacheUnavailableError);
    expect(observed.errors).toHaveLength(1);
    expect(String(observed.errors[0]?.attributes.cause)).toMatch(/WRONGPASS/);
    expect(observed.events).toContain('authFailure');
    expect(observed.events.filter((e) => e === 'unavailable').length).toBeGreaterThanOrEqual(21);

    refuse = false;
    await waitFor(async () => {
      await c.client.get('x').catch(() => undefined);
      return c.state === 'up' ? true : undefined;
    });
    await expect(c.client.set('after', '1')).resolves.toBe('OK');
    expect(observed.infos).toContain('cache available again');
    expect(observed.errors).toHaveLength(1);
  });

  it('a cache that hangs: one burst of timeouts keeps it up, timeouts over 500 ms mark it down; it recovers', async () => {
    const hanging = await spawnShapedCache({ shards: 1 });
    const source = iamTokenSource({
      cacheName: LOCAL_CACHE_NAME,
      user: LOCAL_CACHE_USER,
      region: LOCAL_REGION,
      endpoint: hanging.env.AWS_ENDPOINT_URL_ELASTICACHE,
    });
    const observed: Observed = { errors: [], infos: [], events: [] };
    const c = createCacheConnection({
      url: hanging.env.REDIS_URL ?? '',
      cluster: true,
      commandTimeoutMs: 100,
      auth: { user: LOCAL_CACHE_USER, tokens: source },
      log: {
        error: (message, attributes) => observed.errors.push({ message, attributes }),
        info: (message) => observed.infos.push(message),
      },
      count: (event) => observed.events.push(event),
      retryMs: 200,
    });
    const pid = hanging.nodes[0]?.pid ?? 0;
    try {
      await c.connect();
      process.kill(pid, 'SIGSTOP');
      // A turn's parallel calls timing out together: a hiccup, not an outage.
      const burst = await Promise.allSettled([c.client.get('a'), c.client.get('b'), c.client.get('c')]);
      expect(burst.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(c.state).toBe('up');
      await waitFor(async () => {
        await c.client.get('x').catch(() => undefined);
        return c.state === 'down' || undefined;
      });
      await expect(c.client.get('x')).rejects.toBeInstanceOf(CacheUnavailableError);
      expect(observed.errors).toHaveLength(1);
      expect(String(observed.errors[0]?.attributes.cause)).toMatch(/timed out/);
      process.kill(pid, 'SIGCONT');
      await waitFor(async () => {
        await c.client.get('x').catch(() => undefined);
        return c.state === 'up' || undefined;
      });
      await expect(c.client.set('back', '1')).resolves.toBe('OK');
    } finally {
      process.kill(pid, 'SIGCONT');
      c.close();
      await hanging.stop();
    }
  });

  it('an unreachable cache is known down after its first failure at init; calls give up at once', async () => {
    const { connection: c, observed } = connection(tokens(), { url: 'redis://127.0.0.1:1' });
    await expect(c.connect()).rejects.toThrow();
    expect(c.state).toBe('down');
    await expect(c.client.get('x')).rejects.toBeInstanceOf(CacheUnavailableError);
    // A turn's claim too (a command it builds and sends itself): the admission then answers from
    // memory, where a claim left waiting for its own timer would turn into a 503.
    const turns = new RedisTurnRegistry(c.client, {
      lockMs: 5000,
      resumableMs: 5000,
      retainMs: 5000,
      flushMs: 10,
      maxConcurrentPerUser: 2,
      followBlockMs: 1000,
      turnsPerMinute: 5,
      tokensPerDay: 1000,
      admitTimeoutMs: 60_000,
      leaseMs: 5000,
    });
    await expect(turns.claim('u', 's', 'm', 't')).rejects.toBeInstanceOf(CacheUnavailableError);
    expect(observed.errors).toHaveLength(1);
    expect(String(observed.errors[0]?.attributes.cause)).toMatch(/startup nodes|ECONNREFUSED/);
  });
});
