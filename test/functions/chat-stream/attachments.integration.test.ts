import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { AbstractChat, type ChatInit, type ChatState, DefaultChatTransport, type UIMessage } from 'ai';
import OpenAI from 'openai';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';
import { answerText, chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Attachments on the three routes with the real clients against the local stack (fauxqs as S3 and SQS, the
// Bedrock emulator checking image/document blocks and saying what it saw).
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;
let s3: S3Client;
let table: ReturnType<typeof tableReader>;
const written: string[] = [];
const realWrite = process.stdout.write.bind(process.stdout);

/** A real 1×1 PNG, and a minimal PDF: the signatures are what the checks read. */
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n',
).toString('base64');
const JPEG_BYTES = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46]).toString('base64');

beforeAll(async () => {
  const redis = await testRedis(1);
  ownedRedis = redis.owned;
  stack = await startLocalStack({
    redisUrl: redis.url,
    poller: false,
    env: { POWERTOOLS_LOG_LEVEL: 'DEBUG', LIMIT_TURNS_PER_MINUTE: '100' },
  });
  s3 = new S3Client({ ...localClientConfig(stack.endpoints.sqs ?? ''), forcePathStyle: true });
  table = tableReader(stack.dynamodb, stack.tableName);
  // Every log line the functions write, to prove no attachment bytes are in them.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    written.push(String(chunk));
    return realWrite(chunk, ...rest);
  }) as typeof process.stdout.write;
});
afterEach(() => {
  expect(written.join('')).not.toContain(PNG.slice(20, 60));
  expect(written.join('')).not.toContain(PDF.slice(8, 48));
});
afterAll(async () => {
  process.stdout.write = realWrite;
  s3.destroy();
  await stack.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
const keysUnder = async (prefix: string) => {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: stack.attachmentsBucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key);
};
const userPrefix = (user: string) => `users/${encodeURIComponent(user)}/`;
const api = async (token: string, path: string, method = 'GET') => {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
};
const nativeTurn = (token: string, body: Record<string, unknown>) => chat(`${stack.url}/`, token, body);
const sessionOf = (r: Awaited<ReturnType<typeof chat>>) =>
  r.events.find((e) => e.data.type === 'session_id')?.data.session_id as string;

describe('attachments on the native route (fetch)', () => {
  it('reach the model, are stored in S3 (never in the queue or logs), come back on later turns and after reload, and go with the conversation', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const first = await nativeTurn(token, {
      message: 'What do these show?',
      use_rag: false,
      attachments: [
        { media_type: 'image/png', data: PNG, name: 'chart.png' },
        { media_type: 'application/pdf', data: PDF, name: 'report.pdf' },
      ],
    });
    expect(first.status).toBe(200);
    expect(answerText(first)).toContain('I see 1 image (PNG) and 1 PDF named report pdf.');
    const sessionId = sessionOf(first);
    const keys = await keysUnder(`${userPrefix(user)}sessions/${sessionId}/`);
    expect(keys).toHaveLength(2);

    // The queue holds the messages with keys only; then the consumer stores them.
    const queued = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
    );
    const bodies = (queued.Messages ?? []).map((m) => m.Body ?? '');
    expect(bodies.some((b) => b.includes('"attachments"'))).toBe(true);
    for (const body of bodies) {
      expect(body).not.toContain(PNG.slice(20, 60));
      expect(body).not.toContain(PDF.slice(8, 48));
    }
    const poller = stack.startPoller();
    try {
      await waitFor(
        async () => (await table.messages(user, sessionId)).length === 2,
        15_000,
        'messages stored',
      );
      const items = await table.messages(user, sessionId);
      const question = items.find((i) => i.role === 'user');
      expect(question?.attachments).toEqual([
        expect.objectContaining({ mediaType: 'image/png', name: 'chart.png', size: 70 }),
        expect.objectContaining({ mediaType: 'application/pdf', name: 'report.pdf' }),
      ]);

      // The stored answer's usage is counted under the model that wrote it.
      // The consumer puts the usage item after the message item: wait for it.
      const usage = await waitFor(async () => {
        const r = await api(token, '/me/usage');
        return r.json.models.length > 0 ? r : undefined;
      });
      expect(usage.json.models).toEqual([
        expect.objectContaining({
          model: 'local.grounded-echo-v1',
          turns: 1,
          input_tokens: expect.any(Number),
        }),
      ]);
      // A later turn's history sends the earlier files again (read back from S3).
      const second = await nativeTurn(token, { message: 'And now?', session_id: sessionId, use_rag: false });
      expect(answerText(second)).toContain('Earlier in this conversation I saw 1 image (PNG) and 1 PDF');

      // After a reload, the stored messages name their files.
      const page = await api(token, `/sessions/${sessionId}/messages`);
      expect(page.json.messages[0].attachments).toEqual([
        { name: 'chart.png', media_type: 'image/png', size: 70 },
        { name: 'report.pdf', media_type: 'application/pdf', size: Buffer.from(PDF, 'base64').length },
      ]);
      expect(page.json.messages[1].model).toBe('local.grounded-echo-v1');

      expect((await api(token, `/sessions/${sessionId}`, 'DELETE')).status).toBe(204);
      expect(await keysUnder(userPrefix(user))).toEqual([]);
    } finally {
      await poller.stop();
    }
  });

  it('DELETE /me removes every attachment of the user, and the consumer those of a turn that raced it', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    for (let i = 0; i < 2; i++) {
      const r = await nativeTurn(token, {
        message: `Look ${i}`,
        use_rag: false,
        attachments: [{ media_type: 'image/png', data: PNG }],
      });
      expect(r.status).toBe(200);
    }
    expect(await keysUnder(userPrefix(user))).toHaveLength(2);
    expect((await api(token, '/me', 'DELETE')).status).toBe(204);
    expect(await keysUnder(userPrefix(user))).toEqual([]);

    // A put that lands after the erasure (a racing turn) is simulated by putting one file back; its message is
    // still in the queue, and the consumer discards it and its files.
    const queued = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
    );
    const key = (queued.Messages ?? [])
      .map((m) => JSON.parse(m.Body ?? '{}') as { userId?: string; attachments?: Array<{ key: string }> })
      .find((m) => m.userId === user && m.attachments)?.attachments?.[0]?.key;
    expect(key).toBeDefined();
    await s3.send(
      new PutObjectCommand({ Bucket: stack.attachmentsBucket, Key: key, Body: Buffer.from(PNG, 'base64') }),
    );
    expect(await keysUnder(userPrefix(user))).toHaveLength(1);
    const poller = stack.startPoller();
    try {
      await waitFor(
        async () => (await keysUnder(userPrefix(user))).length === 0,
        15_000,
        'the raced file deleted',
      );
    } finally {
      await poller.stop();
    }
  });

  it('refuses too many files, a type mismatch, an unknown type and bad base64 with a 400 naming the field', async () => {
    const token = await stack.issuer.mint(newUser());
    const refusal = async (attachments: unknown) => {
      const r = await nativeTurn(token, { message: 'hi', attachments });
      expect(r.status).toBe(400);
      return (r.json as { error: { field: string } }).error.field;
    };
    const png = { media_type: 'image/png', data: PNG };
    expect(await refusal([png, png, png, png, png, png])).toBe('attachments');
    expect(await refusal([png, { media_type: 'image/png', data: JPEG_BYTES }])).toBe('attachments[1].data');
    expect(await refusal([{ media_type: 'image/tiff', data: PNG }])).toBe('attachments[0].media_type');
    expect(await refusal([{ media_type: 'application/pdf', data: 'not base64!' }])).toBe(
      'attachments[0].data',
    );
    expect(await refusal([{ ...png, url: 'x' }])).toBe('attachments[0].url');
  });
});

