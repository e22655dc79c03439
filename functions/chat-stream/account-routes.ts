import type { Invocation, RouteResponse } from './turn-routes.ts';

/**
 * Today's use against the limits: turns and tokens as persisted by the consumer (they survive the
 * cache), and what the limiters count right now (what the next request is checked against).
 */
export async function usage(inv: Invocation): Promise<RouteResponse> {
  const { runtime, userId } = inv;
  const day = new Date().toISOString().slice(0, 10);
  const [stored, counted, running] = await Promise.all([
    runtime.archive.usageOn(userId, day),
    runtime.limits.state(userId),
    runtime.registry?.runningTurns(userId).catch(() => 0) ?? 0,
  ]);
  const { config } = runtime;
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify({
      day,
      turns: stored.turns,
      input_tokens: stored.inputTokens,
      output_tokens: stored.outputTokens,
      limits: {
        turns_per_minute: { limit: config.LIMIT_TURNS_PER_MINUTE, used: counted.turnsThisMinute },
        concurrent_streams: { limit: config.LIMIT_CONCURRENT_STREAMS, used: running },
        tokens_per_day: { limit: config.LIMIT_TOKENS_PER_DAY, used: counted.tokensToday },
      },
    }),
  };
}
