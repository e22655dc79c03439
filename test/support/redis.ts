import { type RedisProcess, redisAnswers, spawnRedisServer } from '../../local/redis-server.ts';

/** The machine's Redis on a database of the test's own, or a throwaway server when none runs. */
export async function testRedis(database: number): Promise<{ url: string; owned?: RedisProcess }> {
  if (await redisAnswers('127.0.0.1', 6379)) return { url: `redis://127.0.0.1:6379/${database}` };
  const owned = await spawnRedisServer();
  return { url: owned.url, owned };
}
