import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Cluster, Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, describe, expect, it } from 'vitest';
import { admissionKeys } from '../../../functions/adapters/admission-keys.ts';
import type { RedisClient } from '../../../functions/adapters/redis-cache.ts';
import { createRedisClient } from '../../../functions/adapters/redis-connection.ts';
import { keySlot, RedisTurnRegistry } from '../../../functions/adapters/redis-turns.ts';
import type { JournaledEvent, TurnReplay } from '../../../functions/core/ports.ts';
import { type RedisProcess, spawnRedisServer } from '../../../local/emulators/redis-server.ts';
import { journaledDone } from '../../support/journal-events.ts';
import { testRedis } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';

const options = {
  lockMs: 5000,
  resumableMs: 300,
  retainMs: 60_000,
  flushMs: 20,
  followBlockMs: 200,
  maxConcurrentPerUser: 0,
  turnsPerMinute: 0,
  tokensPerDay: 0,
  admitTimeoutMs: 1000,
  leaseMs: 5000,
};
const token = (id: number, text: string): JournaledEvent => ({ id, event: { type: 'token', text } });
const started = (id: number): JournaledEvent => ({
  id,
  event: { type: 'session_id', session_id: 's', message_id: 'm' },
});
const done = journaledDone;

async function collect(replay: TurnReplay | undefined, afterId = -1) {
  const out: JournaledEvent[] = [];
  if (!replay) throw new Error('nothing to replay');
  for await (const entry of replay.events(afterId, AbortSignal.timeout(5000))) out.push(entry);
  return out;
}