describe('attachments on /v1/chat/completions (openai SDK)', () => {
  const clientFor = (token: string) =>
    new OpenAI({ apiKey: token, baseURL: `${stack.url}/v1`, maxRetries: 0 });
  const text = { type: 'text' as const, text: 'What is in these?' };
  const image = { type: 'image_url' as const, image_url: { url: `data:image/png;base64,${PNG}` } };
  const file = {
    type: 'file' as const,
    file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'q3.pdf' },
  };
  const content = [text, image, file];

  it('a stored conversation (store: true) passes both to the model and keeps them in S3', async () => {
    const user = newUser();
    const client = clientFor(await stack.issuer.mint(user));
    const completion = await client.chat.completions.create({
      model: 'local.grounded-echo-v1',
      store: true,
      messages: [{ role: 'user', content }],
    });
    expect(completion.choices[0]?.message.content).toContain('I see 1 image (PNG) and 1 PDF named q3 pdf.');
    expect(await keysUnder(userPrefix(user))).toHaveLength(2);
  });

  it('a stateless call reaches the model, stores no file, and its tokens count per model in /me/usage', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const client = clientFor(token);
    const completion = await client.chat.completions.create({
      model: 'local.grounded-echo-v1',
      messages: [
        { role: 'user', content: [text, image] },
        { role: 'assistant', content: 'A chart.' },
        { role: 'user', content: [text, file] },
      ],
    });
    const answer = completion.choices[0]?.message.content ?? '';
    expect(answer).toContain('I see 1 PDF named q3 pdf.');
    expect(answer).toContain('Earlier in this conversation I saw 1 image (PNG).');
    expect(await keysUnder(userPrefix(user))).toEqual([]);
    const usage = await waitFor(async () => {
      const r = await api(token, '/me/usage');
      return r.json.models.length > 0 ? r.json : undefined;
    });
    expect(usage.models).toEqual([
      expect.objectContaining({
        model: 'local.grounded-echo-v1',
        turns: 1,
        output_tokens: expect.any(Number),
      }),
    ]);
    expect(usage.models[0].input_tokens).toBeGreaterThan(0);
  });

  it('a mismatched image is a 400 in the OpenAI shape naming the part', async () => {
    const client = clientFor(await stack.issuer.mint(newUser()));
    const error = await client.chat.completions
      .create({
        model: 'local.grounded-echo-v1',
        messages: [
          {
            role: 'user',
            content: [text, { type: 'image_url', image_url: { url: `data:image/png;base64,${JPEG_BYTES}` } }],
          },
        ],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(
      'messages[0].content[1].image_url.url',
    );
  });
});

