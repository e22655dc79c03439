import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type CacheToken, iamTokenSource } from './elasticache-iam.ts';
import type { RedisClient } from './redis-cache.ts';

/**
 * One connection per execution environment. ElastiCache Serverless is cluster mode with TLS, so AWS
 * uses `Cluster`; a standalone server someone brings (REDIS_URL) uses `Redis`. The offline queue is off
 * and commands time out fast: a slow cache must turn into a fallback, never into a slow answer. Commands a
 * tick issues go out in one write per node (auto-pipelining; ioredis ≥ 6.1, whose auto-pipeline takes a
 * script defined after the tick's pipeline began: 6.0 threw outside any caller). No maintenance
 * notifications handshake: ElastiCache does not send them, so it would be one refused command per connection.
 * Credentials given here are in the options every node connection is built from (ioredis copies a
 * Cluster's `redisOptions` into its connection pool in the constructor: later changes never reach it).
 */
export function createRedisClient(
  url: string,
  cluster: boolean,
  commandTimeoutMs: number,
  credentials?: { username: string; password: string },
): RedisClient {
  const parsed = new URL(url);
  const fromUrl = {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
  };
  const common: RedisOptions = {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maintNotifications: 'disabled',
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    lazyConnect: true,
    ...(credentials ?? {}),
  };
  if (!cluster) return new Redis(url, common);
  return new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    lazyConnect: true,
    // ElastiCache hands out node addresses its TLS certificate covers; skip the reverse lookup.
    dnsLookup: (address, callback) => callback(null, address),
    slotsRefreshTimeout: 2000,
    redisOptions: {
      ...common,
      ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
      ...fromUrl,
      ...(credentials ?? {}),
    },
  });
}

/** A cache call refused at once because the cache is known to be down (the circuit is open). */
export class CacheUnavailableError extends Error {
  override name = 'CacheUnavailableError';
}

export type CacheEvent = 'unavailable' | 'authFailure';

export interface CacheConnectionOptions {
  url: string;
  cluster: boolean;
  commandTimeoutMs: number;
  /** The ACL user whose password is a short-lived token (ElastiCache IAM auth); none for a password-less or URL-credential cache. */
  auth?: { user: string; tokens: () => Promise<CacheToken> };
  log: {
    error(message: string, attributes: Record<string, unknown>): void;
    info(message: string, attributes: Record<string, unknown>): void;
  };
  /** Counts a cache call given up because the cache is down, and each refused sign-in. */
  count(event: CacheEvent): void;
  /** The first wait before a probe tries a down cache again; it doubles per failed probe up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
  now?: () => number;
}

export interface CacheConnection {
  /** The client the adapters use: every command and pipeline passes the circuit first. */
  client: RedisClient;
  /** Signs in and connects (at init, which Lambda does not bill against the first answer). */
  connect(): Promise<void>;
  /** `down` once a refused sign-in or repeated connection failures showed the cache unusable. */
  readonly state: 'up' | 'down';
  close(): void;
}

const AUTH_FAILURE = /NOAUTH|WRONGPASS|NOPERM|invalid username-password/i;
const CONNECTION_FAILURE =
  /NOAUTH|WRONGPASS|NOPERM|isn't ready|Connection is closed|None of startup nodes|refresh slots|timed out|CLUSTERDOWN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|EPIPE|writeable|MaxRetriesPerRequest|token authority/i;
/**
 * Consecutive connection failures (timeouts, refused connections), spread over at least FAILING_FOR_MS,
 * mark the cache down: one hiccup (a pause that times out a turn's parallel calls together) does not
 * switch turn control off. An auth refusal marks it down at once.
 */
const FAILURES_TO_OPEN = 3;
const FAILING_FOR_MS = 500;

const causeOf = (error: unknown): string => {
  const last = (error as { lastNodeError?: unknown }).lastNodeError;
  const text = error instanceof Error ? `${error.name}: ${error.message}` : typeof error;
  return last ? `${text} (${causeOf(last)})` : text;
};
const isAuthFailure = (error: unknown) => AUTH_FAILURE.test(causeOf(error));
const isConnectionFailure = (error: unknown) => CONNECTION_FAILURE.test(causeOf(error));

