import { DEFAULT_ATTACHMENT_CAPS } from '../../contracts/defaults.ts';
import {
  type AttachmentCaps,
  type AttachmentDraft,
  parseDataUrl,
  readAttachments,
} from '../../core/attachments.ts';
import { RequestRejected } from '../../core/errors.ts';
import { type AttachmentContent, OPAQUE_ID } from '../../core/messages.ts';
import type { InferenceSettings } from '../../core/ports.ts';
import { chooseModel, inferenceSettings, type ModelPolicy } from './generation-options.ts';

/** A turn of the client's transcript (stateless mode): what was said before the new question. */
interface TranscriptTurn {
  role: 'user' | 'assistant';
  content: string;
  files?: AttachmentContent[];
}

/**
 * A `/v1/chat/completions` request, checked field by field. `stateful`: the conversation named by
 * `x-session-id` (or a new stored one, `store: true`) is the history and only the last user message is
 * read. `stateless`: the client's messages are the prompt and nothing is stored.
 */
export interface OpenAiTurnRequest {
  mode: 'stateful' | 'stateless';
  /** Stateful: the conversation to continue; `undefined` starts a new stored one. */
  sessionId: string | undefined;
  /** The last user message: the question. */
  message: string;
  /** The question's images (`image_url` parts with data URLs) and PDFs (`file` parts with `file_data`). */
  attachments: AttachmentContent[];
  /** Stateless: the client's system and developer messages, in order. */
  instructions: string[];
  /** Stateless: the turns before the question, oldest first. */
  transcript: TranscriptTurn[];
  clientMessageId: string | undefined;
  useRag: boolean | undefined;
  stream: boolean;
  includeUsage: boolean;
  /** The model that answers (one of the deployment's), never the client's string unchecked. */
  model: string;
  inference: InferenceSettings;
}

export interface OpenAiRequestLimits {
  policy: ModelPolicy;
  maxMessageChars: number;
  /** The deployment's attachment caps (DEFAULTS' when not given). */
  attachments?: AttachmentCaps;
}

/** How many messages a stateless request may carry (the body's 1 MiB bounds their size). */
const MAX_TRANSCRIPT_MESSAGES = 200;

const refuse = (code: string, field: string, message: string) =>
  new RequestRejected('invalid', code, message, { field });

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isEmpty = (value: unknown) =>
  (Array.isArray(value) && value.length === 0) || (isObject(value) && Object.keys(value).length === 0);

/**
 * The fields this service does not implement. A request may still carry one at the value that asks for
 * nothing (`n: 1`, `logprobs: false`, `tools: []`, …): that is what the route does anyway. Any other
 * value is refused with a 400 naming the field, so a client never believes it got what it asked for.
 */
const UNSUPPORTED: Record<string, { neutral: (value: unknown) => boolean; why: string }> = {
  n: { neutral: (v) => v === 1, why: 'Only one choice is generated (n: 1).' },
  tools: { neutral: isEmpty, why: 'Tool calling is not supported.' },
  tool_choice: { neutral: (v) => v === 'none', why: 'Tool calling is not supported.' },
  parallel_tool_calls: { neutral: () => false, why: 'Tool calling is not supported.' },
  functions: { neutral: isEmpty, why: 'Function calling is not supported.' },
  function_call: { neutral: (v) => v === 'none', why: 'Function calling is not supported.' },
  response_format: {
    neutral: (v) => isObject(v) && v.type === 'text' && Object.keys(v).length === 1,
    why: 'Structured output (json_object, json_schema) is not supported; only {"type":"text"}.',
  },
  logprobs: { neutral: (v) => v === false, why: 'Log probabilities are not available from these models.' },
  top_logprobs: { neutral: () => false, why: 'Log probabilities are not available from these models.' },
  logit_bias: { neutral: isEmpty, why: 'Logit bias is not available on these models.' },
  seed: { neutral: () => false, why: 'Seeded sampling is not available on these models.' },
  frequency_penalty: { neutral: (v) => v === 0, why: 'Frequency penalty is not available on these models.' },
  presence_penalty: { neutral: (v) => v === 0, why: 'Presence penalty is not available on these models.' },
  audio: { neutral: () => false, why: 'Audio output is not supported.' },
  modalities: {
    neutral: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
    why: 'Only text output is supported (modalities: ["text"]).',
  },
  prediction: { neutral: () => false, why: 'Predicted outputs are not supported.' },
  web_search_options: { neutral: () => false, why: 'Web search is not supported.' },
  moderation: {
    neutral: () => false,
    why: 'Moderation settings are not supported; the deployment sets guardrails.',
  },
  reasoning_effort: { neutral: () => false, why: 'Reasoning settings are not supported.' },
  verbosity: { neutral: () => false, why: 'Verbosity settings are not supported.' },
  prompt_cache_options: { neutral: () => false, why: 'Prompt caching is set by the deployment.' },
  prompt_cache_retention: { neutral: () => false, why: 'Prompt caching is set by the deployment.' },
  service_tier: {
    neutral: (v) => v === 'auto' || v === 'default',
    why: 'Only the default service tier exists ("auto" or "default").',
  },
};

