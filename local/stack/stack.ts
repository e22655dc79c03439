import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import dynalite from 'dynalite';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { SQS_REFUSED_CHARACTER } from '../../functions/adapters/sqs-message-codec.ts';
import { QUEUE_SETTINGS } from '../../functions/contracts/queue.ts';
import { tableDefinition, tableKeys } from '../../functions/contracts/table.ts';
import { type AgentRuntimeEmulator, startAgentRuntime } from '../emulators/bedrock-agent-runtime.ts';
import { type BedrockRuntimeEmulator, startBedrockRuntime } from '../emulators/bedrock-runtime.ts';
import {
  LOCAL_AUDIENCE,
  loadOrCreateSigningKey,
  type OidcIssuer,
  startOidcIssuer,
} from '../emulators/oidc-issuer.ts';
import {
  hasRedisServerBinary,
  localCacheAt,
  type RedisProcess,
  spawnShapedCache,
} from '../emulators/redis-server.ts';
import {
  type FunctionUrlServer,
  type StreamingHandler,
  startFunctionUrl,
} from '../lambda-runtime/function-url.ts';
import { installAwsLambdaGlobal } from '../lambda-runtime/response-stream.ts';
import { type SqsHandler, type SqsPoller, startSqsPoller } from '../lambda-runtime/sqs-poller.ts';
import { LOCAL_REGION, localClientConfig } from './client-config.ts';

const ROOT = join(import.meta.dirname, '..', '..');
export const STATE_DIR = join(ROOT, '.local');
export const DEMO_USER = 'demo-user';
const TABLE_NAME = 'chat-local';
const QUEUE_NAME = 'chat-messages.fifo';
const DLQ_NAME = 'chat-messages-dlq.fifo';
/** fauxqs speaks S3's wire protocol too: the attachments bucket lives in the same emulator as the queues. */
const ATTACHMENTS_BUCKET = 'chat-attachments-local';

export interface LocalStackOptions {
  ports?: Partial<
    Record<'functionUrl' | 'bedrockRuntime' | 'agentRuntime' | 'issuer' | 'dynamodb' | 'sqs', number>
  >;
  /**
   * A Redis URL (a cache `spawnShapedCache` started in this process is connected to as the deployed
   * function connects), `null` for no cache, or undefined for REDIS_URL, else a shaped cache started here.
   */
  redisUrl?: string | null;
  /** A shaped cache's token lifetime for new connections (default 60 s, so renewal happens in every session). */
  cacheTokenSeconds?: number;
  /** Function URL write hold (bytes); also turns the handler's flush padding on. */
  holdBelowBytes?: number;
  firstTokenDelayMs?: number;
  perTokenDelayMs?: number;
  retrieveDelayMs?: number;
  visibilityTimeoutSeconds?: number;
  /** Extra handler environment (configuration overrides). */
  env?: Record<string, string>;
  /**
   * `isolated`: each concurrent request of the stream function runs in an execution environment of its
   * own (a worker thread with its own module instance), as in Lambda. `shared` (default): every request
   * runs in this process's one module instance; on a 2-core machine the worker threads and the
   * cross-thread relay of every chunk cost more than they model (first byte p50 20 ms instead of 1.4 ms
   * at concurrency 10 in `npm run bench`).
   */
  environments?: 'isolated' | 'shared';
  maxEnvironments?: number;
  /** The Function URL's allowed CORS origins (default `*`). */
  allowOrigins?: string[];
  /** Start the SQS event-source poller (default true). */
  poller?: boolean;
  /** Put endpoints in front of DynamoDB and SQS (latency injection for the benchmark). */
  wrapEndpoint?: (service: 'dynamodb' | 'sqs', url: string) => Promise<string>;
  signingKeyPath?: string;
}

export interface LocalStack {
  url: string;
  endpoints: Record<string, string>;
  env: Record<string, string>;
  tableName: string;
  attachmentsBucket: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
  redisUrl: string | undefined;
  redisNote: string;
  /** The ElastiCache-shaped cache the stack connects to, when it is one this process started (its token authority). */
  cache: RedisProcess | undefined;
  bedrock: BedrockRuntimeEmulator;
  knowledgeBase: AgentRuntimeEmulator;
  issuer: OidcIssuer;
  fauxqs: FauxqsServer;
  functionUrl: FunctionUrlServer;
  poller: SqsPoller | undefined;
  persistHandler: SqsHandler;
  streamHandler: StreamingHandler;
  sqs: SQSClient;
  dynamodb: DynamoDBClient;
  startPoller(): SqsPoller;
  close(): Promise<void>;
}

