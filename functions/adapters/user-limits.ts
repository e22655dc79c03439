import {
  type LimitCheck,
  type LimitState,
  ROUTE_LIMITS_PER_MINUTE,
  type RouteName,
  type UserLimits,
} from '../core/limits.ts';
import { admissionKeys } from './admission-keys.ts';
import type { RedisClient } from './redis-cache.ts';
import { definedScript } from './redis-turns.ts';

export interface LimitSettings {
  turnsPerMinute: number;
  tokensPerDay: number;
  routesPerMinute?: Record<RouteName, number>;
}

/** A day and an hour: the key names its UTC day, so it counts a calendar day, then expires. */
const TOKEN_KEY_SECONDS = 86_400 + 3600;
const MINUTE_MS = 60_000;

const utcDay = (now: Date) => now.toISOString().slice(0, 10);
const secondsToMidnight = (now: Date) =>
  Math.max(
    1,
    Math.ceil(
      (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000,
    ),
  );

// One command per route request: a fixed one-minute window, and the wait until it ends when over.
const COUNT_ROUTE = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then return math.max(1, redis.call('PTTL', KEYS[1])) end
return 0
`;

/** Fixed windows per key in this environment's memory, pruned as they end. */
class MemoryWindows {
  readonly #windows = new Map<string, { count: number; endsAt: number }>();

  add(key: string, amount: number, windowMs: number, nowMs: number): { count: number; endsAt: number } {
    let window = this.#windows.get(key);
    if (!window || window.endsAt <= nowMs) {
      if (this.#windows.size > 10_000) this.#prune(nowMs);
      window = { count: 0, endsAt: nowMs + windowMs };
      this.#windows.set(key, window);
    }
    window.count += amount;
    return window;
  }

  count(key: string, nowMs: number): number {
    const window = this.#windows.get(key);
    return window && window.endsAt > nowMs ? window.count : 0;
  }

  #prune(nowMs: number) {
    for (const [key, window] of this.#windows) if (window.endsAt <= nowMs) this.#windows.delete(key);
  }
}

/**
 * Token charges, usage, and the costly routes' limits on the shared Redis, in the `adm:` key family
 * that no user-facing delete names. Turns per minute and the day's budget are enforced by the turn
 * registry's admission script; this class charges what it reads. While Redis is unreachable, each
 * environment counts in memory (a user spread over N environments then gets up to N times a limit),
 * `onFallback` is counted, and tokens charged in memory are replayed to Redis once it answers again.
 */
export class RedisUserLimits implements UserLimits {
  readonly #redis: RedisClient | undefined;
  readonly #settings: LimitSettings;
  readonly #routes: Record<RouteName, number>;
  readonly #onFallback: () => void;
  readonly #prefix: string;
  readonly #memory = new MemoryWindows();
  /** Tokens charged while Redis was unreachable, by Redis key, waiting to be replayed. */
  readonly #unreplayed = new Map<string, number>();

  constructor(redis: RedisClient | undefined, settings: LimitSettings, onFallback: () => void, prefix = '') {
    this.#redis = redis;
    this.#settings = settings;
    this.#routes = settings.routesPerMinute ?? ROUTE_LIMITS_PER_MINUTE;
    this.#onFallback = onFallback;
    this.#prefix = prefix;
  }

  #tokenKey(userId: string, now: Date) {
    return this.#prefix + admissionKeys(userId).tokensOn(utcDay(now));
  }

  async charge(userId: string, tokens: number, now = new Date()): Promise<void> {
    if (tokens <= 0) return;
    const key = this.#tokenKey(userId, now);
    // Memory keeps this environment's view of the day for the fallback check, whatever Redis does.
    this.#memory.add(`tokens:${key}`, tokens, secondsToMidnight(now) * 1000, now.getTime());
    if (!this.#redis) return;
    try {
      await this.replayCharges();
      await this.#redis.pipeline().incrby(key, tokens).expire(key, TOKEN_KEY_SECONDS).exec().then(failed);
    } catch {
      this.#onFallback();
      this.#unreplayed.set(key, (this.#unreplayed.get(key) ?? 0) + tokens);
    }
  }

  /** Adds the tokens charged in memory during an outage to the shared counters; kept if Redis fails again. */
  async replayCharges(): Promise<void> {
    if (!this.#redis || this.#unreplayed.size === 0) return;
    for (const [key, tokens] of [...this.#unreplayed]) {
      await this.#redis.pipeline().incrby(key, tokens).expire(key, TOKEN_KEY_SECONDS).exec().then(failed);
      this.#unreplayed.delete(key);
    }
  }

  /** Tokens charged in memory and not yet replayed (what an outage would otherwise forget). */
  get unreplayedTokens(): number {
    let total = 0;
    for (const tokens of this.#unreplayed.values()) total += tokens;
    return total;
  }

  async state(userId: string, now = new Date()): Promise<LimitState> {
    const tokenKey = this.#tokenKey(userId, now);
    const turnsKey = this.#prefix + admissionKeys(userId).turnsThisMinute;
    const local = {
      turnsThisMinute: this.#memory.count(`turns:${turnsKey}`, now.getTime()),
      tokensToday: this.#memory.count(`tokens:${tokenKey}`, now.getTime()),
    };
    if (!this.#redis) return local;
    try {
      await this.replayCharges();
      const [turns, tokens] = await this.#redis.mget(turnsKey, tokenKey);
      return { turnsThisMinute: Number(turns ?? 0), tokensToday: Number(tokens ?? 0) };
    } catch {
      this.#onFallback();
      return local;
    }
  }

  async checkRoute(userId: string, route: RouteName, now = new Date()): Promise<LimitCheck> {
    const limit = this.#routes[route];
    if (limit <= 0) return { allowed: true };
    const key = this.#prefix + admissionKeys(userId).route(route);
    let waitMs: number;
    if (this.#redis) {
      try {
        waitMs = Number(
          await definedScript(this.#redis, 'routeCount', COUNT_ROUTE, 1)(key, limit, MINUTE_MS),
        );
      } catch {
        this.#onFallback();
        waitMs = this.#memoryWait(`route:${key}`, limit, now);
      }
    } else {
      waitMs = this.#memoryWait(`route:${key}`, limit, now);
    }
    return waitMs > 0
      ? { allowed: false, limit: 'requests_per_minute', retryAfterSeconds: Math.ceil(waitMs / 1000) }
      : { allowed: true };
  }

  #memoryWait(key: string, limit: number, now: Date): number {
    const window = this.#memory.add(key, 1, MINUTE_MS, now.getTime());
    return window.count > limit ? Math.max(1, window.endsAt - now.getTime()) : 0;
  }

  checkInMemory(userId: string, now = new Date()): LimitCheck {
    const nowMs = now.getTime();
    const { tokensPerDay, turnsPerMinute } = this.#settings;
    if (
      tokensPerDay > 0 &&
      this.#memory.count(`tokens:${this.#tokenKey(userId, now)}`, nowMs) >= tokensPerDay
    ) {
      return { allowed: false, limit: 'tokens_per_day', retryAfterSeconds: secondsToMidnight(now) };
    }
    if (turnsPerMinute > 0) {
      const key = `turns:${this.#prefix}${admissionKeys(userId).turnsThisMinute}`;
      if (this.#memory.count(key, nowMs) >= turnsPerMinute) {
        const retry = Math.ceil((this.#memory.add(key, 0, MINUTE_MS, nowMs).endsAt - nowMs) / 1000);
        return { allowed: false, limit: 'turns_per_minute', retryAfterSeconds: Math.max(1, retry) };
      }
      this.#memory.add(key, 1, MINUTE_MS, nowMs);
    }
    return { allowed: true };
  }
}

/** A pipeline resolves with per-command errors; any of them means the write did not happen. */
function failed(results: [Error | null, unknown][] | null): void {
  const error = results?.find(([e]) => e)?.[0];
  if (error) throw error;
}
