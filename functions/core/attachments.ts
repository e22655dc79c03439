import { errorName } from './background-writes.ts';
import { withDeadline } from './deadline.ts';
import { invalidField } from './errors.ts';
import type { AttachmentContent, AttachmentMediaType, AttachmentRef, ChatMessage } from './messages.ts';
import type { AttachmentStore, TurnLog } from './ports.ts';

/** The media types a user turn may carry: what Converse takes as image (4) and document (PDF) blocks. */
const ATTACHMENT_MEDIA_TYPES: readonly AttachmentMediaType[] = [
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'application/pdf',
];

const isDocument = (mediaType: AttachmentMediaType) => mediaType === 'application/pdf';

export interface AttachmentCaps {
  maxCount: number;
  maxImageBytes: number;
  maxDocumentBytes: number;
}

/** One attachment as a wire format read it, with the request fields to name when it is refused. */
export interface AttachmentDraft {
  mediaType: unknown;
  /** Base64 (standard alphabet), without a data URL prefix. */
  data: unknown;
  name: unknown;
  fields: { mediaType: string; data: string; name: string };
}

const at = (bytes: Uint8Array, offset: number, ascii: string) =>
  [...ascii].every((char, i) => bytes[offset + i] === char.charCodeAt(0));

/** The file signatures ("magic numbers") each declared type must start with. */
const SIGNATURES: Record<AttachmentMediaType, (bytes: Uint8Array) => boolean> = {
  'image/png': (b) => at(b, 0, '\x89PNG\r\n\x1a\n'),
  'image/jpeg': (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  'image/gif': (b) => at(b, 0, 'GIF87a') || at(b, 0, 'GIF89a'),
  'image/webp': (b) => at(b, 0, 'RIFF') && at(b, 8, 'WEBP'),
  'application/pdf': (b) => at(b, 0, '%PDF-'),
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** An attachment's name: what the client gave, trimmed to 200 characters, or one made from its type. */
function nameOf(name: unknown, field: string, mediaType: AttachmentMediaType, index: number): string {
  if (name === undefined || name === null || name === '') {
    return `${isDocument(mediaType) ? 'document' : 'image'}-${index + 1}.${mediaType.split('/')[1]}`;
  }
  if (typeof name !== 'string') throw invalidField(field, `${field} must be a string.`);
  return name.trim().slice(0, 200) || `attachment-${index + 1}`;
}

function readOne(draft: AttachmentDraft, index: number, caps: AttachmentCaps): AttachmentContent {
  const { fields } = draft;
  const mediaType = draft.mediaType as AttachmentMediaType;
  if (typeof draft.mediaType !== 'string' || !ATTACHMENT_MEDIA_TYPES.includes(mediaType)) {
    throw invalidField(
      fields.mediaType,
      `${fields.mediaType} must be one of ${ATTACHMENT_MEDIA_TYPES.join(', ')}.`,
    );
  }
  const data = draft.data;
  if (typeof data !== 'string' || data.length === 0 || data.length % 4 !== 0 || !BASE64.test(data)) {
    throw invalidField(fields.data, `${fields.data} must be the file's bytes in base64.`);
  }
  const cap = isDocument(mediaType) ? caps.maxDocumentBytes : caps.maxImageBytes;
  // Checked on the encoded length first, so an oversized file is never decoded.
  if ((data.length / 4) * 3 - (data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0) > cap) {
    throw invalidField(
      fields.data,
      `${fields.data} is too large: ${isDocument(mediaType) ? 'a document' : 'an image'} may be at most ${cap} bytes.`,
    );
  }
  const bytes = new Uint8Array(Buffer.from(data, 'base64'));
  if (!SIGNATURES[mediaType](bytes)) {
    throw invalidField(fields.data, `${fields.data} is not a ${mediaType} file (its bytes say otherwise).`);
  }
  return { mediaType, name: nameOf(draft.name, fields.name, mediaType, index), bytes };
}

/**
 * Checks a user turn's attachments: the count, each declared type against the allowed ones, the size
 * against its cap and the bytes' signature against the declared type. The first problem is a 400
 * naming its field.
 */
export function readAttachments(
  drafts: AttachmentDraft[],
  caps: AttachmentCaps,
  countField: string,
): AttachmentContent[] {
  if (drafts.length > caps.maxCount) {
    throw invalidField(countField, `At most ${caps.maxCount} attachments may be sent with one message.`);
  }
  return drafts.map((draft, index) => readOne(draft, index, caps));
}

/** Splits a `data:<type>;base64,<data>` URL; `undefined` when it is not one. */
export function parseDataUrl(url: string): { mediaType: string; data: string } | undefined {
  const match = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)(?:;[^,;]*)*;base64,(.*)$/is.exec(url);
  if (!match) return undefined;
  return { mediaType: (match[1] ?? '').toLowerCase(), data: match[2] ?? '' };
}

export interface HistoryAttachmentBudget {
  /** Only the attachments of the last `turns` user messages are sent again... */
  turns: number;
  /** ...newest first, while their bytes fit in this budget. */
  bytes: number;
  timeoutMs: number;
}

/**
 * The earlier attachments the prompt sends again: those of the last `turns` user messages, newest first
 * while they fit in the byte budget, read in parallel within one deadline. What is left out or cannot be
 * read is named in the turn's text instead (see `prompt.ts`), never fails the turn.
 */
export async function loadHistoryAttachments(
  store: AttachmentStore | undefined,
  history: ChatMessage[],
  budget: HistoryAttachmentBudget,
  log: TurnLog,
): Promise<Map<string, AttachmentContent[]>> {
  const loaded = new Map<string, AttachmentContent[]>();
  if (!store) return loaded;
  const recent = history.filter((m) => m.role === 'user').slice(-budget.turns);
  let left = budget.bytes;
  const wanted: Array<{ messageId: string; ref: AttachmentRef }> = [];
  for (const message of recent.reverse()) {
    for (const ref of message.attachments ?? []) {
      if (ref.size > left) continue;
      left -= ref.size;
      wanted.push({ messageId: message.messageId, ref });
    }
  }
  if (wanted.length === 0) return loaded;
  try {
    const bytes = await withDeadline(budget.timeoutMs, 'attachment read', (signal) =>
      Promise.all(wanted.map(({ ref }) => store.get(ref, signal))),
    );
    wanted.forEach(({ messageId, ref }, i) => {
      const content = bytes[i];
      if (!content) return;
      const list = loaded.get(messageId) ?? [];
      list.push({ mediaType: ref.mediaType, name: ref.name, bytes: content });
      loaded.set(messageId, list);
    });
  } catch (error) {
    log.warn('earlier attachments unavailable, answering without them', { error: errorName(error) });
  }
  return loaded;
}