/**
 * Fields that identify the caller or hint at caching for OpenAI's own routing. The bearer token already
 * identifies the user and the deployment decides caching, so they are accepted and have no effect.
 */
const NO_EFFECT = new Set(['user', 'safety_identifier', 'prompt_cache_key']);

/** Fields read below; everything else is either in the tables above or unknown (refused). */
const HONOURED = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'store',
  'metadata',
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'stop',
]);

/** `metadata` keys this route reads; OpenAI's other uses of metadata (stored completions) do not exist here. */
const METADATA_KEYS = new Set(['session_id', 'message_id', 'use_rag']);

/** Own keys only: a field named `__proto__` or `constructor` is unknown, not Object.prototype's. */
const unsupportedField = (field: string) =>
  Object.hasOwn(UNSUPPORTED, field) ? UNSUPPORTED[field] : undefined;

function checkFields(body: Json) {
  for (const [field, value] of Object.entries(body)) {
    if (HONOURED.has(field)) continue;
    if (NO_EFFECT.has(field)) {
      if (value !== null && typeof value !== 'string') {
        throw refuse('invalid_value', field, `${field} must be a string.`);
      }
      continue;
    }
    const unsupported = unsupportedField(field);
    if (!unsupported) {
      throw refuse('unknown_parameter', field, `Unknown parameter: ${field}.`);
    }
    if (value !== null && !unsupported.neutral(value)) {
      throw refuse('unsupported_parameter', field, `${field} is not supported. ${unsupported.why}`);
    }
  }
}

/** An `image_url` part (a data URL; remote URLs are not fetched) or a `file` part (`file_data`, no file ids). */
function attachmentDraft(part: Json, at: string): AttachmentDraft {
  if (part.type === 'image_url') {
    const image = isObject(part.image_url) ? part.image_url : {};
    const url = typeof image.url === 'string' ? parseDataUrl(image.url) : undefined;
    if (!url) {
      throw refuse(
        'invalid_value',
        `${at}.image_url.url`,
        `${at}.image_url.url must be a data URL (data:image/png;base64,...); remote URLs are not fetched.`,
      );
    }
    const field = `${at}.image_url.url`;
    return {
      mediaType: url.mediaType,
      data: url.data,
      name: undefined,
      fields: { mediaType: field, data: field, name: field },
    };
  }
  const file = isObject(part.file) ? part.file : {};
  if (file.file_id !== undefined) {
    throw refuse(
      'unsupported_parameter',
      `${at}.file.file_id`,
      `${at}.file.file_id: there is no Files API here; send file_data.`,
    );
  }
  if (typeof file.file_data !== 'string') {
    throw refuse(
      'invalid_value',
      `${at}.file.file_data`,
      `${at}.file.file_data must be the file in base64 (or a data URL).`,
    );
  }
  const url = parseDataUrl(file.file_data);
  const field = `${at}.file.file_data`;
  return {
    mediaType: url?.mediaType ?? 'application/pdf',
    data: url?.data ?? file.file_data,
    name: file.filename,
    fields: { mediaType: field, data: field, name: `${at}.file.filename` },
  };
}

