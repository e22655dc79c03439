import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

export interface InvocationOptions {
  functionName: string;
  requestId?: string;
  timeoutMs?: number;
  memoryMb?: number;
}

/** The Lambda context object a handler receives, with a deadline it counts down to. */
export function lambdaContext({
  functionName,
  requestId = randomUUID(),
  timeoutMs = 60_000,
  memoryMb = 1024,
}: InvocationOptions): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: String(memoryMb),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