async function resolveRedis(
  requested: string | null | undefined,
  tokenSeconds: number,
): Promise<{
  url?: string;
  env: Record<string, string>;
  note: string;
  shaped?: RedisProcess;
  owned?: RedisProcess;
}> {
  if (requested === null) return { env: {}, note: 'no cache (disabled)' };
  const brought = requested ?? process.env.REDIS_URL;
  if (brought) {
    const local = localCacheAt(brought);
    if (local) return { url: brought, env: local.env, note: shapedNote(local), shaped: local };
    // Someone's own Redis, as they configured it (standalone unless REDIS_CLUSTER=true; credentials in the URL).
    return { url: brought, env: { REDIS_URL: brought }, note: `${redact(brought)} (REDIS_URL, as given)` };
  }
  if (await hasRedisServerBinary()) {
    const owned = await spawnShapedCache({ tokenSeconds });
    return { url: owned.url, env: owned.env, note: shapedNote(owned), shaped: owned, owned };
  }
  return {
    env: {},
    note: 'NO CACHE: redis-server is not installed and REDIS_URL is not set; every turn reads DynamoDB.',
  };
}

const redact = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');
const shapedNote = (cache: RedisProcess) =>
  `${cache.env.REDIS_URL} as ElastiCache Serverless serves it: cluster mode, default user off, user ${cache.env.REDIS_USER} signing in with IAM-style tokens (${cache.tokens?.url})`;

/**
 * fauxqs 2.4 checks message bodies with a regular expression lacking the `u` flag, so it refuses every
 * character above U+FFFF (emoji) that SQS accepts. Its check gets SQS's rule (the one instance its modules share).
 */
export async function faithfulFauxqsCharacterRule(): Promise<void> {
  const types = (await import(new URL('./sqs/sqsTypes.js', import.meta.resolve('fauxqs')).href)) as {
    INVALID_MESSAGE_BODY_CHAR: RegExp;
  };
  // Once per process: several stacks may start in one (the benchmark's smoke test starts two).
  if (Object.hasOwn(types.INVALID_MESSAGE_BODY_CHAR, 'test')) return;
  Object.defineProperty(types.INVALID_MESSAGE_BODY_CHAR, 'test', {
    value: (body: string) => SQS_REFUSED_CHARACTER.test(body),
  });
}

interface LocalDynamoDb {
  url: string;
  /** Stops it once the requests it is answering are answered (2 s at most). */
  close(): Promise<void>;
}

async function startDynalite(port: number): Promise<LocalDynamoDb> {
  const server: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  // dynalite closes its database under a request it is still answering, and that request then throws
  // where no one catches it; a turn whose client left (its environment still running) can send one late.
  let answering = 0;
  server.on('request', (_request, response) => {
    answering++;
    response.once('close', () => answering--);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const deadline = Date.now() + 2000; answering > 0 && Date.now() < deadline; )
        await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(resolve);
      });
    },
  };
}

