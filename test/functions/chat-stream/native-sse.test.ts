import { describe, expect, it } from 'vitest';
import { encodeEvent } from '../../../functions/chat-stream/wire/native-sse.ts';

describe('encodeEvent', () => {
  it('writes one SSE data event, optionally behind a comment of padding', () => {
    expect(encodeEvent({ type: 'token', text: 'a\nb' })).toBe('data: {"type":"token","text":"a\\nb"}\n\n');
    const padded = encodeEvent({ type: 'session_id', session_id: 's', message_id: 'm' }, undefined, 100);
    expect(padded.startsWith(`:${' '.repeat(100)}\n`)).toBe(true);
    expect(padded.endsWith('data: {"type":"session_id","session_id":"s"}\n\n')).toBe(true);
  });

  it('puts the event id on its own line before the data, so a client can resume after it', () => {
    expect(encodeEvent({ type: 'token', text: 'x' }, 7)).toBe('id: 7\ndata: {"type":"token","text":"x"}\n\n');
  });
});
