import * as z from 'zod/mini';

export const SourceSchema = z.object({
  id: z.string(),
  title: z.string(),
  uri: z.string(),
  score: z.number(),
  excerpt: z.string(),
});
export type Source = z.infer<typeof SourceSchema>;

export const UsageSchema = z.object({ input_tokens: z.int(), output_tokens: z.int() });
export type Usage = z.infer<typeof UsageSchema>;

/**
 * One chat message as the stream handler sends it to the queue and the consumer persists it.
 * The consumer validates every record against this schema.
 */
export const ChatMessageSchema = z.object({
  messageId: z.uuid({ version: 'v7' }),
  sessionId: z.uuid(),
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
