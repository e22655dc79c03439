import { RequestRejected } from './errors.ts';

export type LimitName = 'turns_per_minute' | 'concurrent_streams' | 'tokens_per_day';

export type LimitCheck = { allowed: true } | { allowed: false; limit: LimitName; retryAfterSeconds: number };

export interface LimitState {
  turnsThisMinute: number;
  tokensToday: number;
}

/** Per-user budgets, checked after auth and before any streaming or model call. */
export interface UserLimits {
  check(userId: string): Promise<LimitCheck>;
  /** Charges a turn's reported input + output tokens once it ended (stopped turns too). */
  charge(userId: string, tokens: number): Promise<void>;
  state(userId: string): Promise<LimitState>;
}

const MESSAGES: Record<LimitName, string> = {
  turns_per_minute: 'Too many messages in the last minute.',
  concurrent_streams: 'Too many answers are being written for you at once.',
  tokens_per_day: "You have used today's token budget.",
};

/** A refused request: 429 with `retry-after` and the limit's name in the body. */
export function limitReached(limit: LimitName, retryAfterSeconds: number): RequestRejected {
  return new RequestRejected(
    'limited',
    'limit_exceeded',
    `${MESSAGES[limit]} Retry in ${retryAfterSeconds} s.`,
    {
      limit,
      retry_after_seconds: retryAfterSeconds,
    },
  );
}
