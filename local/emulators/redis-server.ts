import { execFile, spawn } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { signIamToken } from '../../functions/adapters/elasticache-iam.ts';
import { LOCAL_REGION } from '../stack/client-config.ts';
import { type ClusterNode, clusterNode, freePort, stopProcess, waitForAnswer } from './redis-cluster-node.ts';

const run = promisify(execFile);

export interface RedisProcess {
  /** A URL any Redis client can use for inspection: admin credentials and the first node's address. */
  url: string;
  port: number;
  /** The stream function's environment for this cache (REDIS_URL and, for a shaped cache, cluster and auth). */
  env: Record<string, string>;
  /** The shaped cache's token authority, when there is one. */
  tokens?: LocalTokenAuthority;
  /** The server processes (a test may pause one with SIGSTOP). */
  nodes: { port: number; pid: number }[];
  stop(): Promise<void>;
}

const started = new Map<string, RedisProcess>();

/** The cache this process started at `url` (its inspection URL), so the local stack connects to it as the runtime would. */
export const localCacheAt = (url: string) => started.get(url);

export interface ShapedCacheOptions {
  /** Shards (one primary each, slots split evenly). ElastiCache Serverless spreads keys the same way. */
  shards?: number;
  /** How long a token the authority accepts stays valid for new connections (AWS: 900 s). */
  tokenSeconds?: number;
}

/** ElastiCache's names for the stand-in: the cache name signs the token, the user is the only ACL user. */
export const LOCAL_CACHE_NAME = 'chat-local-cache';
export const LOCAL_CACHE_USER = 'chat-stream-local';

/**
 * A local Redis shaped like ElastiCache Serverless as the deployed stack uses it: cluster mode with
 * every slot assigned (over `shards` primaries), the `default` user off, and one ACL user whose
 * password is an IAM-style token. Its token authority (an HTTP endpoint, the runtime's
 * AWS_ENDPOINT_URL_ELASTICACHE) checks a SigV4-signed token as ElastiCache does on AUTH and makes it
 * a valid password until it expires; as in ElastiCache, a connection made with it lives on.
 */
