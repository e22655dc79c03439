import * as z from 'zod/mini';

export const DEFAULT_MAX_MESSAGE_CHARS = 8000;

export function chatRequestSchema(maxMessageChars = DEFAULT_MAX_MESSAGE_CHARS) {
  return z.strictObject({
    message: z.string('message must be a string').check(
      z.minLength(1, 'message must not be empty'),
      z.maxLength(maxMessageChars, `message must be at most ${maxMessageChars} characters`),
      z.refine((m) => m.trim().length > 0, 'message must not be blank'),
    ),
    session_id: z.optional(z.uuid('session_id must be a UUID')),
    use_rag: z.optional(z.boolean('use_rag must be a boolean')),
  });
}
export type ChatRequest = z.infer<ReturnType<typeof chatRequestSchema>>;

/** A failure before streaming starts: a plain HTTP response with a JSON body. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  toBody(): string {
    return JSON.stringify({ error: { code: this.code, message: this.message, ...this.details } });
  }
}

export function parseChatRequest(
  body: string | undefined,
  schema: ReturnType<typeof chatRequestSchema>,
): ChatRequest {
  let json: unknown;
  try {
    json = JSON.parse(body ?? '');
  } catch {
    throw new HttpError(400, 'invalid_json', 'The request body must be a JSON object.');
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field =
      issue?.path.join('.') || (issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : 'body');
    const message =
      issue?.code === 'unrecognized_keys' ? `unknown field: ${field}` : (issue?.message ?? 'invalid request');
    throw new HttpError(400, 'invalid_request', message, { field });
  }
  return result.data;
}
