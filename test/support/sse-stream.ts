import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface LiveStream {
  status: number;
  headers: Headers;
  /** Every SSE event so far, with its `id:` (eventsource-parser does the parsing). */
  events: EventSourceMessage[];
  /** Resolves once `count` events have arrived (or the stream ended). */
  waitForEvents(count: number): Promise<EventSourceMessage[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<EventSourceMessage[]>;
  /** Drops the connection, as a closed tab or a lost network would. */
  disconnect(): void;
  text(): string;
}

/** Opens a request and reads its SSE body as it arrives, so a test can act in the middle of a stream. */
export async function openStream(
  url: string,
  init: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<LiveStream> {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: init.method ?? 'POST',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    signal: abort.signal,
  });
  const events: EventSourceMessage[] = [];
  let raw = '';
  let finished = false;
  const waiters: Array<{ count: number; resolve: (e: EventSourceMessage[]) => void }> = [];
  const wake = (final: boolean) => {
    for (const waiter of [...waiters]) {
      if (final || events.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(events);
      }
    }
  };
  const parser = createParser({
    onEvent: (event) => {
      events.push(event);
      wake(false);
    },
  });
  const ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body ?? []) {
        const piece = decoder.decode(chunk, { stream: true });
        raw += piece;
        parser.feed(piece);
      }
    } catch {
      // A disconnect by the test ends the reading; what arrived stays in `events`.
    }
    finished = true;
    wake(true);
    return events;
  })();
  return {
    status: response.status,
    headers: response.headers,
    events,
    waitForEvents: (count) =>
      finished || events.length >= count
        ? Promise.resolve(events)
        : new Promise((resolve) => waiters.push({ count, resolve })),
    ended,
    disconnect: () => abort.abort(),
    text: () => raw,
  };
}
