import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { lambdaContext } from './context.ts';
import { runStreamingHandler } from './invocation.ts';
import { installAwsLambdaGlobal, type StreamingHandler } from './response-stream.ts';

/**
 * One Lambda execution environment: its own module instance of the handler (init runs once, as a cold
 * start), one invocation at a time. Bytes go to the Function URL emulator as they are written.
 */
export interface InvokeMessage {
  type: 'invoke';
  id: number;
  event: LambdaFunctionURLEvent;
  requestId: string;
  functionName: string;
  timeoutMs: number;
}

export type EnvironmentMessage =
  | { type: 'ready' }
  | { type: 'unit'; id: number; bytes: Uint8Array; contentType: string }
  | { type: 'finished'; id: number }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; message: string };

const port = parentPort;
if (!port) throw new Error('environment-worker must run in a worker thread');
const post = (message: EnvironmentMessage) => port.postMessage(message);

installAwsLambdaGlobal();
const { modulePath, exportName } = workerData as { modulePath: string; exportName: string };
const handler = (await import(pathToFileURL(modulePath).href))[exportName] as StreamingHandler;

port.on('message', async ({ id, event, requestId, functionName, timeoutMs }: InvokeMessage) => {
  const run = runStreamingHandler(
    handler,
    event,
    lambdaContext({ functionName, requestId, timeoutMs }),
    (bytes, contentType) => post({ type: 'unit', id, bytes, contentType }),
  );
  const finished = run.streamEnded.then(() => post({ type: 'finished', id }));
  try {
    await run.returned;
    await finished;
    post({ type: 'done', id });
  } catch (error) {
    post({ type: 'error', id, message: error instanceof Error ? error.message : String(error) });
  }
});
post({ type: 'ready' });