const ATTACHMENT_PARTS: ReadonlySet<string> = new Set(['image_url', 'file']);

/** The text of a message's content and the attachments it carries (user turns only). */
function partsOf(
  content: unknown,
  field: string,
  allowed: ReadonlySet<string>,
): { text: string; drafts: AttachmentDraft[] } {
  if (typeof content === 'string') return { text: content, drafts: [] };
  if (!Array.isArray(content))
    throw refuse('invalid_value', field, `${field} must be a string or an array of parts.`);
  const drafts: AttachmentDraft[] = [];
  const texts = content.flatMap((part, index) => {
    const at = `${field}[${index}]`;
    if (!isObject(part) || typeof part.type !== 'string') {
      throw refuse('invalid_value', at, `${at} must be a content part with a type.`);
    }
    if (!allowed.has(part.type)) {
      throw refuse(
        'unsupported_parameter',
        `${at}.type`,
        `${at}: parts of type ${JSON.stringify(part.type).slice(0, 40)} are not supported here.`,
      );
    }
    if (ATTACHMENT_PARTS.has(part.type)) {
      drafts.push(attachmentDraft(part, at));
      return [];
    }
    if (typeof part.text === 'string') return [part.text];
    if (part.type === 'refusal' && typeof part.refusal === 'string') return [part.refusal];
    throw refuse('invalid_value', `${at}.text`, `${at}.text must be a string.`);
  });
  return { text: texts.join('\n'), drafts };
}

const textOf = (content: unknown, field: string, allowed: ReadonlySet<string>) =>
  partsOf(content, field, allowed).text;

const USER_PARTS: ReadonlySet<string> = new Set(['text', 'image_url', 'file']);
const ASSISTANT_PARTS: ReadonlySet<string> = new Set(['text', 'refusal']);
const SYSTEM_PARTS: ReadonlySet<string> = new Set(['text']);

interface ReadMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  drafts?: AttachmentDraft[];
}

/** Why a message field is refused; a message carries only its role and content (and an assistant's refusal). */
const MESSAGE_FIELDS_REFUSED: Record<string, string> = {
  tool_calls: 'tool calling is not supported',
  function_call: 'tool calling is not supported',
  tool_call_id: 'tool calling is not supported',
  audio: 'audio is not supported',
  name: 'participant names are not supported',
};

function roleOf(message: Json, at: string): 'system' | 'developer' | 'user' | 'assistant' {
  const { role } = message;
  if (role === 'tool' || role === 'function') {
    throw refuse(
      'unsupported_parameter',
      `${at}.role`,
      `${at}: ${role} messages are not supported (no tool calling).`,
    );
  }
  if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
    throw refuse('invalid_value', `${at}.role`, `${at}.role must be system, developer, user or assistant.`);
  }
  return role;
}

function checkMessageFields(message: Json, role: string, at: string) {
  for (const [field, value] of Object.entries(message)) {
    const read = field === 'role' || field === 'content' || (role === 'assistant' && field === 'refusal');
    if (read || value === null || value === undefined) continue;
    const why =
      (Object.hasOwn(MESSAGE_FIELDS_REFUSED, field) && MESSAGE_FIELDS_REFUSED[field]) || 'unknown field';
    throw refuse('unsupported_parameter', `${at}.${field}`, `${at}.${field}: ${why}.`);
  }
}

