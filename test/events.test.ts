import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamingResult } from '../local/lambda-runtime/invoke-streaming.ts';
import { invokeWithEvent, loadEvent } from '../local/stack/invoke-event.ts';
import { sseEventTypes } from '../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../local/stack/stack.ts';
import { tableReader } from './support/table.ts';

// Every file in events/, run through its handler as `sam local invoke` would (local stack: dynalite, fauxqs, emulators).
let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: null, poller: false });
});
afterAll(() => stack.close());

const events = join(import.meta.dirname, '..', 'events');
const invokeStream = async (file: string) =>
  (await invokeWithEvent(
    stack,
    'chat-stream',
    await loadEvent(stack, join(events, 'function-url', file)),
  )) as StreamingResult;
const invokeSqs = async (file: string) => {
  const event = (await loadEvent(stack, join(events, 'sqs', file))) as SQSEvent;
  return { event, response: (await invokeWithEvent(stack, 'persist', event)) as SQSBatchResponse };
};

describe('events/function-url through the chat-stream handler', () => {
  it('chat-valid.json streams an answer with sources in the given session', async () => {
    const result = await invokeStream('chat-valid.json');
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(sseEventTypes(result.body)[0]).toBe('session_id');
    expect(result.body).toContain('"session_id":"01936b2e-8f00-7c3a-9d2e-5b1f4a6c7d80"');
    expect(sseEventTypes(result.body)).toContain('sources');
    expect(sseEventTypes(result.body).at(-1)).toBe('done');
  });

  it('chat-no-rag.json answers without sources', async () => {
    const types = sseEventTypes((await invokeStream('chat-no-rag.json')).body);
    expect(types).not.toContain('sources');
    expect(types.at(-1)).toBe('done');
  });

  it('chat-new-session.json starts a new session', async () => {
    const result = await invokeStream('chat-new-session.json');
    expect(result.body).toMatch(/"session_id":"[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(sseEventTypes(result.body).at(-1)).toBe('done');
  });

  it.each([
    ['invalid-json.json', 400, 'invalid_json'],
    ['missing-token.json', 401, 'unauthorized'],
    ['oversized-message.json', 400, 'invalid_request'],
  ])('%s is refused with %i', async (file, status, code) => {
    const result = await invokeStream(file);
    expect(result.statusCode).toBe(status);
    expect(result.headers['content-type']).toBe('application/json');
    expect(JSON.parse(result.body)).toMatchObject({ error: { code } });
  });
});

describe('events/api-gateway through the chat-stream handler (chat:frontDoor=apigateway)', () => {
  it('chat-valid.json, a REST proxy event, streams an answer in the given session', async () => {
    const event = await loadEvent(stack, join(events, 'api-gateway', 'chat-valid.json'));
    const result = (await invokeWithEvent(stack, 'chat-stream', event)) as StreamingResult;
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(result.body).toContain('"session_id":"01936b2e-8f00-7c3a-9d2e-5b1f4a6c7d81"');
    expect(sseEventTypes(result.body).at(-1)).toBe('done');
  });
});

describe('events/sqs through the persist handler', () => {
  const table = () => tableReader(stack.dynamodb, stack.tableName);

  it('batch.json persists every message in order', async () => {
    const { event, response } = await invokeSqs('batch.json');
    expect(response.batchItemFailures).toEqual([]);
    const bodies = event.Records.map((r) => JSON.parse(r.body));
    const items = await table().messages('events-user', bodies[0].sessionId);
    expect(items.map((i) => i.messageId)).toEqual(bodies.map((b) => b.messageId));
    expect((await table().session('events-user', bodies[0].sessionId))?.messageCount).toBe(4);
  });

  it('duplicate.json is a success that writes once', async () => {
    const { event, response } = await invokeSqs('duplicate.json');
    expect(response.batchItemFailures).toEqual([]);
    const { sessionId } = JSON.parse(event.Records[0]?.body ?? '{}');
    expect(await table().messages('events-user', sessionId)).toHaveLength(1);
    expect((await table().session('events-user', sessionId))?.messageCount).toBe(1);
  });

  it('poison.json reports the poison record failed and persists the healthy one', async () => {
    const { event, response } = await invokeSqs('poison.json');
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: event.Records[0]?.messageId }]);
    const { sessionId } = JSON.parse(event.Records[1]?.body ?? '{}');
    expect(await table().messages('events-user', sessionId)).toHaveLength(1);
  });
});

describe('events/sqs are what SQS sends', () => {
  const files = readdirSync(join(events, 'sqs')).filter((f) => f.endsWith('.json'));

  it('has sample events to check', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  // SQS (and `sam local generate-event`) set md5OfBody to the MD5 of the body's UTF-8 bytes.
  it.each(files)('%s: every record carries the MD5 of its own body', (file) => {
    const event = JSON.parse(readFileSync(join(events, 'sqs', file), 'utf8')) as SQSEvent;
    expect(event.Records.length).toBeGreaterThan(0);
    for (const record of event.Records)
      expect(record.md5OfBody).toBe(createHash('md5').update(record.body, 'utf8').digest('hex'));
  });
});