/**
 * The cache connection of one execution environment: the client, its short-lived credentials and a
 * circuit. The token is fetched before the first connection and stamped on every node connection of
 * the pool before it connects (new nodes, reconnects, the slot refresher's duplicates), and renewed
 * when a third of its life is left; connections already signed in live on, as in ElastiCache. Once
 * the cache refuses the token or stops answering, calls give up at once (no per-turn timeouts) and a
 * background probe retries with a fresh token after `retryMs`, doubling up to `maxRetryMs`.
 */
export function createCacheConnection(options: CacheConnectionOptions): CacheConnection {
  const now = options.now ?? Date.now;
  const retryMs = options.retryMs ?? 1000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  const raw = createRedisClient(
    options.url,
    options.cluster,
    options.commandTimeoutMs,
    options.auth ? { username: options.auth.user, password: '' } : undefined,
  );

  let token: (CacheToken & { renewAt: number }) | undefined;
  let renewing: Promise<string> | undefined;
  const stamp = (client: Redis, password: string) => {
    client.options.password = password;
  };
  const stampAll = (password: string) => {
    if (raw instanceof Cluster) {
      for (const node of raw.nodes('all')) stamp(node, password);
      // What `duplicate()` builds its node connections from (the journal's blocking readers).
      if (raw.options.redisOptions) raw.options.redisOptions.password = password;
    } else stamp(raw, password);
  };
  const renew = (): Promise<string> => {
    const source = options.auth?.tokens;
    if (!source) return Promise.resolve('');
    renewing ??= source()
      .then((fresh) => {
        const fetchedAt = now();
        token = { ...fresh, renewAt: fetchedAt + ((fresh.expiresAt - fetchedAt) * 2) / 3 };
        stampAll(fresh.password);
        return fresh.password;
      })
      .finally(() => {
        renewing = undefined;
      });
    return renewing;
  };
  /** A token valid now; renewed in the background once two thirds of its life are gone, awaited only once expired. */
  const freshToken = async (): Promise<void> => {
    if (!options.auth) return;
    const at = now();
    if (!token || at >= token.expiresAt) {
      await renew();
      return;
    }
    if (at >= token.renewAt) renew().catch((error: unknown) => failed(error));
  };
  if (raw instanceof Cluster && options.auth) {
    // Every node connection ioredis creates (first contact, after a failover, after the 12-hour limit).
    raw.on('+node', (node: Redis) => {
      if (token) stamp(node, token.password);
    });
  }

  let state: 'up' | 'down' = 'up';
  let consecutiveFailures = 0;
  let failingSince = 0;
  let nextProbeAt = 0;
  let probeDelay = retryMs;
  let probing = false;

  const markDown = (error: unknown) => {
    if (state === 'down') return;
    state = 'down';
    probeDelay = retryMs;
    nextProbeAt = now() + probeDelay;
    options.log.error('cache unavailable: turns go on without it until a probe finds it back', {
      cause: causeOf(error),
      retryMs,
    });
  };
  const failed = (error: unknown) => {
    if (isAuthFailure(error)) {
      options.count('authFailure');
      markDown(error);
      return;
    }
    if (!isConnectionFailure(error)) return;
    if (consecutiveFailures++ === 0) failingSince = now();
    if (consecutiveFailures >= FAILURES_TO_OPEN && now() - failingSince >= FAILING_FOR_MS) markDown(error);
  };
  const succeeded = () => {
    consecutiveFailures = 0;
  };
  // Refusals happen on connections no command waits for (slot refresh, reconnects): they count too.
  raw.on('error', (error: unknown) => {
    if (isAuthFailure(error)) failed(error);
  });
  if (raw instanceof Cluster) raw.on('node error', (error: unknown) => failed(error));

  const probe = async () => {
    probing = true;
    try {
      await renew();
      if (raw.status === 'end' || raw.status === 'wait') await raw.connect();
      await raw.ping();
      state = 'up';
      consecutiveFailures = 0;
      options.log.info('cache available again', { downForProbes: Math.log2(probeDelay / retryMs) + 1 });
    } catch {
      probeDelay = Math.min(probeDelay * 2, maxRetryMs);
      nextProbeAt = now() + probeDelay;
    } finally {
      probing = false;
    }
  };
  const refuse = () => {
    options.count('unavailable');
    if (!probing && now() >= nextProbeAt) void probe();
    return Promise.reject(new CacheUnavailableError('the cache is down; answering without it'));
  };
  const guarded = async <T>(call: () => Promise<T>): Promise<T> => {
    if (state === 'down') return refuse();
    try {
      await freshToken();
      const result = await call();
      succeeded();
      return result;
    } catch (error) {
      failed(error);
      if (isConnectionFailure(error)) options.count('unavailable');
      throw error;
    }
  };
  const guardPipeline = <P extends { exec: (...args: never[]) => Promise<unknown> }>(pipeline: P): P => {
    const exec = pipeline.exec.bind(pipeline);
    pipeline.exec = ((...args: never[]) => guarded(() => exec(...args))) as P['exec'];
    return pipeline;
  };

  // Commands (and scripts defined later, e.g. by rate-limiter-flexible) pass the circuit; the rest is ioredis.
  const UNGUARDED = new Set([
    'on',
    'once',
    'off',
    'emit',
    'addListener',
    'removeListener',
    'removeAllListeners',
    'listeners',
    'listenerCount',
    'nodes',
    'defineCommand',
    'duplicate',
    'connect',
    'disconnect',
    'quit',
    'scanStream',
    'sscanStream',
    'hscanStream',
    'zscanStream',
    'setMaxListeners',
    'getMaxListeners',
  ]);
  const client = new Proxy(raw, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string' || UNGUARDED.has(property)) {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      if (property === 'pipeline' || property === 'multi') {
        return (...args: unknown[]) => guardPipeline(value.apply(target, args));
      }
      return (...args: unknown[]) => guarded(() => value.apply(target, args));
    },
  });

  return {
    client,
    async connect() {
      try {
        await freshToken();
        await raw.connect();
      } catch (error) {
        failed(error);
        // An unreachable cache at init is known down; the first turn must not pay to find out.
        markDown(error);
        throw error;
      }
    },
    get state() {
      return state;
    },
    close() {
      raw.disconnect();
    },
  };
}

