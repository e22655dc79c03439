import { type RedisProcess, spawnRedisServer, spawnShapedCache } from '../../local/emulators/redis-server.ts';

/**
 * A Redis for one test file. By default a cache of the file's own, shaped like ElastiCache Serverless
 * (cluster mode, default user off, an ACL user signing in with short-lived tokens; `url` is an admin
 * URL for inspection, and the local stack given it connects as the deployed function does). With
 * REDIS_URL set (CI's second mode, or someone's own Redis), that server on a database of the file's own.
 * `standalone`: a password-less single server of the file's own, for contracts that test that shape.
 */
export async function testRedis(
  database: number,
  shape: 'elasticache' | 'standalone' = 'elasticache',
): Promise<{ url: string; owned?: RedisProcess }> {
  const configured = process.env.REDIS_URL;
  if (configured) return { url: onDatabase(configured, database) };
  const owned = shape === 'standalone' ? await spawnRedisServer() : await spawnShapedCache();
  return { url: owned.url, owned };
}

/** The same server and credentials, another logical database (the URL path). */
function onDatabase(url: string, database: number): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