/**
 * The whole backend on localhost: the production handlers, unchanged, against emulators that speak
 * the AWS wire protocols. Handlers read their configuration once per process, so start one stack per
 * process (vitest isolates test files).
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const ports = options.ports ?? {};
  const holdBelowBytes = options.holdBelowBytes ?? 0;
  const wrap = options.wrapEndpoint ?? (async (_service, url) => url);
  await faithfulFauxqsCharacterRule();
  const [redis, bedrock, knowledgeBase, signingKey, db, fauxqs] = await Promise.all([
    resolveRedis(options.redisUrl, options.cacheTokenSeconds ?? 60),
    startBedrockRuntime({
      port: ports.bedrockRuntime ?? 0,
      firstTokenDelayMs: options.firstTokenDelayMs ?? 0,
      perTokenDelayMs: options.perTokenDelayMs ?? 0,
    }),
    startAgentRuntime({
      port: ports.agentRuntime ?? 0,
      directory: join(ROOT, 'local', 'knowledge-base'),
      retrieveDelayMs: options.retrieveDelayMs ?? 0,
    }),
    loadOrCreateSigningKey(options.signingKeyPath ?? join(STATE_DIR, 'dev-signing-key.json')),
    startDynalite(ports.dynamodb ?? 0),
    startFauxqs({ port: ports.sqs ?? 0, host: '127.0.0.1', logger: false }),
  ]);
  const issuer = await startOidcIssuer(signingKey, ports.issuer ?? 0);
  const sqsUrl = `http://127.0.0.1:${fauxqs.port}`;
  const [dynamodbEndpoint, sqsEndpoint] = await Promise.all([wrap('dynamodb', db.url), wrap('sqs', sqsUrl)]);

  const dynamodb = new DynamoDBClient(localClientConfig(db.url));
  const sqs = new SQSClient(localClientConfig(sqsUrl));
  await dynamodb.send(new CreateTableCommand(tableDefinition(TABLE_NAME)));
  fauxqs.createBucket(ATTACHMENTS_BUCKET);
  const dlq = fauxqs.createQueue(DLQ_NAME, {
    attributes: { FifoQueue: 'true', MessageRetentionPeriod: String(QUEUE_SETTINGS.retentionSeconds) },
  });
  const queue = fauxqs.createQueue(QUEUE_NAME, {
    attributes: {
      FifoQueue: 'true',
      ContentBasedDeduplication: 'false',
      VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? QUEUE_SETTINGS.visibilityTimeoutSeconds),
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlq.queueArn,
        maxReceiveCount: QUEUE_SETTINGS.maxReceiveCount,
      }),
    },
  });
  // fauxqs names queues on sqs.<region>.localhost, which does not resolve here; it accepts 127.0.0.1.
  const queueUrl = `${sqsUrl}/000000000000/${QUEUE_NAME}`;
  const dlqUrl = `${sqsUrl}/000000000000/${DLQ_NAME}`;
  const appQueueUrl = `${sqsEndpoint}/000000000000/${QUEUE_NAME}`;

  const env: Record<string, string> = {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_DYNAMODB: dynamodbEndpoint,
    AWS_ENDPOINT_URL_SQS: sqsEndpoint,
    AWS_ENDPOINT_URL_S3: sqsUrl,
    ATTACHMENTS_BUCKET,
    ATTACHMENTS_PATH_STYLE: 'true',
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
    AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME: knowledgeBase.url,
    TABLE_NAME,
    QUEUE_URL: appQueueUrl,
    KNOWLEDGE_BASE_ID: knowledgeBase.knowledgeBaseId,
    // The emulator serves the documents too, so local sources open like a deployment's.
    SOURCE_BASE_URL: knowledgeBase.documentsUrl,
    MODEL_ID: 'local.grounded-echo-v1',
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: LOCAL_AUDIENCE,
    AUTH_JWKS_URI: issuer.jwksUri,
    // As in AWS, the JWKS is handed to the function rather than fetched (aws-jwt-verify fetches over https only).
    AUTH_JWKS: JSON.stringify(issuer.jwks),
    FLUSH_PADDING_BYTES: holdBelowBytes > 0 ? String(holdBelowBytes) : '0',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    ...redis.env,
    ...options.env,
  };
  Object.assign(process.env, env);
  if (!redis.url) delete process.env.REDIS_URL;

  installAwsLambdaGlobal();
  const [{ handler: streamHandler }, { handler: persistHandler }] = await Promise.all([
    import('../../functions/chat-stream/handler.ts'),
    import('../../functions/persist/handler.ts'),
  ]);
  const functionUrl = await startFunctionUrl({
    ...(options.environments !== 'isolated'
      ? { handler: streamHandler as unknown as StreamingHandler }
      : {
          module: { path: join(ROOT, 'functions', 'chat-stream', 'handler.ts'), exportName: 'handler' },
          maxEnvironments: options.maxEnvironments ?? 10,
        }),
    port: ports.functionUrl ?? 0,
    holdBelowBytes,
    // Any local origin may call it, as a deployed URL allows the page's origin: the page runs on its own port.
    allowOrigins: options.allowOrigins ?? ['*'],
  });
  const startPoller = () =>
    startSqsPoller({ sqs, queueUrl, queueArn: queue.queueArn, handler: persistHandler, waitTimeSeconds: 1 });
  const poller = options.poller === false ? undefined : startPoller();

  const endpoints = {
    functionUrl: functionUrl.url,
    dynamodb: db.url,
    sqs: sqsUrl,
    queueUrl,
    dlqUrl,
    bedrockRuntime: bedrock.url,
    bedrockAgentRuntime: knowledgeBase.url,
    issuer: issuer.issuer,
    jwks: issuer.jwksUri,
    redis: redis.env.REDIS_URL ?? 'none',
  };

  return {
    url: functionUrl.url,
    endpoints,
    env,
    tableName: TABLE_NAME,
    attachmentsBucket: ATTACHMENTS_BUCKET,
    queueUrl,
    queueArn: queue.queueArn,
    dlqUrl,
    redisUrl: redis.url,
    redisNote: redis.note,
    cache: redis.shaped,
    bedrock,
    knowledgeBase,
    issuer,
    fauxqs,
    functionUrl,
    poller,
    persistHandler,
    streamHandler: streamHandler as unknown as StreamingHandler,
    sqs,
    dynamodb,
    startPoller,
    async close() {
      await poller?.stop();
      await functionUrl.close();
      await Promise.all([
        bedrock.close(),
        knowledgeBase.close(),
        issuer.close(),
        fauxqs.stop(),
        db.close(),
        redis.owned?.stop(),
      ]);
      sqs.destroy();
      dynamodb.destroy();
    },
  };
}

/** Seeds the demo user's profile so the first answer can greet them by name. */
export async function seedDemoProfile(stack: LocalStack, userId = DEMO_USER): Promise<void> {
  const doc = DynamoDBDocumentClient.from(stack.dynamodb);
  await doc.send(
    new PutCommand({
      TableName: stack.tableName,
      Item: {
        ...tableKeys.profile(userId),
        name: 'Alex',
        preferences: { level: 'beginner', currency: 'USD' },
      },
    }),
  );
}
