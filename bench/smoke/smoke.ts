import { parseArgs } from 'node:util';
import { type ChatResponse, chat } from '../../local/stack/sse-client.ts';

interface SmokeResult {
  ok: boolean;
  problems: string[];
  /** Each event's arrival, in ms after the request was sent. */
  arrivals: Array<{ type: string; atMs: number }>;
}

/**
 * Streams one turn and checks what only a real deploy can prove: the response streams (session_id
 * well before the first token, so the padding beat any hold on small writes) and the turn completes.
 */
export async function runSmoke(url: string, token: string, message = 'What is an emergency fund?') {
  // Without retrieval session_id is the only write before the first token: nothing else can release a hold.
  const response: ChatResponse = await chat(url, token, { message, use_rag: false });
  const arrivals = response.events.map((e) => ({
    type: e.data.type,
    atMs: Math.round((e.at - response.startedAt) * 10) / 10,
  }));
  const problems: string[] = [];
  if (response.status !== 200) problems.push(`status ${response.status}: ${JSON.stringify(response.json)}`);
  const sessionAt = arrivals.find((a) => a.type === 'session_id')?.atMs;
  const firstTokenAt = arrivals.find((a) => a.type === 'token')?.atMs;
  if (sessionAt === undefined) problems.push('no session_id event');
  if (firstTokenAt === undefined) problems.push('no token event');
  // When the model's first token reached the handler, in ms after the handler started (from `done`).
  const done = response.events.find((e) => e.data.type === 'done')?.data as
    | { timings?: { model_first_token_ms?: number } }
    | undefined;
  const modelFirstTokenMs = done?.timings?.model_first_token_ms ?? 0;
  if (sessionAt !== undefined && firstTokenAt !== undefined) {
    // Streaming works when session_id leaves at once: it must beat the first token by a clear margin,
    // and arrive before the model had answered at all (a held session_id never can: the client's clock
    // starts before the handler's, so held, it arrives after the model's first token by the handler's
    // own count; that check does not depend on how fast the tokens after it are delivered).
    const margin = Math.min(100, firstTokenAt / 2);
    if (firstTokenAt - sessionAt < margin || (modelFirstTokenMs > 0 && sessionAt >= modelFirstTokenMs)) {
      problems.push(
        `session_id arrived at ${sessionAt} ms, only ${Math.round(firstTokenAt - sessionAt)} ms before the first token at ${firstTokenAt} ms (the model answered the handler at ${modelFirstTokenMs} ms): the response is held or buffered`,
      );
    }
  }
  const last = arrivals.at(-1)?.type;
  if (last !== 'done') problems.push(`the stream ended with ${last ?? 'nothing'}, not done`);
  return { ok: problems.length === 0, problems, arrivals } satisfies SmokeResult;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, token: { type: 'string' }, message: { type: 'string' } },
  });
  if (!values.url || !values.token) {
    console.error('usage: npm run smoke -- --url <FunctionUrl> --token <JWT> [--message <text>]');
    process.exit(2);
  }
  const result = await runSmoke(values.url, values.token, values.message);
  for (const { type, atMs } of result.arrivals) console.log(`${String(atMs).padStart(9)} ms  ${type}`);
  for (const problem of result.problems) console.error(`FAIL: ${problem}`);
  console.log(result.ok ? 'smoke test passed' : 'smoke test failed');
  process.exit(result.ok ? 0 : 1);
}
