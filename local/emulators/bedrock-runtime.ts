import { createHash, type Hash } from 'node:crypto';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { MAX_CACHE_POINTS, modelCapabilities } from '../../functions/contracts/models.ts';
import {
  type AnyResponse,
  type ListeningServer,
  listenH2cAndHttp1,
  readJson,
  sendAwsError,
  sleep,
} from './h2c-server.ts';
import { composeAnswer, composeTitle, estimateTokens, splitSources, toDeltas } from './local-model.ts';

type ModelFault = 'throttle' | 'midstream' | 'validation';

export interface BedrockRuntimeOptions {
  port?: number;
  firstTokenDelayMs?: number;
  perTokenDelayMs?: number;
  /**
   * Time to read the prompt, per 1,000 input tokens not read from the prompt cache, added to the
   * first-token delay (0: the first-token delay is flat).
   */
  prefillMsPer1kTokens?: number;
  /** The Region the emulator answers as (latency-optimized inference depends on it). */
  region?: string;
}

/** A content block as the Converse API takes it: text, or a cache point after the blocks before it. */
interface Block {
  text?: string;
  cachePoint?: { type?: string };
  /** Blobs arrive base64-encoded in Converse's JSON. */
  image?: { format?: string; source?: { bytes?: string } };
  document?: { format?: string; name?: string; source?: { bytes?: string } };
}

const IMAGE_SIGNATURES: Record<string, string> = {
  png: '89504e47',
  jpeg: 'ffd8ff',
  gif: '47494638',
  webp: '52494646',
};

/** Bedrock's checks on image and document blocks: a known format, bytes of that format, a valid name. */
function attachmentProblem(body: ConverseBody): string | undefined {
  for (const message of body.messages ?? []) {
    const blocks = message.content ?? [];
    for (const block of blocks) {
      if (block.image) {
        const signature = IMAGE_SIGNATURES[block.image.format ?? ''];
        const hex = Buffer.from(block.image.source?.bytes ?? '', 'base64')
          .subarray(0, 4)
          .toString('hex');
        if (!signature) return `Unsupported image format: ${block.image.format}`;
        if (!hex.startsWith(signature))
          return 'The provided image does not match the specified image format.';
      }
      if (block.document) {
        const { format, name = '' } = block.document;
        if (format !== 'pdf') return `Unsupported document format: ${format}`;
        if (!/^(?!.*\s\s)[\p{L}\p{N}\s()[\]-]{1,200}$/u.test(name)) return 'The document name is not valid.';
        const bytes = Buffer.from(block.document.source?.bytes ?? '', 'base64');
        if (bytes.subarray(0, 5).toString('latin1') !== '%PDF-') return 'The document is not a valid PDF.';
        if (!blocks.some((b) => b.text !== undefined)) return 'A document must come with a text block.';
      }
    }
  }
  return undefined;
}

/** "1 image (PNG) and 1 PDF named report": what the emulated model says it sees, so tests can tell. */
function describeAttachments(blocks: Block[]): string | undefined {
  const images = blocks.flatMap((b) => (b.image ? [(b.image.format ?? '').toUpperCase()] : []));
  const documents = blocks.flatMap((b) => (b.document ? [b.document.name ?? ''] : []));
  const parts = [
    ...(images.length
      ? [`${images.length} image${images.length > 1 ? 's' : ''} (${images.join(', ')})`]
      : []),
    ...(documents.length
      ? [`${documents.length} PDF${documents.length > 1 ? 's' : ''} named ${documents.join(', ')}`]
      : []),
  ];
  return parts.length ? parts.join(' and ') : undefined;
}

interface ConverseBody {
  messages?: Array<{ role: string; content?: Block[] }>;
  system?: Block[];
  inferenceConfig?: { maxTokens?: number; stopSequences?: string[] };
  performanceConfig?: { latency?: string };
}

/** Token counts as Bedrock reports them: `inputTokens` excludes what was read from or written to the cache. */
interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
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
  /** Milliseconds between consecutive token frames of one stream, as written (the model's own pace). */
  tokenGapsMs: number[];
  /** Each answered request's token counts, newest last. */
  usage: ModelUsage[];
  /** Each answered request's planned wait before its first token (fixed delay + prompt reading), newest last. */
  firstTokenDelaysMs: number[];
  /** Makes the next request(s) fail: throttling before any token, or an exception frame mid-stream. */
  failNext(fault: ModelFault, times?: number): void;
  /**
   * Holds every stream after its first `afterTokens` tokens until the returned release is called, so a
   * test can act in the middle of an answer (reload, stop) without racing the model's pace.
   */
  hold(afterTokens: number): () => void;
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

const textOf = (blocks: Block[] | undefined) =>
  (blocks ?? []).flatMap((b) => (b.text === undefined ? [] : [b.text])).join('\n');

/** How long an unused cache entry lives (Bedrock's default cache TTL), ms. */
const CACHE_TTL_MS = 5 * 60_000;
/** How many block boundaries before a cache point are checked for an earlier cached prefix. */
const LOOKBACK_BLOCKS = 20;

