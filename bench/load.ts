import { createParser } from 'eventsource-parser';
import type { Latencies } from './profiles.ts';

export interface Sample {
  firstByteMs: number;
  firstTokenMs: number;
  lastByteMs: number;
  overheadMs: number;
  retrieveRan: boolean;
  server: Record<string, number>;
  cache: Record<string, string>;
  usage: Record<string, number>;
  tokens: number;
  /** Between consecutive token events as this client received them, ms. */
  tokenGapsMs: number[];
}

export interface RequestSpec {
  token: string;
  body: { message: string; session_id?: string; use_rag?: boolean };
}

interface Streamed {
  status: number;
  startedAt: number;
  firstEventAt?: number;
  tokenTimes: number[];
  done?: { timings: Record<string, number>; cache: Record<string, string>; usage: Record<string, number> };
  sessionId?: string;
  last?: string;
  endedAt: number;
}

const TOKEN_PREFIX = '{"type":"token"';

/**
 * One turn over real HTTP, timed as it streams. Token events are recognised by their first bytes and
 * not parsed, so that at 128 streams the client's own work stays small next to what it measures.
 */
export async function streamTurn(
  url: string,
  spec: RequestSpec,
  onFirstToken?: () => void,
): Promise<Streamed> {
  const startedAt = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${spec.token}` },
    body: JSON.stringify(spec.body),
  });
  const result: Streamed = { status: response.status, startedAt, tokenTimes: [], endedAt: 0 };
  const parser = createParser({
    onEvent: (event) => {
      const at = performance.now();
      result.firstEventAt ??= at;
      if (event.data.startsWith(TOKEN_PREFIX)) {
        if (result.tokenTimes.length === 0) onFirstToken?.();
        result.tokenTimes.push(at);
        return;
      }
      result.last = event.data;
      const data = JSON.parse(event.data) as { type: string; session_id?: string };
      if (data.type === 'done') result.done = data as unknown as Streamed['done'];
      else if (data.type === 'session_id') result.sessionId = data.session_id;
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of response.body ?? []) parser.feed(decoder.decode(chunk, { stream: true }));
  result.endedAt = performance.now();
  return result;
}

export interface LoadHooks {
  /** Called once when `count` turns of this run have received their first token. */
  onFirstTokens?: { count: number; run: () => void };
}

/**
 * Sends `n` requests at concurrency `c` (a closed loop: each of `c` workers sends its next request when
 * the previous one ended) and times each on the client: first byte (the session_id event), first token,
 * every token, last byte. Server overhead = first token − injected model first-token delay − injected
 * Retrieve delay when Retrieve ran.
 */
export async function runLoad(
  url: string,
  n: number,
  c: number,
  next: (index: number, worker: number) => Promise<RequestSpec> | RequestSpec,
  latencies: Latencies,
  hooks: LoadHooks = {},
): Promise<{ samples: Sample[]; errors: string[] }> {
  const samples: Sample[] = [];
  const errors: string[] = [];
  let issued = 0;
  let firstTokens = 0;
  const onFirstToken = hooks.onFirstTokens
    ? () => {
        if (++firstTokens === hooks.onFirstTokens?.count) hooks.onFirstTokens.run();
      }
    : undefined;
  const worker = async (id: number) => {
    while (issued < n) {
      const index = issued++;
      const spec = await next(index, id);
      let turn: Streamed;
      try {
        turn = await streamTurn(url, spec, onFirstToken);
      } catch (error) {
        errors.push(String(error));
        continue;
      }
      const firstToken = turn.tokenTimes[0];
      if (turn.status !== 200 || !turn.done || turn.firstEventAt === undefined || firstToken === undefined) {
        errors.push(`status ${turn.status}: ${turn.last ?? ''}`.slice(0, 300));
        continue;
      }
      const retrieveRan = turn.done.cache.rag === 'miss';
      const firstTokenMs = firstToken - turn.startedAt;
      samples.push({
        firstByteMs: turn.firstEventAt - turn.startedAt,
        firstTokenMs,
        lastByteMs: turn.endedAt - turn.startedAt,
        overheadMs: firstTokenMs - latencies.modelFirstToken - (retrieveRan ? latencies.retrieve : 0),
        retrieveRan,
        server: turn.done.timings,
        cache: turn.done.cache,
        usage: turn.done.usage,
        tokens: turn.tokenTimes.length,
        tokenGapsMs: turn.tokenTimes.slice(1).map((t, i) => t - (turn.tokenTimes[i] ?? t)),
      });
    }
  };
  await Promise.all(Array.from({ length: c }, (_, id) => worker(id)));
  return { samples, errors };
}
