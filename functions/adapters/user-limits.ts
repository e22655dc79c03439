import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { LimitCheck, LimitState, UserLimits } from '../core/limits.ts';
import { type RedisClient, userTag } from './redis-cache.ts';

export interface LimitSettings {
  turnsPerMinute: number;
  tokensPerDay: number;
}

const DAY_SECONDS = 86_400;

/** The shared limiter and the per-environment one that stands in while Redis is unreachable. */
interface LimiterPair {
  redis: RateLimiterRedis | undefined;
  memory: RateLimiterMemory;
}
const utcDay = (now: Date) => now.toISOString().slice(0, 10);
const secondsToMidnight = (now: Date) =>
  Math.max(
    1,
    Math.ceil(
      (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000,
    ),
  );

/** A store error, as opposed to a limit reached (which rate-limiter-flexible reports as a RateLimiterRes). */
const storeFailed = (error: unknown) => !(error instanceof RateLimiterRes);

/**
 * Turns per minute and tokens per UTC day, with rate-limiter-flexible on the shared Redis (without
 * Redis, per environment only). When Redis fails, each execution environment falls back to an in-memory limiter of the same size (an
 * environment then enforces the limit alone, so a user spread over N environments gets up to N times
 * it) and `onFallback` is counted; a limit never fails open silently and never fails closed on a user.
 */
export class RedisUserLimits implements UserLimits {
  readonly #settings: LimitSettings;
  readonly #turns: LimiterPair | undefined;
  readonly #tokens: LimiterPair | undefined;
  readonly #onFallback: () => void;

  constructor(redis: RedisClient | undefined, settings: LimitSettings, onFallback: () => void, prefix = '') {
    this.#settings = settings;
    this.#onFallback = onFallback;
    const pair = (keyPrefix: string, points: number, duration: number): LimiterPair | undefined =>
      points > 0
        ? {
            redis: redis
              ? new RateLimiterRedis({
                  storeClient: redis,
                  keyPrefix: `${prefix}${keyPrefix}`,
                  points,
                  duration,
                })
              : undefined,
            memory: new RateLimiterMemory({ keyPrefix, points, duration }),
          }
        : undefined;
    this.#turns = pair('limit-turns', settings.turnsPerMinute, 60);
    // A day and an hour: the key names its UTC day, so it is a calendar day, and expires after it.
    this.#tokens = pair('limit-tokens', settings.tokensPerDay, DAY_SECONDS + 3600);
  }

  async #withFallback<T>(
    limiter: LimiterPair,
    call: (l: RateLimiterRedis | RateLimiterMemory) => Promise<T>,
  ): Promise<T> {
    if (!limiter.redis) return call(limiter.memory);
    try {
      return await call(limiter.redis);
    } catch (error) {
      if (!storeFailed(error)) throw error;
      this.#onFallback();
      return call(limiter.memory);
    }
  }

  /** Takes one turn from the minute's budget and checks the day's tokens, in parallel (one round trip). */
  async check(userId: string, now = new Date()): Promise<LimitCheck> {
    const key = userTag(userId);
    const tokenKey = `${key}:${utcDay(now)}`;
    const [turns, tokens] = await Promise.all([
      this.#turns
        ? this.#withFallback(this.#turns, (l) => l.consume(key, 1)).then(
            () => undefined,
            (res: RateLimiterRes) => Math.ceil(res.msBeforeNext / 1000),
          )
        : undefined,
      this.#tokens ? this.#withFallback(this.#tokens, (l) => l.get(tokenKey)) : undefined,
    ]);
    if (turns !== undefined) {
      return { allowed: false, limit: 'turns_per_minute', retryAfterSeconds: Math.max(1, turns) };
    }
    if (tokens && tokens.consumedPoints >= this.#settings.tokensPerDay) {
      return { allowed: false, limit: 'tokens_per_day', retryAfterSeconds: secondsToMidnight(now) };
    }
    return { allowed: true };
  }

  /** Charges a finished (or stopped) turn's reported tokens to the user's day. */
  async charge(userId: string, tokens: number, now = new Date()): Promise<void> {
    if (!this.#tokens || tokens <= 0) return;
    await this.#withFallback(this.#tokens, (l) => l.penalty(`${userTag(userId)}:${utcDay(now)}`, tokens));
  }

  async state(userId: string, now = new Date()): Promise<LimitState> {
    const key = userTag(userId);
    const [turns, tokens] = await Promise.all([
      this.#turns ? this.#withFallback(this.#turns, (l) => l.get(key)) : undefined,
      this.#tokens ? this.#withFallback(this.#tokens, (l) => l.get(`${key}:${utcDay(now)}`)) : undefined,
    ]);
    return {
      turnsThisMinute: turns?.consumedPoints ?? 0,
      tokensToday: tokens?.consumedPoints ?? 0,
    };
  }
}