class ArrayState<M extends UIMessage> implements ChatState<M> {
  status: ChatState<M>['status'] = 'ready';
  error: Error | undefined;
  messages: M[] = [];
  pushMessage = (m: M) => {
    this.messages = [...this.messages, m];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (i: number, m: M) => {
    this.messages = this.messages.map((x, j) => (j === i ? m : x));
  };
  snapshot = <T>(x: T): T => structuredClone(x);
}
class HeadlessChat extends AbstractChat<UIMessage> {
  constructor(init: ChatInit<UIMessage>) {
    super({ ...init, state: new ArrayState<UIMessage>() });
  }
}

describe('attachments on /api/chat (ai package)', () => {
  it('file parts reach the model and are stored', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const id = uuidv7().replaceAll('-', '').slice(0, 16);
    const chatState = new HeadlessChat({
      id,
      transport: new DefaultChatTransport<UIMessage>({
        api: `${stack.url}/api/chat`,
        headers: () => ({ authorization: `Bearer ${token}` }),
        prepareSendMessagesRequest: ({ id: chatId, messages, trigger, messageId }) => ({
          body: { id: chatId, message: messages.at(-1), trigger, messageId },
        }),
      }),
    });
    await chatState.sendMessage({
      text: 'Describe the attachment',
      files: [
        { type: 'file', mediaType: 'image/png', url: `data:image/png;base64,${PNG}`, filename: 'a.png' },
      ],
    });
    expect(chatState.error).toBeUndefined();
    const answer = chatState.messages.at(-1);
    const text = (answer?.parts ?? []).flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('');
    expect(text).toContain('I see 1 image (PNG).');
    expect(await keysUnder(`${userPrefix(user)}sessions/${id}/`)).toHaveLength(1);
  });
});
