import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { describe, expect, it } from 'vitest';
import { BedrockChatModel } from '../../../functions/adapters/bedrock-model.ts';
import { DEFAULT_ATTACHMENT_CAPS } from '../../../functions/contracts/defaults.ts';
import { type AttachmentDraft, parseDataUrl, readAttachments } from '../../../functions/core/attachments.ts';
import { RequestRejected } from '../../../functions/core/errors.ts';
import type { AttachmentMediaType } from '../../../functions/core/messages.ts';
import { toConverseMessages } from '../../../functions/core/prompt.ts';

const b64 = (bytes: number[] | string) =>
  Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Uint8Array.from(bytes)).toString(
    'base64',
  );
/** The first bytes of each type, then padding: what the signature check reads. */
const SAMPLES: Record<AttachmentMediaType, string> = {
  'image/png': b64('\x89PNG\r\n\x1a\n0000'),
  'image/jpeg': b64([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]),
  'image/gif': b64('GIF89a000000'),
  'image/webp': b64('RIFF\x10\x00\x00\x00WEBPVP8 '),
  'application/pdf': b64('%PDF-1.7\n%%EOF\n'),
};
const draft = (mediaType: unknown, data: unknown, name?: unknown): AttachmentDraft => ({
  mediaType,
  data,
  name,
  fields: { mediaType: 'f.type', data: 'f.data', name: 'f.name' },
});
const fieldOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof RequestRejected ? error.details?.field : String(error);
  }
  return undefined;
};

describe('readAttachments', () => {
  it('takes each of the five types with matching bytes, and names files that came without a name', () => {
    const types = Object.keys(SAMPLES) as AttachmentMediaType[];
    const read = readAttachments(
      types.map((t) => draft(t, SAMPLES[t])),
      DEFAULT_ATTACHMENT_CAPS,
      'attachments',
    );
    expect(read.map((a) => [a.mediaType, a.name])).toEqual([
      ['image/png', 'image-1.png'],
      ['image/jpeg', 'image-2.jpeg'],
      ['image/gif', 'image-3.gif'],
      ['image/webp', 'image-4.webp'],
      ['application/pdf', 'document-5.pdf'],
    ]);
  });

  it('refuses every declared type whose bytes are another type, naming the data field', () => {
    for (const declared of Object.keys(SAMPLES) as AttachmentMediaType[]) {
      for (const [actual, data] of Object.entries(SAMPLES)) {
        if (actual === declared) continue;
        expect(fieldOf(() => readAttachments([draft(declared, data)], DEFAULT_ATTACHMENT_CAPS, 'a'))).toBe(
          'f.data',
        );
      }
    }
  });

  it('refuses too many files, unknown types, non-base64 data, oversized files and a non-string name', () => {
    const png = draft('image/png', SAMPLES['image/png']);
    const caps = { maxCount: 2, maxImageBytes: 12, maxDocumentBytes: 100 };
    expect(fieldOf(() => readAttachments([png, png, png], caps, 'attachments'))).toBe('attachments');
    expect(fieldOf(() => readAttachments([draft('image/svg+xml', 'PHN2Zz4=')], caps, 'a'))).toBe('f.type');
    expect(fieldOf(() => readAttachments([draft('image/png', 'iVBOR*==')], caps, 'a'))).toBe('f.data');
    expect(
      fieldOf(() => readAttachments([draft('image/png', b64('\x89PNG\r\n\x1a\n00000'))], caps, 'a')),
    ).toBe('f.data');
    expect(fieldOf(() => readAttachments([draft('image/png', SAMPLES['image/png'], 7)], caps, 'a'))).toBe(
      'f.name',
    );
  });

  it('splits data URLs, and nothing else', () => {
    expect(parseDataUrl('data:image/PNG;base64,AAAA')).toEqual({ mediaType: 'image/png', data: 'AAAA' });
    expect(parseDataUrl('https://example.com/a.png')).toBeUndefined();
    expect(parseDataUrl('data:image/png,AAAA')).toBeUndefined();
  });
});

describe('attachments in the Converse request', () => {
  const model = new BedrockChatModel(
    new BedrockRuntimeClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    }),
    {
      modelId: 'local.grounded-echo-v1',
      maxTokens: 100,
      temperature: 0.3,
      promptCaching: false,
      latency: 'standard',
    },
  );
  const pdf = (name: string) => ({
    mediaType: 'application/pdf' as const,
    name,
    bytes: Buffer.from('%PDF-1.7'),
  });

  it('puts images and documents after the text, with valid, unique document names', () => {
    const png = {
      mediaType: 'image/png' as const,
      name: 'a.png',
      bytes: Buffer.from(SAMPLES['image/png'], 'base64'),
    };
    const input = model.buildInput({
      system: 's',
      messages: toConverseMessages([], 'What is this?', [png, pdf('Q3 report.pdf'), pdf('Q3 report?pdf')]),
    });
    const content = input.messages?.[0]?.content ?? [];
    expect(content[0]).toEqual({ text: 'What is this?' });
    expect(content[1]).toMatchObject({ image: { format: 'png' } });
    expect(content.slice(2).map((b) => b.document?.name)).toEqual(['Q3 report pdf', 'Q3 report pdf (2)']);
    expect(content[2]).toMatchObject({ document: { format: 'pdf' } });
  });

  it('names earlier files left out of the budget in their turn, and merges files of merged turns', () => {
    const messages = toConverseMessages(
      [
        {
          role: 'user',
          content: 'first',
          messageId: 'm1',
          attachments: [{ key: 'k', mediaType: 'application/pdf', name: 'old.pdf', size: 9 }],
        },
        { role: 'user', content: 'second', files: [pdf('new.pdf')] },
      ],
      'third',
    );
    expect(messages).toHaveLength(1);
    expect(messages[0]?.content).toContain('[Attached earlier, not shown again: old.pdf (application/pdf)]');
    expect(messages[0]?.files?.map((f) => f.name)).toEqual(['new.pdf']);
  });
});
