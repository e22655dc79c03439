import { readFile } from 'node:fs/promises';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { lambdaContext } from '../lambda-runtime/context.ts';
import { invokeStreaming, type StreamingResult } from '../lambda-runtime/invoke-streaming.ts';
import type { StreamingEvent } from '../lambda-runtime/response-stream.ts';
import { DEMO_USER, type LocalStack } from './stack.ts';

export const FUNCTIONS = ['chat-stream', 'persist'] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

/** Reads an event file; `__DEV_TOKEN__` becomes a fresh token from the local issuer. */
export async function loadEvent(stack: LocalStack, file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8');
  const token = text.includes('__DEV_TOKEN__') ? await stack.issuer.mint(DEMO_USER) : '';
  return JSON.parse(text.replaceAll('__DEV_TOKEN__', token));
}

export async function invokeWithEvent(
  stack: LocalStack,
  name: FunctionName,
  event: unknown,
  onBody?: (text: string) => void,
): Promise<StreamingResult | SQSBatchResponse | undefined> {
  if (name === 'chat-stream') return invokeStreaming(stack.streamHandler, event as StreamingEvent, onBody);
  return stack.persistHandler(
    event as SQSEvent,
    lambdaContext({ functionName: 'persist', timeoutMs: 30_000, memoryMb: 512 }),
  );
}