export async function spawnShapedCache(options: ShapedCacheOptions = {}): Promise<RedisProcess> {
  const shards = options.shards ?? 1;
  const adminPassword = randomBytes(18).toString('base64url');
  const nodes: ClusterNode[] = [];
  const stopNodes = () => Promise.all(nodes.map((node) => node.stop()));
  try {
    nodes.push(...(await Promise.all(Array.from({ length: shards }, () => clusterNode()))));
    const admins = nodes.map((node) => new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true }));
    const slotsPerShard = Math.ceil(16384 / shards);
    for (const [index, admin] of admins.entries()) {
      // Primaries that watch each other: a busy machine must not make one look failed in half a second.
      if (shards > 1) await admin.call('CONFIG', 'SET', 'cluster-node-timeout', '2000');
      const first = index * slotsPerShard;
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', first, Math.min(first + slotsPerShard, 16384) - 1);
      const node = nodes[index];
      if (index > 0 && node) await admins[0]?.call('CLUSTER', 'MEET', '127.0.0.1', node.port, node.busPort);
    }
    await waitFor(async () => {
      for (const admin of admins) {
        const info = String(await admin.call('CLUSTER', 'INFO'));
        if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${shards}`))
          return false;
      }
      return true;
    }, 'the cluster did not form');
    // ACLs are per node in Redis (ElastiCache applies a user group to every node): set them on each.
    for (const admin of admins) {
      await admin.call('ACL', 'SETUSER', 'admin', 'on', `>${adminPassword}`, '~*', '&*', '+@all');
      await admin.call('ACL', 'SETUSER', LOCAL_CACHE_USER, 'on', 'resetpass', '~*', '&*', '+@all');
      await admin.call('AUTH', 'admin', adminPassword);
      Object.assign(admin.options, { username: 'admin', password: adminPassword });
      await admin.call('ACL', 'SETUSER', 'default', 'off', 'resetpass', 'nopass');
    }
    const tokens = await startTokenAuthority(admins, options.tokenSeconds ?? 60);
    const port = nodes[0]?.port ?? 0;
    const url = `redis://admin:${adminPassword}@127.0.0.1:${port}`;
    const cache: RedisProcess = {
      url,
      port,
      nodes,
      tokens,
      env: {
        REDIS_URL: `redis://127.0.0.1:${port}`,
        REDIS_CLUSTER: 'true',
        REDIS_AUTH: 'iam',
        REDIS_USER: LOCAL_CACHE_USER,
        REDIS_CACHE_NAME: LOCAL_CACHE_NAME,
        AWS_ENDPOINT_URL_ELASTICACHE: tokens.url,
      },
      async stop() {
        started.delete(url);
        await tokens.close();
        for (const admin of admins) admin.disconnect();
        await stopNodes();
      },
    };
    started.set(url, cache);
    return cache;
  } catch (error) {
    await stopNodes();
    throw error;
  }
}

interface LocalTokenAuthority {
  url: string;
  /** Tokens accepted so far (each a password until its expiry). */
  readonly accepted: number;
  /** Makes every token invalid for new connections at once, as a revoked role or an expired one would. */
  expireAll(): Promise<void>;
  /** While true, every token is refused (a role that lost elasticache:Connect). */
  refusing: boolean;
  /** Closes every connection of the cache user on every node, as a failover or the 12-hour limit does. */
  dropConnections(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The stand-in for ElastiCache's check of an IAM token: the token must be a SigV4 presigned `connect`
 * for the cache's user, signed with the local credentials and not expired. An accepted token is added
 * to the user's passwords on every node and removed when it expires (never later than `tokenSeconds`);
 * Redis keeps connections that authenticated with it, as ElastiCache keeps them up to 12 hours.
 */
async function startTokenAuthority(admins: Redis[], tokenSeconds: number): Promise<LocalTokenAuthority> {
  const live = new Map<string, NodeJS.Timeout>();
  let accepted = 0;
  const forget = async (token: string) => {
    clearTimeout(live.get(token));
    live.delete(token);
    await Promise.all(admins.map((admin) => admin.call('ACL', 'SETUSER', LOCAL_CACHE_USER, `<${token}`)));
  };
  const server: Server = createHttpServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const token = Buffer.concat(chunks).toString();
    const expiresAt = authority.refusing ? undefined : await validToken(token, tokenSeconds);
    if (expiresAt === undefined) {
      response.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"invalid token"}');
      return;
    }
    if (!live.has(token)) {
      await Promise.all(admins.map((admin) => admin.call('ACL', 'SETUSER', LOCAL_CACHE_USER, `>${token}`)));
      accepted++;
      live.set(token, setTimeout(() => forget(token).catch(() => undefined), expiresAt - Date.now()).unref());
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ expiresAt }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const authority: LocalTokenAuthority = {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    refusing: false,
    async dropConnections() {
      await Promise.all(admins.map((admin) => admin.call('CLIENT', 'KILL', 'USER', LOCAL_CACHE_USER)));
    },
    get accepted() {
      return accepted;
    },
    async expireAll() {
      await Promise.all([...live.keys()].map(forget));
    },
    async close() {
      for (const timer of live.values()) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return authority;
}

/** The token's expiry (epoch ms, capped at `tokenSeconds` from now) when it is one the local cache accepts. */
async function validToken(token: string, tokenSeconds: number): Promise<number | undefined> {
  const [host, query] = token.split('/?');
  if (host !== LOCAL_CACHE_NAME || !query) return undefined;
  const params = new URLSearchParams(query);
  const date = params.get('X-Amz-Date') ?? '';
  const signedAt = Date.parse(
    date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
  );
  const expiresAt = signedAt + Number(params.get('X-Amz-Expires')) * 1000;
  if (params.get('User') !== LOCAL_CACHE_USER || !(expiresAt > Date.now())) return undefined;
  const expected = await signIamToken(
    { cacheName: LOCAL_CACHE_NAME, user: LOCAL_CACHE_USER, region: LOCAL_REGION },
    LOCAL_CREDENTIALS,
    new Date(signedAt),
  );
  const a = Buffer.from(new URLSearchParams(expected.split('/?')[1]).get('X-Amz-Signature') ?? '');
  const b = Buffer.from(params.get('X-Amz-Signature') ?? '');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
  return Math.min(expiresAt, Date.now() + tokenSeconds * 1000);
}

/** The local stack's AWS credentials (every emulator accepts them); the token authority checks signatures with them. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

async function waitFor(check: () => Promise<boolean>, failure: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(failure);
}

/**
 * A throwaway standalone `redis-server` with no password on a free loopback port, nothing on disk:
 * the shape of a Redis someone brings (REDIS_URL). With `cluster`, a one-node Redis Cluster owning every
 * slot, still without auth.
 */
export async function spawnRedisServer(options: { cluster?: boolean } = {}): Promise<RedisProcess> {
  if (options.cluster) {
    const node = await clusterNode();
    await run('redis-cli', ['-p', String(node.port), 'cluster', 'addslotsrange', '0', '16383']);
    await waitFor(
      async () =>
        (await run('redis-cli', ['-p', String(node.port), 'cluster', 'info'])).stdout.includes(
          'cluster_state:ok',
        ),
      'the cluster did not form',
    );
    const url = `redis://127.0.0.1:${node.port}`;
    return {
      url,
      port: node.port,
      nodes: [node],
      env: { REDIS_URL: url, REDIS_CLUSTER: 'true' },
      stop: () => node.stop(),
    };
  }
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  await waitForAnswer(port, child);
  const url = `redis://127.0.0.1:${port}`;
  return {
    url,
    port,
    nodes: [{ port, pid: child.pid ?? 0 }],
    env: { REDIS_URL: url },
    stop: () => stopProcess(child),
  };
}

export async function hasRedisServerBinary(): Promise<boolean> {
  try {
    await run('redis-server', ['--version']);
    return true;
  } catch {
    return false;
  }
}
