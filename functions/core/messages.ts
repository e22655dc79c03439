import * as z from 'zod/mini';

const SourceSchema = z.object({
  id: z.string(),
  title: z.string(),
  uri: z.string(),
  score: z.number(),
  excerpt: z.string(),
  /** Where a person can open the source (http or https), when the deployment knows one. */
  url: z.optional(z.string()),
});
export type Source = z.infer<typeof SourceSchema>;

/** Bedrock's input tokens exclude the cached ones: those read from and written to the prompt cache are apart. */
const UsageSchema = z.object({
  input_tokens: z.int(),
  output_tokens: z.int(),
  cache_read_input_tokens: z.optional(z.int()),
  cache_write_input_tokens: z.optional(z.int()),
});
export type Usage = z.infer<typeof UsageSchema>;

/**
 * One chat message as the stream handler sends it to the queue and the consumer persists it.
 * The consumer validates every record against this schema.
 */
/** Session and client message ids are opaque to the server (the AI SDK's are 16 characters, ours UUIDv7). */
export const OPAQUE_ID = /^[A-Za-z0-9_-]{1,128}$/;
export const opaqueId = (what: string) =>
  z.string(`${what} must be a string`).check(z.regex(OPAQUE_ID, `${what} must match [A-Za-z0-9_-]{1,128}`));

export const ChatMessageSchema = z.object({
  /** Server-made UUIDv7: time-ordered, so the table and the consumer can order a conversation by it. */
  messageId: z.uuid({ version: 'v7' }),
  sessionId: opaqueId('sessionId'),
  /** The id the client gave its message (AI SDK message id, `message_id`, `Idempotency-Key`). */
  clientMessageId: z.optional(opaqueId('clientMessageId')),
  /** A regenerated answer names the answer it replaces, which readers then leave out. */
  replaces: z.optional(z.uuid({ version: 'v7' })),
  userId: z.string().check(z.minLength(1), z.maxLength(256)),
  role: z.enum(['user', 'assistant']),
  content: z.string().check(z.maxLength(200_000)),
  createdAt: z.iso.datetime(),
  sources: z.optional(z.array(SourceSchema)),
  usage: z.optional(UsageSchema),
  stopReason: z.optional(z.string()),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export interface UserProfile {
  userId: string;
  name?: string;
  preferences?: Record<string, string>;
}

/** A retrieved passage: a source plus the full text the prompt uses. */
export interface Passage extends Source {
  text: string;
}
