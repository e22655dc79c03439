import * as z from 'zod/mini';
import { invalidField, RequestRejected } from './errors.ts';
import { OPAQUE_ID, opaqueId } from './messages.ts';

export function chatRequestSchema(maxMessageChars: number) {
  return z.strictObject({
    message: z.string('message must be a string').check(
      z.minLength(1, 'message must not be empty'),
      z.maxLength(maxMessageChars, `message must be at most ${maxMessageChars} characters`),
      z.refine((m) => m.trim().length > 0, 'message must not be blank'),
    ),
    session_id: z.optional(opaqueId('session_id')),
    /** The client's id for this message: a retry with the same id never makes a second turn. */
    message_id: z.optional(opaqueId('message_id')),
    /** The answer this question follows (`null`: the start); absent: after the newest message. */
    parent_id: z.optional(z.nullable(opaqueId('parent_id'))),
    use_rag: z.optional(z.boolean('use_rag must be a boolean')),
    /** One of the deployment's models (`GET /v1/models`); its default when absent. */
    model: z.optional(z.string('model must be a string')),
    /** Generation settings, checked against the chosen model's caps at the edge. */
    max_tokens: z.optional(z.unknown()),
    temperature: z.optional(z.unknown()),
    top_p: z.optional(z.unknown()),
    stop: z.optional(z.unknown()),
    /** Images and PDFs: `{ media_type, data (base64), name }` each, checked by `readAttachments`. */
    attachments: z.optional(
      z.array(
        z.record(z.string(), z.unknown(), 'each attachment must be an object'),
        'attachments must be an array',
      ),
    ),
  });
}

/** Parses a JSON body against a schema; the first problem becomes an `invalid` rejection naming its field. */
export function parseJsonBody<T extends z.ZodMiniType>(body: string, schema: T): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new RequestRejected('invalid', 'invalid_json', 'The request body must be a JSON object.');
  }
  const result = z.safeParse(schema, json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field =
      issue?.path.join('.') || (issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : 'body');
    const message =
      issue?.code === 'unrecognized_keys' ? `unknown field: ${field}` : (issue?.message ?? 'invalid request');
    throw invalidField(field, message);
  }
  return result.data;
}

/**
 * An opaque id from a header or a field the schema did not check (the one check besides `opaqueId` in
 * schemas): `undefined` passes, anything not matching `OPAQUE_ID` is a 400 naming the field.
 */
export function parseOpaqueId(value: string | undefined, what: string, field = what): string | undefined {
  if (value === undefined || OPAQUE_ID.test(value)) return value;
  throw invalidField(field, `${what} must match [A-Za-z0-9_-]{1,128}`);
}
