import { createParser } from 'eventsource-parser';

interface TimedEvent {
  data: Record<string, unknown> & { type: string };
  at: number;
}

export interface ChatResponse {
  status: number;
  headers: Headers;
  events: TimedEvent[];
  json: unknown;
  startedAt: number;
  firstByteAt: number | undefined;
  endedAt: number;
}

/** POSTs to the Function URL over real HTTP and parses the SSE stream with a real SSE parser, timing each event. */
export async function chat(
  url: string,
  token: string | undefined,
  body: unknown,
  init: { headers?: Record<string, string>; method?: string } = {},
): Promise<ChatResponse> {
  const startedAt = performance.now();
  const response = await fetch(url, {
    method: init.method ?? 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...init.headers,
    },
    ...(init.method === 'GET' ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const events: TimedEvent[] = [];
  let firstByteAt: number | undefined;
  let text = '';
  const parser = createParser({
    onEvent: (event) => events.push({ data: JSON.parse(event.data), at: performance.now() }),
  });
  const decoder = new TextDecoder();
  for await (const chunk of response.body ?? []) {
    firstByteAt ??= performance.now();
    const piece = decoder.decode(chunk, { stream: true });
    text += piece;
    parser.feed(piece);
  }
  const isJson = response.headers.get('content-type')?.includes('application/json');
  return {
    status: response.status,
    headers: response.headers,
    events,
    json: isJson ? JSON.parse(text) : undefined,
    startedAt,
    firstByteAt,
    endedAt: performance.now(),
  };
}

export const eventTypes = (r: ChatResponse) => r.events.map((e) => e.data.type);
export const answerText = (r: ChatResponse) =>
  r.events
    .filter((e) => e.data.type === 'token')
    .map((e) => e.data.text)
    .join('');

/** The `type` of each `data:` event in a raw SSE body (curl output, a local invoke's body). */
export const sseEventTypes = (body: string): string[] =>
  [...body.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1] ?? '{}') as { type: string }).type);