function contractTests(name: string, setup: () => Promise<{ client: RedisClient; prefix: string }>) {
  describe(name, () => {
    let registry: RedisTurnRegistry;
    let redis: RedisClient;
    const ids = () => [`u-${uuidv7()}`, `s-${uuidv7()}`] as const;

    it('lets one turn run per session: a second turn is busy, a retry of the same message is a duplicate', async () => {
      const { client, prefix } = await setup();
      redis = client;
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

    it('keeps journaling and finishing after the server forgot its scripts (a failover, SCRIPT FLUSH)', async () => {
      const [user, session] = ids();
      await registry.claim(user, session, undefined, 't1');
      const journal = registry.journal(user, session, 't1');
      journal.append(started(0));
      await sleep(options.flushMs * 3);
      const servers = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
      await Promise.all(servers.map((server) => server.script('FLUSH')));
      journal.append(token(1, 'Hel'));
      await sleep(options.flushMs * 3);
      journal.append(done(2));
      await journal.finish();
      expect((await collect(await registry.replay(user, session))).map((e) => e.id)).toEqual([0, 1, 2]);
      // FINISH ran too: the session takes a new turn.
      expect((await registry.claim(user, session, undefined, 't2')).kind).toBe('claimed');
      await registry.journal(user, session, 't2').finish();
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

describe('admission keys and exact deletes', () => {
  it('forget deletes exactly the turn family of a session or a user, never a limiter key', async () => {
    const redis = await testRedis(9);
    const client = createRedisClient(redis.url, false, 1000);
    await client.connect();
    clients.push(client);
    const prefix = `test:${uuidv7()}:`;
    const registry = new RedisTurnRegistry(
      client,
      { ...options, maxConcurrentPerUser: 3, turnsPerMinute: 10, tokensPerDay: 1000 },
      prefix,
    );
    const user = `u-${uuidv7()}`;
    for (const [session, turn] of [
      ['s1', 't1'],
      ['s2', 't2'],
    ] as const) {
      await registry.claim(user, session, `m-${session}`, turn);
      const journal = registry.journal(user, session, turn);
      journal.append(done(0));
      await registry.requestStop(user, session);
      await journal.finish();
    }
    const keysNow = async () => (await client.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
    const families = (keys: string[]) => [...new Set(keys.map((k) => k.split(':')[0]))].sort();
    expect(families(await keysNow())).toEqual([
      'adm',
      'events',
      'msgid',
      'stop',
      'turn',
      'turnkeys',
      'turnsessions',
    ]);
    await registry.forget(user, 's1');
    expect((await keysNow()).filter((k) => k.includes(':s1'))).toEqual([]);
    expect((await keysNow()).filter((k) => k.includes(':s2')).length).toBe(5);
    await registry.forget(user);
    expect(families(await keysNow())).toEqual(['adm']);
    // The limiter still counts both turns after the erase.
    expect(await client.get(`${prefix}${admissionKeys(user).turnsThisMinute}`)).toBe('2');
    registry.close();
  });
});

// ElastiCache Serverless is a cluster: each user's admission keys must share one slot, and users land
// on different nodes. Three primaries on loopback, slots split between them.
describe('admission on a three-node cluster', () => {
  const ports = [7200, 7201, 7202];
  const nodes: ChildProcess[] = [];
  let cluster: Cluster | undefined;
  afterAll(async () => {
    cluster?.disconnect();
    for (const node of nodes) node.kill('SIGKILL');
  });

  it('claims, journals, follows and forgets for users whose slots are on different nodes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'adm-cluster-'));
    for (const port of ports) {
      nodes.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-announce-ip',
            '127.0.0.1',
            '--dir',
            dir,
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    const admins = ports.map((port) => {
      const admin = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
      admin.on('error', () => undefined);
      return admin;
    });
    try {
      await waitFor(async () =>
        (await Promise.all(admins.map((a) => a.ping().catch(() => '')))).every((p) => p === 'PONG'),
      );
      const ranges = [
        [0, 5460],
        [5461, 10922],
        [10923, 16383],
      ] as const;
      await Promise.all(
        admins.map((a, i) => a.call('CLUSTER', 'ADDSLOTSRANGE', ranges[i]?.[0] ?? 0, ranges[i]?.[1] ?? 0)),
      );
      for (const port of ports.slice(1)) await admins[0]?.call('CLUSTER', 'MEET', '127.0.0.1', port);
      await waitFor(
        async () => (await admins[0]?.call('CLUSTER', 'INFO'))?.toString().includes('cluster_state:ok'),
        20_000,
      );
      await waitFor(async () => {
        const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO')));
        return infos.every(
          (info) =>
            String(info).includes('cluster_state:ok') && String(info).includes('cluster_known_nodes:3'),
        );
      }, 20_000);
    } finally {
      for (const admin of admins) admin.disconnect();
    }
    cluster = createRedisClient(`redis://127.0.0.1:${ports[0]}`, true, 1000) as Cluster;
    await cluster.connect();
    const registry = new RedisTurnRegistry(cluster, {
      ...options,
      maxConcurrentPerUser: 2,
      turnsPerMinute: 10,
      tokensPerDay: 1000,
    });
    const users = Array.from({ length: 12 }, (_, i) => `cluster-user-${i}`);
    const nodesOf = new Set<string>();
    for (const user of users) {
      const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', admissionKeys(user).streams));
      nodesOf.add(String(ranges(slot)));
      expect(await registry.claim(user, 's1', 'm1', 't1')).toEqual({ kind: 'claimed', turnId: 't1' });
      expect(await registry.claim(user, 's1', 'm1', 't2')).toEqual({ kind: 'duplicate', turnId: 't1' });
      const follower = await registry.follow(user, 's1', 'f1', { holdMs: 10_000 });
      expect(follower.kind).toBe('follow');
      expect(await registry.claim(user, 's2', undefined, 't3')).toMatchObject({
        kind: 'limited',
        limit: 'concurrent_streams',
      });
      const journal = registry.journal(user, 's1', 't1');
      journal.append(started(0));
      journal.append(done(1));
      await journal.finish();
      if (follower.kind === 'follow')
        expect((await collect(follower.replay)).map((e) => e.id)).toEqual([0, 1]);
      expect(await registry.runningTurns(user)).toBe(0);
      expect(await registry.forget(user)).toBeGreaterThan(0);
    }
    expect(nodesOf.size).toBe(3);
    registry.close();
  });

  it('computes the key slot the cluster does, hash tags included', async () => {
    if (!cluster) throw new Error('the cluster of the test above is not up');
    const keys = ['foo', '{user1000}.following', 'a{}b', 'x{y', '{}{z}', 'ü{ß}:x', 'events:{u:abc}:s:t'];
    for (const key of keys) expect(keySlot(key)).toBe(Number(await cluster.call('CLUSTER', 'KEYSLOT', key)));
  });

  it('flushes every running turn of the environment in one pipeline per node per tick', async () => {
    if (!cluster) throw new Error('the cluster of the test above is not up');
    const raw = cluster;
    let pipelines = 0;
    const counting = new Proxy(raw, {
      get(target, property, receiver) {
        if (property === 'pipeline') {
          return () => {
            pipelines++;
            return target.pipeline();
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    // Thirty replays read back one after another: a resumable window a loaded machine cannot outlast.
    const registry = new RedisTurnRegistry(
      counting,
      { ...options, resumableMs: 30_000 },
      `batch:${uuidv7()}:`,
    );
    const users = Array.from({ length: 30 }, (_, i) => `batch-user-${i}`);
    const journals = [];
    for (const user of users) {
      expect((await registry.claim(user, 's1', undefined, 't1')).kind).toBe('claimed');
      const journal = registry.journal(user, 's1', 't1');
      journal.append(started(0));
      journals.push(journal);
    }
    pipelines = 0;
    const ticking = performance.now();
    for (let id = 1; id <= 10; id++) {
      for (const journal of journals) journal.append(token(id, `t${id}`));
      await sleep(options.flushMs);
    }
    const ticks = (performance.now() - ticking) / options.flushMs + 1;
    // A pipeline per turn and tick would be 30 per tick; one per node is 3.
    expect(pipelines).toBeGreaterThan(0);
    expect(pipelines).toBeLessThanOrEqual(3 * Math.ceil(ticks));

    const [first, ...others] = journals;
    const stopped = new Promise((resolve) => first?.stopSignal.addEventListener('abort', resolve));
    expect(await registry.requestStop(users[0] ?? '', 's1')).toBe(true);
    await stopped;
    expect(others.some((journal) => journal.stopSignal.aborted)).toBe(false);

    await Promise.all(
      journals.map((journal, i) => {
        journal.append(done(11));
        return i % 2 === 0 ? journal.finish() : sleep(options.flushMs).then(() => journal.finish());
      }),
    );
    for (const user of users) {
      expect((await collect(await registry.replay(user, 's1'))).map((e) => e.id)).toEqual(
        Array.from({ length: 12 }, (_, id) => id),
      );
    }
    registry.close();
  });
});

const ranges = (slot: number) => (slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2);