/** The configuration the stream function reads for its cache (functions/environment.ts). */
export interface CacheSettings {
  REDIS_URL?: string;
  REDIS_CLUSTER: boolean;
  REDIS_AUTH: 'none' | 'iam';
  REDIS_USER?: string;
  REDIS_CACHE_NAME?: string;
  AWS_REGION?: string;
  CACHE_TIMEOUT_MS: number;
}

/**
 * The execution environment's cache connection from its configuration, or undefined without REDIS_URL.
 * `REDIS_AUTH=iam` signs ElastiCache IAM tokens for REDIS_USER; AWS_ENDPOINT_URL_ELASTICACHE (local
 * stack only) is the local cache's token authority.
 */
export function connectCache(
  config: CacheSettings,
  env: NodeJS.ProcessEnv,
  observe: Pick<CacheConnectionOptions, 'log' | 'count'>,
): CacheConnection | undefined {
  if (!config.REDIS_URL) return undefined;
  const iam =
    config.REDIS_AUTH === 'iam' && config.REDIS_USER && config.REDIS_CACHE_NAME && config.AWS_REGION
      ? {
          user: config.REDIS_USER,
          tokens: iamTokenSource({
            cacheName: config.REDIS_CACHE_NAME,
            user: config.REDIS_USER,
            region: config.AWS_REGION,
            endpoint: env.AWS_ENDPOINT_URL_ELASTICACHE,
          }),
        }
      : undefined;
  if (config.REDIS_AUTH === 'iam' && !iam)
    observe.log.error('REDIS_AUTH=iam needs REDIS_USER, REDIS_CACHE_NAME and AWS_REGION', {});
  return createCacheConnection({
    url: config.REDIS_URL,
    cluster: config.REDIS_CLUSTER,
    commandTimeoutMs: config.CACHE_TIMEOUT_MS,
    auth: iam,
    ...observe,
  });
}