/** One message, checked field by field like the request: what it cannot honour is refused by name. */
function readMessage(message: unknown, index: number): ReadMessage {
  const at = `messages[${index}]`;
  if (!isObject(message)) throw refuse('invalid_value', at, `${at} must be an object.`);
  const role = roleOf(message, at);
  checkMessageFields(message, role, at);
  if (role === 'assistant') {
    const refusal = typeof message.refusal === 'string' ? message.refusal : '';
    const content =
      message.content === null || message.content === undefined
        ? refusal
        : textOf(message.content, `${at}.content`, ASSISTANT_PARTS);
    return { role, content };
  }
  if (role === 'user') {
    const { text, drafts } = partsOf(message.content, `${at}.content`, USER_PARTS);
    return { role, content: text, drafts };
  }
  return { role: 'system', content: textOf(message.content, `${at}.content`, SYSTEM_PARTS) };
}

function opaque(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !OPAQUE_ID.test(value)) {
    throw refuse('invalid_value', field, `${field} must match [A-Za-z0-9_-]{1,128}`);
  }
  return value;
}

function readMetadata(value: unknown) {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw refuse('invalid_value', 'metadata', 'metadata must be an object of strings.');
  for (const [key, entry] of Object.entries(value)) {
    if (!METADATA_KEYS.has(key)) {
      throw refuse(
        'unsupported_parameter',
        `metadata.${key}`,
        `metadata.${key} is not read here; metadata takes session_id, message_id and use_rag.`,
      );
    }
    if (typeof entry !== 'string')
      throw refuse('invalid_value', `metadata.${key}`, `metadata.${key} must be a string.`);
  }
  const useRag = value.use_rag;
  if (useRag !== undefined && useRag !== 'true' && useRag !== 'false') {
    throw refuse('invalid_value', 'metadata.use_rag', 'metadata.use_rag must be "true" or "false".');
  }
  return {
    sessionId: value.session_id as string | undefined,
    messageId: value.message_id as string | undefined,
    useRag: useRag === undefined ? undefined : useRag === 'true',
  };
}

function readStreamOptions(body: Json): { stream: boolean; includeUsage: boolean } {
  const { stream, stream_options: options } = body;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw refuse('invalid_value', 'stream', 'stream must be a boolean.');
  }
  if (options === undefined || options === null) return { stream: stream === true, includeUsage: false };
  if (!isObject(options))
    throw refuse('invalid_value', 'stream_options', 'stream_options must be an object.');
  for (const [key, value] of Object.entries(options)) {
    if (key === 'include_usage' && (typeof value === 'boolean' || value === null)) continue;
    // Obfuscation pads chunks against length side channels; none is added here, so only `false` is honest.
    if (key === 'include_obfuscation' && (value === false || value === null)) continue;
    throw refuse(
      'unsupported_parameter',
      `stream_options.${key}`,
      `stream_options.${key} is not supported with this value.`,
    );
  }
  return { stream: stream === true, includeUsage: options.include_usage === true };
}

const given = (value: unknown) => value !== undefined && value !== null;

/** Stateful with a conversation id or `store: true`; stateless otherwise (the default). */
function modeOf(store: unknown, sessionId: string | undefined): OpenAiTurnRequest['mode'] {
  if (given(store) && typeof store !== 'boolean') {
    throw refuse('invalid_value', 'store', 'store must be a boolean.');
  }
  if (store === false && sessionId !== undefined) {
    throw refuse(
      'invalid_value',
      'store',
      'store: false asks for a stateless call, but a conversation id (x-session-id) was sent.',
    );
  }
  return sessionId !== undefined || store === true ? 'stateful' : 'stateless';
}

