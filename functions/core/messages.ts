import { z } from 'zod';

export const SourceSchema = z.object({
  id: z.string(),
  title: z.string(),
  uri: z.string(),
  score: z.number(),
  excerpt: z.string(),
});
export type Source = z.infer<typeof SourceSchema>;

export const UsageSchema = z.object({ input_tokens: z.number().int(), output_tokens: z.number().int() });
export type Usage = z.infer<typeof UsageSchema>;

/**
 * One chat message as the stream handler sends it to the queue and the consumer persists it.
 * The consumer validates every record against this schema.
 */
export const ChatMessageSchema = z.object({
  messageId: z.uuid({ version: 'v7' }),
  sessionId: z.uuid(),
  userId: z.string().min(1).max(256),
  role: z.enum(['user', 'assistant']),
  content: z.string().max(200_000),
  createdAt: z.iso.datetime(),
  sources: z.array(SourceSchema).optional(),
  usage: UsageSchema.optional(),
  stopReason: z.string().optional(),
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
