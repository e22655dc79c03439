import { type RedisProcess, redisAnswers, spawnRedisServer } from '../../local/redis-server.ts';

/**
 * A Redis for one test file, on a database of its own: REDIS_URL's server when set (CI points it at a
 * throwaway server that starts empty), else the machine's on :6379, else a throwaway one we start.
 */
export async function testRedis(database: number): Promise<{ url: string; owned?: RedisProcess }> {
  const configured = process.env.REDIS_URL;
  if (configured) return { url: onDatabase(configured, database) };
  if (await redisAnswers('127.0.0.1', 6379)) return { url: `redis://127.0.0.1:6379/${database}` };
  const owned = await spawnRedisServer();
  return { url: onDatabase(owned.url, database), owned };
}

/** The same server and credentials, another logical database (the URL path). */
function onDatabase(url: string, database: number): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