/** The messages, each checked; the last must be the user's question. */
function readMessages(
  list: unknown,
  maxMessageChars: number,
  mode: OpenAiTurnRequest['mode'],
  caps: AttachmentCaps,
) {
  if (!Array.isArray(list) || list.length === 0) {
    throw refuse('invalid_value', 'messages', 'messages must be a non-empty array.');
  }
  if (list.length > MAX_TRANSCRIPT_MESSAGES) {
    throw refuse(
      'invalid_value',
      'messages',
      `messages may hold at most ${MAX_TRANSCRIPT_MESSAGES} messages.`,
    );
  }
  const messages = list.map(readMessage);
  const last = messages.at(-1);
  if (last?.role !== 'user' || last.content.trim() === '' || last.content.length > maxMessageChars) {
    throw refuse(
      'invalid_value',
      `messages[${messages.length - 1}]`,
      `The last message must be a user message of 1 to ${maxMessageChars} characters.`,
    );
  }
  const system = messages.findIndex((m) => m.role === 'system');
  if (mode === 'stateful' && system >= 0) {
    throw refuse(
      'unsupported_parameter',
      `messages[${system}].role`,
      "A stored conversation follows the deployment's instructions: send system messages without x-session-id (stateless).",
    );
  }
  const before = messages.slice(0, -1);
  const filesOf = (m: ReadMessage, index: number) =>
    readAttachments(m.drafts ?? [], caps, `messages[${index}].content`);
  return {
    question: last.content,
    attachments: filesOf(last, messages.length - 1),
    instructions: before.flatMap((m) => (m.role === 'system' ? [m.content] : [])),
    // Earlier turns' files are read only when they are the prompt (stateless): a stored conversation has its own.
    transcript: before.flatMap((m, index) => {
      if (m.role === 'system') return [];
      const files = mode === 'stateless' ? filesOf(m, index) : [];
      return [{ role: m.role, content: m.content, ...(files.length > 0 ? { files } : {}) }];
    }),
  };
}

/** `max_completion_tokens` is OpenAI's current name, `max_tokens` the older one: either, or both alike. */
function readInference(body: Json, policy: ModelPolicy, model: string): InferenceSettings {
  const { max_tokens: maxTokens, max_completion_tokens: maxCompletionTokens } = body;
  if (given(maxTokens) && given(maxCompletionTokens) && maxTokens !== maxCompletionTokens) {
    throw refuse(
      'invalid_value',
      'max_tokens',
      'Send max_completion_tokens or max_tokens, not two different values.',
    );
  }
  return inferenceSettings(
    policy,
    model,
    {
      maxTokens: maxCompletionTokens ?? maxTokens,
      temperature: body.temperature,
      topP: body.top_p,
      stop: body.stop,
    },
    {
      maxTokens: given(maxCompletionTokens) ? 'max_completion_tokens' : 'max_tokens',
      temperature: 'temperature',
      topP: 'top_p',
      stop: 'stop',
    },
  );
}

/**
 * Reads a chat completion request field by field. The mode: a conversation id (`x-session-id` header or
 * `metadata.session_id`) or `store: true` makes it stateful; otherwise it is stateless, and
 * `store: false` with a conversation id is a contradiction the caller must resolve.
 */
export function readOpenAiRequest(
  body: unknown,
  headers: Record<string, string | undefined>,
  limits: OpenAiRequestLimits,
): OpenAiTurnRequest {
  if (!isObject(body)) throw refuse('invalid_request', 'body', 'The request body must be a JSON object.');
  checkFields(body);
  const metadata = readMetadata(body.metadata);
  const sessionId = opaque(headers['x-session-id'] ?? metadata.sessionId, 'session_id');
  const mode = modeOf(body.store, sessionId);
  const { question, attachments, instructions, transcript } = readMessages(
    body.messages,
    limits.maxMessageChars,
    mode,
    limits.attachments ?? DEFAULT_ATTACHMENT_CAPS,
  );
  const model = chooseModel(limits.policy, body.model, 'model');
  const stateless = mode === 'stateless';
  return {
    mode,
    sessionId,
    message: question,
    attachments,
    instructions: stateless ? instructions : [],
    transcript: stateless ? transcript : [],
    clientMessageId: opaque(headers['idempotency-key'] ?? metadata.messageId, 'message_id'),
    useRag: metadata.useRag,
    ...readStreamOptions(body),
    model,
    inference: readInference(body, limits.policy, model),
  };
}
