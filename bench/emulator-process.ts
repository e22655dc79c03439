import { startFaultProxy } from '../local/stack/fault-proxy.ts';
import { startLocalStack } from '../local/stack/stack.ts';
import { dynamoDelay, type Latencies } from './profiles.ts';

/**
 * The emulated AWS services in a process of their own: DynamoDB, SQS (each behind a delaying proxy),
 * Bedrock Runtime, the knowledge base and the token issuer. The handlers under test run elsewhere
 * (`environment-process.ts`), the load client in the parent. Driven over IPC.
 */
export type EmulatorRequest =
  | { type: 'latencies'; latencies: Latencies; prefillMsPer1kTokens?: number }
  | { type: 'model-stats' }
  | { type: 'close' };

export interface EmulatorReady {
  type: 'ready';
  issuer: string;
  /** The stream function's environment (endpoints, table, queue, issuer, Redis when there is one). */
  env: Record<string, string>;
  /** A URL to inspect the cache with (INFO commandstats): admin credentials on a shaped cache. */
  cacheInspectUrl?: string;
  /** What the cache is (shaped like ElastiCache Serverless, REDIS_URL as given, or none), for the report. */
  cache: string;
}

/** What the Bedrock emulator saw since the last ask: its own inter-token gaps and prompt-cache counts. */
export interface ModelStats {
  type: 'model-stats';
  tokenGapsMs: number[];
  cacheReadTokens: number;
  cacheWriteTokens: number;
  inputTokens: number;
  requests: number;
}

export interface EmulatorOptions {
  latencies: Latencies;
  /**
   * Run the consumer (the SQS event-source poller and the persist function) here. It is its own Lambda in
   * AWS; here its dynalite writes share this process's one thread with the emulators, so only the
   * persistence-lag part turns it on, and elsewhere messages wait in the queue (tested in npm test).
   */
  consumer?: boolean;
}

export async function runEmulators(options: EmulatorOptions): Promise<void> {
  let latencies = options.latencies;
  const stack = await startLocalStack({
    poller: options.consumer ?? false,
    firstTokenDelayMs: latencies.modelFirstToken,
    perTokenDelayMs: latencies.perToken,
    retrieveDelayMs: latencies.retrieve,
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR' },
    wrapEndpoint: async (service, url) => {
      const proxy =
        service === 'dynamodb'
          ? await startFaultProxy(url, (req) => dynamoDelay(latencies, req.headers['x-amz-target'] as string))
          : await startFaultProxy(url, () => latencies.sqsSend);
      return proxy.url;
    },
  });
  const bedrock = stack.bedrock;

  process.on('message', async (message: EmulatorRequest) => {
    if (message.type === 'latencies') {
      latencies = message.latencies;
      bedrock.options.firstTokenDelayMs = latencies.modelFirstToken;
      bedrock.options.perTokenDelayMs = latencies.perToken;
      bedrock.options.prefillMsPer1kTokens = message.prefillMsPer1kTokens ?? 0;
      stack.knowledgeBase.options.retrieveDelayMs = latencies.retrieve;
      process.send?.({ type: 'ok' });
    } else if (message.type === 'model-stats') {
      const usage = bedrock.usage.splice(0);
      process.send?.({
        type: 'model-stats',
        tokenGapsMs: bedrock.tokenGapsMs.splice(0),
        cacheReadTokens: usage.reduce((sum, u) => sum + u.cacheReadInputTokens, 0),
        cacheWriteTokens: usage.reduce((sum, u) => sum + u.cacheWriteInputTokens, 0),
        inputTokens: usage.reduce((sum, u) => sum + u.inputTokens, 0),
        requests: usage.length,
      } satisfies ModelStats);
    } else {
      await stack.close();
      process.exit(0);
    }
  });
  // The stack's own Function URL and handler stay idle: each design runs in an environment process.
  const env = { ...stack.env };
  delete env.POWERTOOLS_LOG_LEVEL;
  process.send?.({
    type: 'ready',
    issuer: stack.issuer.issuer,
    env,
    cacheInspectUrl: stack.cache?.url ?? env.REDIS_URL,
    cache: stack.redisNote,
  } satisfies EmulatorReady);
}