/**
 * Bedrock's prompt cache, as documented: a cache point caches the prefix before it (system, then the
 * messages, in order) when that prefix holds at least the model's minimum; a request reads the longest
 * cached prefix ending at a cache point or at one of the 20 block boundaries before one, writes the rest
 * up to its last cache point, and pays full price for what follows. Unused entries expire after 5 minutes.
 */
class PromptCache {
  readonly #entries = new Map<string, number>();

  account(body: ConverseBody, minTokens: number, now = Date.now()) {
    // Every block boundary: the tokens before it, the prefix's hash, and whether a cache point sits there.
    const boundaries: Array<{ tokens: number; hash: string; cachePoint: boolean }> = [];
    const hash: Hash = createHash('sha256');
    let tokens = 0;
    const walk = (role: string, blocks: Block[]) => {
      for (const block of blocks) {
        if (block.cachePoint) {
          const last = boundaries.at(-1);
          if (last && last.tokens === tokens) last.cachePoint = true;
          else boundaries.push({ tokens, hash: hash.copy().digest('hex'), cachePoint: true });
          continue;
        }
        if (block.text === undefined) continue;
        hash.update(`${role}\u0000${block.text}\u0000`);
        tokens += estimateTokens(block.text);
        boundaries.push({ tokens, hash: hash.copy().digest('hex'), cachePoint: false });
      }
    };
    walk('system', body.system ?? []);
    for (const message of body.messages ?? []) walk(message.role, message.content ?? []);
    for (const [key, expires] of this.#entries) if (expires <= now) this.#entries.delete(key);

    const points = boundaries.flatMap((b, i) => (b.cachePoint && b.tokens >= minTokens ? [i] : []));
    let read = 0;
    for (const point of points) {
      for (let i = point; i >= Math.max(0, point - LOOKBACK_BLOCKS); i--) {
        const boundary = boundaries[i];
        if (boundary && boundary.tokens > read && this.#entries.has(boundary.hash)) {
          read = boundary.tokens;
          this.#entries.set(boundary.hash, now + CACHE_TTL_MS);
        }
      }
    }
    const lastPoint = boundaries[points.at(-1) ?? -1];
    const write = lastPoint && lastPoint.tokens > read ? lastPoint.tokens - read : 0;
    for (const point of points) {
      const boundary = boundaries[point];
      if (boundary) this.#entries.set(boundary.hash, now + CACHE_TTL_MS);
    }
    return { read, write, total: tokens };
  }
}

const cachePointCount = (body: ConverseBody) =>
  [...(body.system ?? []), ...(body.messages ?? []).flatMap((m) => m.content ?? [])].filter(
    (b) => b.cachePoint,
  ).length;

/** The user turn before the last one, without its passages (what a follow-up refers to). */
function previousQuestionOf(messages: NonNullable<ConverseBody['messages']>): string | undefined {
  const earlier = messages.slice(0, -1).findLast((m) => m.role === 'user');
  return earlier ? splitSources(textOf(earlier.content)).question : undefined;
}

function plan(body: ConverseBody, cache: PromptCache, minTokens: number | undefined) {
  const messages = body.messages ?? [];
  const last = messages.at(-1);
  // Retrieved passages may come in the last user turn (after the cacheable history) or in the system prompt.
  const { sources, question } = splitSources(last?.role === 'user' ? textOf(last.content) : '');
  const system = textOf(body.system);
  const seen = describeAttachments(last?.content ?? []);
  const earlier = describeAttachments(messages.slice(0, -1).flatMap((m) => m.content ?? []));
  const mentions = [
    ...(seen ? [`I see ${seen}.`] : []),
    ...(earlier ? [`Earlier in this conversation I saw ${earlier}.`] : []),
  ];
  const answer = /^Write a title/.test(system)
    ? composeTitle(question)
    : [
        ...(mentions.length ? [mentions.join(' ')] : []),
        composeAnswer({
          system: sources ? `${system}\n${sources}` : system,
          question,
          priorTurns: Math.floor((messages.length - 1) / 2),
          previousQuestion: previousQuestionOf(messages),
        }),
      ].join('\n\n');
  const maxTokens = body.inferenceConfig?.maxTokens ?? 4096;
  // As a model does: the answer ends before the first stop sequence it would write, which is not sent.
  const cut = Math.min(
    ...(body.inferenceConfig?.stopSequences ?? []).map((stop) => answer.indexOf(stop)).filter((i) => i >= 0),
  );
  const all = toDeltas(Number.isFinite(cut) ? answer.slice(0, cut) : answer);
  const deltas = all.slice(0, maxTokens);
  const cached = minTokens === undefined ? undefined : cache.account(body, minTokens);
  const prompt = cached?.total ?? estimateTokens(system + messages.map((m) => textOf(m.content)).join(''));
  const cacheReadInputTokens = cached?.read ?? 0;
  const cacheWriteInputTokens = cached?.write ?? 0;
  const inputTokens = Math.max(0, prompt - cacheReadInputTokens - cacheWriteInputTokens);
  const usage: ModelUsage = {
    inputTokens,
    outputTokens: deltas.length,
    totalTokens: prompt + deltas.length,
    cacheReadInputTokens,
    cacheWriteInputTokens,
  };
  return {
    deltas,
    stopReason:
      deltas.length < all.length ? 'max_tokens' : Number.isFinite(cut) ? 'stop_sequence' : 'end_turn',
    usage,
    /** Tokens the model must read itself: what was not found in the cache. */
    uncachedTokens: prompt - cacheReadInputTokens,
  };
}

/** Usage as the wire carries it: the cache fields only when the request used the cache. */
const wireUsage = (usage: ModelUsage) =>
  usage.cacheReadInputTokens || usage.cacheWriteInputTokens
    ? usage
    : { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.totalTokens };

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
    prefillMsPer1kTokens: options.prefillMsPer1kTokens ?? 0,
    region: options.region ?? 'us-east-1',
  };
  const faults: ModelFault[] = [];
  const requests: RecordedConverse[] = [];
  const firstTokenWrittenAt: number[] = [];
  const tokenGapsMs: number[] = [];
  const usageLog: ModelUsage[] = [];
  const firstTokenDelaysMs: number[] = [];
  const cache = new PromptCache();
  let held: { afterTokens: number; released: Promise<void> } | undefined;
  const keep = <T>(list: T[], item: T, max: number) => {
    list.push(item);
    if (list.length > max) list.splice(0, list.length - max);
  };

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
    const refused = attachmentProblem(body);
    if (refused) {
      sendAwsError(res, 400, 'ValidationException', refused);
      return;
    }
    // As Bedrock: a model takes cache points and latency-optimized inference only where it supports them.
    const capabilities = modelCapabilities(modelId);
    const cachePoints = cachePointCount(body);
    if (cachePoints > 0 && capabilities.promptCacheMinTokens === undefined) {
      sendAwsError(res, 400, 'ValidationException', `The model ${modelId} does not support prompt caching.`);
      return;
    }
    if (cachePoints > MAX_CACHE_POINTS) {
      sendAwsError(res, 400, 'ValidationException', `At most ${MAX_CACHE_POINTS} cache points are allowed.`);
      return;
    }
    if (
      body.performanceConfig?.latency === 'optimized' &&
      !capabilities.latencyOptimizedRegions.includes(settings.region)
    ) {
      sendAwsError(
        res,
        400,
        'ValidationException',
        `Latency-optimized inference is not available for ${modelId} in ${settings.region}.`,
      );
      return;
    }
    const started = Date.now();
    const { deltas, stopReason, usage, uncachedTokens } = plan(
      body,
      cache,
      cachePoints > 0 ? capabilities.promptCacheMinTokens : undefined,
    );
    keep(usageLog, usage, 10_000);
    const firstTokenDelay =
      settings.firstTokenDelayMs + (settings.prefillMsPer1kTokens * uncachedTokens) / 1000;
    keep(firstTokenDelaysMs, firstTokenDelay, 10_000);
    if (match[2] === 'converse') {
      await sleep(firstTokenDelay + settings.perTokenDelayMs * deltas.length);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          output: { message: { role: 'assistant', content: [{ text: deltas.join('') }] } },
          stopReason,
          usage: wireUsage(usage),
          metrics: { latencyMs: Date.now() - started },
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
    writeFrame(res, eventFrame('messageStart', { role: 'assistant' }));
    await sleep(firstTokenDelay);
    let lastWrite = 0;
    for (const [index, text] of deltas.entries()) {
      if (index > 0 && settings.perTokenDelayMs > 0) await sleep(settings.perTokenDelayMs);
      if (held && index >= held.afterTokens) await held.released;
      if (fault === 'midstream' && index === Math.min(3, deltas.length - 1)) {
        writeFrame(res, exceptionFrame('modelStreamErrorException', 'The model stopped unexpectedly.'));
        res.end();
        return;
      }
      if (!writeFrame(res, eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text } })))
        return;
      const now = performance.now();
      if (index === 0) firstTokenWrittenAt.push(now);
      else keep(tokenGapsMs, now - lastWrite, 1_000_000);
      lastWrite = now;
    }
    writeFrame(res, eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
    writeFrame(res, eventFrame('messageStop', { stopReason }));
    writeFrame(
      res,
      eventFrame('metadata', { usage: wireUsage(usage), metrics: { latencyMs: Date.now() - started } }),
    );
    res.end();
  }, options.port);

  return {
    ...server,
    options: settings,
    requests,
    firstTokenWrittenAt,
    tokenGapsMs,
    usage: usageLog,
    firstTokenDelaysMs,
    failNext(fault, times = 1) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    hold(afterTokens) {
      const { promise: released, resolve: release } = Promise.withResolvers<void>();
      const gate = { afterTokens, released };
      held = gate;
      return () => {
        if (held === gate) held = undefined;
        release();
      };
    },
  };
}
