import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  type SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeQueueBody, encodeQueueBody } from '../../../functions/adapters/sqs-message-codec.ts';
import { SqsMessageOutbox } from '../../../functions/adapters/sqs-outbox.ts';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';
import { faithfulFauxqsCharacterRule } from '../../../local/stack/stack.ts';

// Integration: the local SQS emulator (fauxqs, with SQS's character rule) and the outbox in front of it.
// SQS's rule, written out independently of the codec: what a body may contain.
const SQS_ALLOWED = /^[\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;

let fauxqs: FauxqsServer;
let sqs: SQSClient;
let queueUrl: string;
beforeAll(async () => {
  await faithfulFauxqsCharacterRule();
  fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });
  fauxqs.createQueue('outbox.fifo', { attributes: { FifoQueue: 'true' } });
  queueUrl = `http://127.0.0.1:${fauxqs.port}/000000000000/outbox.fifo`;
  sqs = new SQSClient(localClientConfig(`http://127.0.0.1:${fauxqs.port}`));
});
afterAll(async () => {
  sqs.destroy();
  await fauxqs.stop();
});

let sequence = 0;
const message = (content: string): ChatMessage => ({
  messageId: `m-${++sequence}`,
  sessionId: 's',
  userId: 'u',
  role: 'user',
  content,
  createdAt: '2026-12-04T15:00:00.000Z',
});

async function receiveOne(): Promise<string> {
  const { Messages } = await sqs.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 1 }),
  );
  const [received] = Messages ?? [];
  if (!received?.Body) throw new Error('no message');
  await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: received.ReceiptHandle }));
  return received.Body;
}

const send = (body: string) =>
  sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: body,
      MessageGroupId: 'g',
      MessageDeduplicationId: `raw-${++sequence}`,
    }),
  );

describe('the local queue keeps SQS character rule', () => {
  it('accepts emoji, CJK and every character above U+FFFF, as SQS does', async () => {
    await send('😀 你好 𝄞 \u{10FFFF}');
    expect(await receiveOne()).toBe('😀 你好 𝄞 \u{10FFFF}');
  });

  it.each([
    ['U+FFFF', '\uFFFF'],
    ['U+FFFE', '\uFFFE'],
    ['U+0001', '\u0001'],
    ['a lone surrogate', '\uD800'],
  ])('refuses a raw %s, as SQS does', async (_name, character) => {
    await expect(send(`a${character}b`)).rejects.toThrow(/Invalid characters/);
  });
});

describe('the outbox sends any text a user may type', () => {
  const cases = [
    'emoji 😀👩‍👩‍👧 and CJK 你好世界 한국어',
    'noncharacters \uFFFE\uFFFF and a backslash before one \\\uFFFF',
    'lone surrogates \uD800 x \uDFFF and a reversed pair \uDC00\uD800',
    'controls \u0000\u0001\u0008\u000B\u000C\u001F\u007F and \t\n\r',
    'text that looks escaped \\uFFFF \\\\uFFFE "quoted"',
  ];
  it.each(cases)('%j goes through the queue and decodes to the same message', async (content) => {
    const outbox = new SqsMessageOutbox(sqs, queueUrl);
    const original = message(content);
    await outbox.send(original);
    const body = await receiveOne();
    expect(body).toMatch(SQS_ALLOWED);
    expect(decodeQueueBody(body)).toEqual(original);
  });

  it('encodes every code point to a body SQS accepts that decodes back (property)', () => {
    const anyCodePoint = fc.integer({ min: 0, max: 0x10ffff }).map((cp) => String.fromCodePoint(cp));
    fc.assert(
      fc.property(fc.array(anyCodePoint, { maxLength: 40 }), (characters) => {
        const content = characters.join('');
        const body = encodeQueueBody(message(content));
        return SQS_ALLOWED.test(body) && (decodeQueueBody(body) as ChatMessage).content === content;
      }),
      { numRuns: 2000 },
    );
  });

  it('plain JSON, what the outbox sent before, is refused by the queue for U+FFFF', async () => {
    await expect(send(JSON.stringify(message('\uFFFF')))).rejects.toThrow(/Invalid characters/);
  });
});

describe('the outbox coalesces the sends of concurrent turns into batches', () => {
  /** The emulator's client, counting the requests and the entries each carried. */
  const counting = () => {
    const batches: number[] = [];
    const client = {
      send: (command: SendMessageBatchCommand) => {
        batches.push(command.input.Entries?.length ?? 0);
        return sqs.send(command);
      },
    } as unknown as SQSClient;
    return { client, batches };
  };

  it('sends one message at once, and those made while a request is out in batches of 10, in order', async () => {
    const { client, batches } = counting();
    const outbox = new SqsMessageOutbox(client, queueUrl);
    const sent = Array.from({ length: 25 }, (_, i) => message(`turn ${i}`));
    await Promise.all(sent.map((m) => outbox.send(m)));
    expect(batches).toEqual([1, 10, 10, 4]);
    const received: unknown[] = [];
    while (received.length < sent.length) received.push(decodeQueueBody(await receiveOne()));
    expect(received).toEqual(sent);
    await outbox.send(message('alone'));
    expect(batches).toEqual([1, 10, 10, 4, 1]);
  });

  it('keeps a batch within 256 KiB', async () => {
    const { client, batches } = counting();
    const outbox = new SqsMessageOutbox(client, queueUrl);
    const large = Array.from({ length: 4 }, (_, i) => message(`${i}`.padEnd(100 * 1024, 'x')));
    await Promise.all([outbox.send(message('first')), ...large.map((m) => outbox.send(m))]);
    expect(batches).toEqual([1, 2, 2]);
    for (let i = 0; i < 5; i++) await receiveOne();
  });

  it("rejects only the entry SQS refused, by SQS's code, and every entry when the request fails", async () => {
    const requests: SendMessageBatchCommand[] = [];
    const refusing = {
      send: async (command: SendMessageBatchCommand) => {
        requests.push(command);
        if (requests.length === 3) throw Object.assign(new Error('down'), { name: 'ServiceUnavailable' });
        return requests.length === 1
          ? { Successful: [{ Id: '0' }], Failed: [] }
          : {
              Successful: [{ Id: '0' }],
              Failed: [{ Id: '1', Code: 'InvalidParameterValue', SenderFault: true, Message: 'refused' }],
            };
      },
    } as unknown as SQSClient;
    const outbox = new SqsMessageOutbox(refusing, queueUrl);
    const results = await Promise.allSettled([0, 1, 2].map((i) => outbox.send(message(`m${i}`))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ name: 'InvalidParameterValue' });
    const failed = await Promise.allSettled([outbox.send(message('a')), outbox.send(message('b'))]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
    expect(requests.map((r) => r.input.Entries?.length)).toEqual([1, 2, 1, 1]);
  });
});
