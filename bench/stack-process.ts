import { startFaultProxy } from '../local/fault-proxy.ts';
import { startFunctionUrl } from '../local/lambda-runtime/function-url.ts';
import { installAwsLambdaGlobal } from '../local/lambda-runtime/response-stream.ts';
import { startLocalStack } from '../local/stack.ts';
import { createBaselineHandler, createLimitHandler } from './baseline-handler.ts';
import { dynamoDelay, type Latencies } from './profiles.ts';

/**
 * The system under test in a process of its own (the load generator runs in the parent), driven over
 * IPC: the parent sets the injected latencies and reads the Function URL emulator's first-byte times.
 */
export type StackRequest =
  | { type: 'latencies'; latencies: Latencies }
  | { type: 'first-byte-times'; design: Design }
  | { type: 'close' };

export type Design = 'ours' | 'baseline' | 'limit';

export interface StackReady {
  type: 'ready';
  url: string;
  baselineUrl: string;
  limitUrl: string;
  issuer: string;
  env: Record<string, string>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as {
  latencies: Latencies;
  holdBelowBytes?: number;
  padding?: number;
};
let latencies = options.latencies;
const stack = await startLocalStack({
  // The consumer is its own Lambda in AWS; here its dynalite writes would share the handler's one CPU
  // thread, so it stays off and messages wait in the queue (its throughput is tested in npm test).
  poller: false,
  firstTokenDelayMs: latencies.modelFirstToken,
  perTokenDelayMs: latencies.perToken,
  retrieveDelayMs: latencies.retrieve,
  holdBelowBytes: options.holdBelowBytes ?? 0,
  env: {
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    ...(options.padding !== undefined ? { FLUSH_PADDING_BYTES: String(options.padding) } : {}),
  },
  wrapEndpoint: async (service, url) => {
    const proxy =
      service === 'dynamodb'
        ? await startFaultProxy(url, (req) => dynamoDelay(latencies, req.headers['x-amz-target'] as string))
        : await startFaultProxy(url, () => latencies.sqsSend);
    return proxy.url;
  },
});
installAwsLambdaGlobal();
const baseline = await startFunctionUrl({
  handler: createBaselineHandler() as never,
  functionName: 'baseline',
});
const limit = await startFunctionUrl({ handler: createLimitHandler() as never, functionName: 'limit' });
const servers = { ours: stack.functionUrl, baseline, limit };

process.on('message', async (message: StackRequest) => {
  if (message.type === 'latencies') {
    latencies = message.latencies;
    stack.bedrock.options.firstTokenDelayMs = latencies.modelFirstToken;
    stack.bedrock.options.perTokenDelayMs = latencies.perToken;
    stack.knowledgeBase.options.retrieveDelayMs = latencies.retrieve;
    process.send?.({ type: 'ok' });
  } else if (message.type === 'first-byte-times') {
    const server = servers[message.design];
    process.send?.({ type: 'first-byte-times', times: server.firstBodyByteMs.splice(0) });
  } else {
    await Promise.all([baseline.close(), limit.close()]);
    await stack.close();
    process.exit(0);
  }
});
process.send?.({
  type: 'ready',
  url: stack.url,
  baselineUrl: baseline.url,
  limitUrl: limit.url,
  issuer: stack.issuer.issuer,
  env: stack.env,
} satisfies StackReady);
