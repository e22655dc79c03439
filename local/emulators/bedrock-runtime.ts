import { EventStreamCodec } from '@smithy/core/event-streams';
import {
  type AnyResponse,
  type ListeningServer,
  listenH2cAndHttp1,
  readJson,
  sendAwsError,
  sleep,
} from './h2c-server.ts';
import { composeAnswer, composeTitle, estimateTokens, toDeltas } from './local-model.ts';

type ModelFault = 'throttle' | 'midstream' | 'validation';

export interface BedrockRuntimeOptions {
  port?: number;
  firstTokenDelayMs?: number;
  perTokenDelayMs?: number;
}

interface ConverseBody {
  messages?: Array<{ role: string; content?: Array<{ text?: string }> }>;
  system?: Array<{ text?: string }>;
  inferenceConfig?: { maxTokens?: number };
}

interface RecordedConverse {
  modelId: string;
  body: ConverseBody;
}

export interface BedrockRuntimeEmulator extends ListeningServer {
  options: Required<Omit<BedrockRuntimeOptions, 'port'>>;
  /** The last requests received, newest last, for tests that check what the handler sent. */
  requests: RecordedConverse[];
  /** `performance.now()` at which each stream's first token was written, for ordering checks. */
  firstTokenWrittenAt: number[];
  /** Makes the next request(s) fail: throttling before any token, or an exception frame mid-stream. */
  failNext(fault: ModelFault, times?: number): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const fromUtf8 = (text: string) => encoder.encode(text);
const codec = new EventStreamCodec((bytes) => decoder.decode(bytes), fromUtf8);

function eventFrame(type: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

function exceptionFrame(type: string, message: string): Uint8Array {
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'exception' },
    },
    body: fromUtf8(JSON.stringify({ message })),
  });
}

const textOf = (blocks: Array<{ text?: string }> | undefined) =>
  (blocks ?? []).map((b) => b.text ?? '').join('\n');

function plan(body: ConverseBody) {
  const messages = body.messages ?? [];
  const last = messages.at(-1);
  const question = last?.role === 'user' ? textOf(last.content) : '';
  const system = textOf(body.system);
  const answer = /^Write a title/.test(system)
    ? composeTitle(question)
    : composeAnswer({ system, question, priorTurns: Math.floor((messages.length - 1) / 2) });
  const maxTokens = body.inferenceConfig?.maxTokens ?? 4096;
  const all = toDeltas(answer);
  const deltas = all.slice(0, maxTokens);
  const inputTokens = estimateTokens(system + messages.map((m) => textOf(m.content)).join(''));
  return {
    deltas,
    stopReason: deltas.length < all.length ? 'max_tokens' : 'end_turn',
    usage: { inputTokens, outputTokens: deltas.length, totalTokens: inputTokens + deltas.length },
  };
}

function writeFrame(res: AnyResponse, frame: Uint8Array): boolean {
  if (res.destroyed || res.writableEnded) return false;
  res.write(frame);
  return true;
}

/** Bedrock Runtime on localhost: Converse and ConverseStream on the real wire encodings. */
export async function startBedrockRuntime(
  options: BedrockRuntimeOptions = {},
): Promise<BedrockRuntimeEmulator> {
  const settings = {
    firstTokenDelayMs: options.firstTokenDelayMs ?? 0,
    perTokenDelayMs: options.perTokenDelayMs ?? 0,
  };
  const faults: ModelFault[] = [];
  const requests: RecordedConverse[] = [];
  const firstTokenWrittenAt: number[] = [];

  const server = await listenH2cAndHttp1(async (req, res) => {
    const match = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(req.url?.split('?')[0] ?? '');
    if (req.method !== 'POST' || !match?.[1]) {
      sendAwsError(res, 404, 'UnknownOperationException', 'Unknown operation');
      return;
    }
    const modelId = decodeURIComponent(match[1]);
    let body: ConverseBody;
    try {
      body = (await readJson(req)) as ConverseBody;
    } catch {
      sendAwsError(res, 400, 'ValidationException', 'Malformed JSON body');
      return;
    }
    requests.push({ modelId, body });
    if (requests.length > 100) requests.shift();
    // Faults are for the streaming call; the consumer's small title calls must not take them.
    const fault = match[2] === 'converse-stream' ? faults.shift() : undefined;
    if (fault === 'throttle') {
      await sleep(settings.firstTokenDelayMs);
      sendAwsError(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
      return;
    }
    if (fault === 'validation' || !Array.isArray(body.messages) || body.messages[0]?.role !== 'user') {
      sendAwsError(res, 400, 'ValidationException', 'A conversation must start with a user message.');
      return;
    }
    const started = Date.now();
    const { deltas, stopReason, usage } = plan(body);
    if (match[2] === 'converse') {
      await sleep(settings.firstTokenDelayMs + settings.perTokenDelayMs * deltas.length);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          output: { message: { role: 'assistant', content: [{ text: deltas.join('') }] } },
          stopReason,
          usage,
          metrics: { latencyMs: Date.now() - started },
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
    writeFrame(res, eventFrame('messageStart', { role: 'assistant' }));
    await sleep(settings.firstTokenDelayMs);
    for (const [index, text] of deltas.entries()) {
      if (index > 0 && settings.perTokenDelayMs > 0) await sleep(settings.perTokenDelayMs);
      if (fault === 'midstream' && index === Math.min(3, deltas.length - 1)) {
        writeFrame(res, exceptionFrame('modelStreamErrorException', 'The model stopped unexpectedly.'));
        res.end();
        return;
      }
      if (!writeFrame(res, eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text } })))
        return;
      if (index === 0) firstTokenWrittenAt.push(performance.now());
    }
    writeFrame(res, eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
    writeFrame(res, eventFrame('messageStop', { stopReason }));
    writeFrame(res, eventFrame('metadata', { usage, metrics: { latencyMs: Date.now() - started } }));
    res.end();
  }, options.port);

  return {
    ...server,
    options: settings,
    requests,
    firstTokenWrittenAt,
    failNext(fault, times = 1) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
  };
}
