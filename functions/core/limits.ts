import { RequestRejected } from './errors.ts';

export type LimitName = 'turns_per_minute' | 'concurrent_streams' | 'tokens_per_day' | 'requests_per_minute';

export type LimitCheck = { allowed: true } | { allowed: false; limit: LimitName; retryAfterSeconds: number };

export interface LimitState {
  turnsThisMinute: number;
  tokensToday: number;
}

/**
 * Routes that cost the service (a delete walks stored data, a resume holds an invocation, a search reads
 * up to 1,000 conversations), limited per user.
 */
export type RouteName = 'delete' | 'erase' | 'resume' | 'stop' | 'list' | 'search';

/** Requests per user per minute on each costly route: far above a person's use, far below a loop's. */
export const ROUTE_LIMITS_PER_MINUTE: Record<RouteName, number> = {
  delete: 30,
  erase: 3,
  resume: 30,
  stop: 60,
  list: 60,
  search: 60,
};

/**
 * Per-user budgets. Turns per minute, tokens per day and the stream cap are decided with the turn's
 * claim in one round trip (the turn registry); this port charges tokens, reports use, limits the
 * costly routes, and stands in per environment while the shared store is unreachable.
 */
export interface UserLimits {
  /** Charges a turn's tokens once it ended (stopped and failed turns too, by estimate when unreported). */
  charge(userId: string, tokens: number): Promise<void>;
  state(userId: string): Promise<LimitState>;
  /** One request to a costly route; refused with a retry delay past its per-minute budget. */
  checkRoute(userId: string, route: RouteName): Promise<LimitCheck>;
  /** The per-environment check used while the registry is unreachable; consumes a turn when allowed. */
  checkInMemory(userId: string): LimitCheck;
}

const MESSAGES: Record<LimitName, string> = {
  turns_per_minute: 'Too many messages in the last minute.',
  concurrent_streams: 'Too many answers are being written for you at once.',
  tokens_per_day: "You have used today's token budget.",
  requests_per_minute: 'Too many requests of this kind in the last minute.',
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

/** Throws the 429 for a refused route request; the call sites stay one line. */
export async function checkRoute(
  limits: Pick<UserLimits, 'checkRoute'>,
  userId: string,
  route: RouteName,
): Promise<void> {
  const check = await limits.checkRoute(userId, route);
  if (!check.allowed) throw limitReached(check.limit, check.retryAfterSeconds);
}

/**
 * Tokens of a text the model never counted for us (a stopped or failed turn): about four characters
 * a token for ASCII, one token per other character, two per astral one (emoji), so CJK and other
 * non-Latin text are not undercharged the way a length/4 or a count of spaces would.
 */
export function estimateTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x80) ascii += 1;
    else other += code > 0xffff ? 2 : 1;
  }
  return Math.ceil(ascii / 4) + other;
}
