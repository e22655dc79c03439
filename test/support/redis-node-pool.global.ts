import { NODE_POOL_ENV, startClusterNodePool } from '../../local/emulators/redis-cluster-node.ts';
import { hasRedisServerBinary } from '../../local/emulators/redis-server.ts';

/**
 * Cluster-mode Redis nodes started before the test files need them: a new node serves no command for
 * its first 2 s, which every file starting a cache would otherwise wait out. The forked test processes
 * find the pool through the environment; each node still belongs to one test file, which stops it.
 */
export default async function setup() {
  if (!(await hasRedisServerBinary())) return;
  const pool = await startClusterNodePool(4);
  process.env[NODE_POOL_ENV] = pool.url;
  return async () => {
    delete process.env[NODE_POOL_ENV];
    await pool.close();
  };
}
