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

/**
 * Where a user message's attachment is kept (an object store key), never its bytes: the queue message,
 * the table item and the cached history carry only this.
 */
const AttachmentRefSchema = z.object({
  key: z.string().check(z.minLength(1), z.maxLength(1024)),
  mediaType: z.enum(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf']),
  name: z.string().check(z.maxLength(200)),
  size: z.int(),
});
export type AttachmentRef = z.infer<typeof AttachmentRefSchema>;
export type AttachmentMediaType = AttachmentRef['mediaType'];

/** An attachment's bytes, as a turn hands it to the model (and to the object store). */
export interface AttachmentContent {
  mediaType: AttachmentMediaType;
  name: string;
  bytes: Uint8Array;
}
const FEEDBACK_REASON_CHARS = 500;
export const FeedbackSchema = z.strictObject({
  rating: z.enum(['up', 'down'], 'rating must be up or down'),
  reason: z.optional(
    z
      .string('reason must be a string')
      .check(
        z.maxLength(FEEDBACK_REASON_CHARS, `reason must be at most ${FEEDBACK_REASON_CHARS} characters`),
      ),
  ),
});

export const ChatMessageSchema = z.object({
  /** Server-made UUIDv7: time-ordered, so the table and the consumer can order a conversation by it. */
  messageId: z.uuid({ version: 'v7' }),
  sessionId: opaqueId('sessionId'),
  /** The id the client gave its message (AI SDK message id, `message_id`, `Idempotency-Key`). */
  clientMessageId: z.optional(opaqueId('clientMessageId')),
  /** A regenerated answer names the answer it is a new version of (both stay readable). */
  replaces: z.optional(z.uuid({ version: 'v7' })),
  /** The message this one follows on its branch (`null`: the first); absent on messages stored before versions. */
  parentId: z.optional(z.nullable(z.uuid({ version: 'v7' }))),
  userId: z.string().check(z.minLength(1), z.maxLength(256)),
  role: z.enum(['user', 'assistant']),
  content: z.string().check(z.maxLength(200_000)),
  createdAt: z.iso.datetime(),
  sources: z.optional(z.array(SourceSchema)),
  usage: z.optional(UsageSchema),
  stopReason: z.optional(z.string()),
  /** A user message's files, stored apart (see AttachmentRef). */
  attachments: z.optional(z.array(AttachmentRefSchema)),
  /** The model that wrote an assistant message (usage is counted per model). */
  model: z.optional(z.string().check(z.maxLength(256))),
  /** The person's rating of an answer; set by the feedback route on the stored item, never queued. */
  feedback: z.optional(
    z.object({
      rating: z.enum(['up', 'down']),
      reason: z.optional(z.string()),
      updatedAt: z.optional(z.string()),
    }),
  ),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;
export type Feedback = NonNullable<ChatMessage['feedback']>;

export interface UserProfile {
  userId: string;
  name?: string;
  preferences?: Record<string, string>;
}

/** A retrieved passage: a source plus the full text the prompt uses. */
export interface Passage extends Source {
  text: string;
}
