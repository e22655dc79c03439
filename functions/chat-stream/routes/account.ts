import type { UsageSummary } from '../../contracts/api.ts';
import type { ConversationArchive } from '../../core/conversations.ts';
import type { UserLimits } from '../../core/limits.ts';
import { json, type RouteHandler } from '../invocation.ts';

/** What the account routes need: stored daily use, the limiters, and the limits themselves. */
export interface AccountRouteDeps {
  archive: Pick<ConversationArchive, 'usageOn'>;
  limits: Pick<UserLimits, 'state'>;
  /** How many turns the user runs now (0 when that cannot be known). */
  runningTurns(userId: string): Promise<number>;
  config: { turnsPerMinute: number; concurrentStreams: number; tokensPerDay: number };
}

export function accountRoutes(deps: AccountRouteDeps) {
  /**
   * Today's use against the limits: turns and tokens as persisted by the consumer (they survive the
   * cache), and what the limiters count right now (what the next request is checked against).
   */
  const usage: RouteHandler = async (inv) => {
    const { userId } = inv;
    const day = new Date().toISOString().slice(0, 10);
    const [stored, counted, running] = await Promise.all([
      deps.archive.usageOn(userId, day),
      deps.limits.state(userId),
      deps.runningTurns(userId),
    ]);
    const { config } = deps;
    const body: UsageSummary = {
      day,
      turns: stored.turns,
      input_tokens: stored.inputTokens,
      output_tokens: stored.outputTokens,
      models: Object.entries(stored.byModel).map(([model, use]) => ({
        model,
        turns: use.turns,
        input_tokens: use.inputTokens,
        output_tokens: use.outputTokens,
      })),
      limits: {
        turns_per_minute: { limit: config.turnsPerMinute, used: counted.turnsThisMinute },
        concurrent_streams: { limit: config.concurrentStreams, used: running },
        tokens_per_day: { limit: config.tokensPerDay, used: counted.tokensToday },
      },
    };
    return json(200, body, { 'cache-control': 'no-store' });
  };
  return { usage };
}
