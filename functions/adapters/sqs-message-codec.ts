/**
 * SQS accepts in a message body only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF
 * and refuses the whole message otherwise; a chat message may hold anything a user typed.
 */
export const SQS_REFUSED_CHARACTER = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const REFUSED_GLOBAL = new RegExp(SQS_REFUSED_CHARACTER.source, 'gu');

/**
 * A queue body SQS accepts for any value: JSON, with every refused character written as a JSON `\uXXXX`
 * escape. JSON.stringify already escapes control characters and lone surrogates; U+FFFE and U+FFFF are
 * what it leaves raw. Refused characters only occur inside JSON strings, so the escape decodes back.
 */
export function encodeQueueBody(value: unknown): string {
  return JSON.stringify(value).replace(
    REFUSED_GLOBAL,
    (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

/** The consumer's side of `encodeQueueBody`. */
export function decodeQueueBody(body: string): unknown {
  return JSON.parse(body);
}
