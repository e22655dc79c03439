import { setTimeout as sleep } from 'node:timers/promises';
import { uuidv7Time } from '../core/conversations.ts';
import type { JournaledEvent, TurnClaim, TurnJournal, TurnRegistry, TurnReplay } from '../core/ports.ts';
import { erasureKeys, FORGOTTEN_LUA, REGISTER_LUA, type RedisClient, userTag } from './redis-cache.ts';

export interface RedisTurnOptions {
  /** How long a running turn holds its session if its environment dies without finishing it. */
  lockMs: number;
  /** How long a finished turn can still be resumed by `GET …/stream`. */
  resumableMs: number;
  /** How long a client message id and its turn's events are kept for retries. */
  retainMs: number;
  /** How often a running turn writes its buffered events and checks for a stop. */
  flushMs: number;
  /** How often a resumed stream looks for new events. */
  pollMs: number;
  /** Turns one user may run at once across sessions; 0 turns the cap off. */
  maxConcurrentPerUser: number;
}

interface TurnPointer {
  turnId: string;
  status: 'running' | 'finished';
}

/** Same `{user}` hash tag as the context cache: a user's turn keys share one slot, so scripts may touch several. */
/** The user's running turns, across sessions (the per-user stream cap). */
const runningKey = (userId: string) => `running:${userTag(userId)}`;

export const turnKeys = (userId: string, sessionId: string) => {
  const base = `${userTag(userId)}:${sessionId}`;
  return {
    running: runningKey(userId),
    pointer: `turn:${base}`,
    clientMessage: (clientMessageId: string) => `msgid:${base}:${clientMessageId}`,
    events: (turnId: string) => `events:${base}:${turnId}`,
    stop: (turnId: string) => `stop:${base}:${turnId}`,
  };
};

// Atomic check-and-claim across the pointer, the client message id and the user's running turns: two
// tabs or a retry racing each other must see one winner, which no single Redis command gives for
// several keys. The per-user cap rides on this script (exact, and no extra round trip); a sorted set
// scored by expiry forgets turns whose environment died without finishing them.
const CLAIM = `${REGISTER_LUA}
if ARGV[2] ~= '' then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {'duplicate', prior} end
end
local current = redis.call('GET', KEYS[1])
if current then
  local turn = cjson.decode(current)
  if turn.status == 'running' then return {'busy', turn.turnId} end
end
local now = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then return {'limited', ''} end
end
redis.call('SET', KEYS[1], cjson.encode({turnId = ARGV[1], status = 'running'}), 'PX', ARGV[3])
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4]) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
if ARGV[2] ~= '' then
  register(KEYS[4], ARGV[7], ARGV[4], KEYS[5], KEYS[2], ARGV[8], ARGV[9])
else
  register(KEYS[4], ARGV[7], ARGV[4], KEYS[5], ARGV[8], ARGV[9])
end
return {'claimed', ARGV[1]}
`;

// Marks the turn finished only if it still owns the pointer (a lock that expired may have a new owner).
const FINISH = `
redis.call('ZREM', KEYS[2], ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).turnId == ARGV[1] then
  redis.call('SET', KEYS[1], cjson.encode({turnId = ARGV[1], status = 'finished'}), 'PX', ARGV[2])
end
return 1
`;

// The journal's append, refused (and the turn stopped) once the user or session was deleted after the turn began.
const APPEND_EVENTS = `${FORGOTTEN_LUA}
if forgotten(KEYS[2], ARGV[1]) or forgotten(KEYS[3], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

interface JournalKeys {
  userMarker: string;
  sessionMarker: string;
  running: string;
  pointer: string;
  events: (turnId: string) => string;
  stop: (turnId: string) => string;
}

const isLast = (event: JournaledEvent) => event.event.type === 'done' || event.event.type === 'error';

export class RedisTurnRegistry implements TurnRegistry {
  readonly #redis: RedisClient;
  readonly #options: RedisTurnOptions;
  readonly #prefix: string;

  /** `prefix` namespaces every key (tests share one server). */
  constructor(redis: RedisClient, options: RedisTurnOptions, prefix = '') {
    this.#redis = redis;
    this.#options = options;
    this.#prefix = prefix;
  }

  #keys(userId: string, sessionId: string) {
    const keys = turnKeys(userId, sessionId);
    const p = this.#prefix;
    return {
      userMarker: p + erasureKeys.userMarker(userId),
      sessionMarker: p + erasureKeys.sessionMarker(userId, sessionId),
      sessions: p + erasureKeys.sessions(userId),
      sessionKeys: p + erasureKeys.sessionKeys(userId, sessionId),
      running: p + keys.running,
      pointer: p + keys.pointer,
      clientMessage: (id: string) => p + keys.clientMessage(id),
      events: (id: string) => p + keys.events(id),
      stop: (id: string) => p + keys.stop(id),
    };
  }

  async claim(
    userId: string,
    sessionId: string,
    clientMessageId: string | undefined,
    turnId: string,
  ): Promise<TurnClaim> {
    const keys = this.#keys(userId, sessionId);
    const [kind, id] = (await this.#redis.eval(
      CLAIM,
      5,
      keys.pointer,
      keys.clientMessage(clientMessageId ?? ''),
      keys.running,
      keys.sessions,
      keys.sessionKeys,
      turnId,
      clientMessageId ?? '',
      this.#options.lockMs,
      this.#options.retainMs,
      Date.now(),
      this.#options.maxConcurrentPerUser,
      sessionId,
      keys.events(turnId),
      keys.stop(turnId),
    )) as [TurnClaim['kind'], string];
    if (kind === 'busy' || kind === 'limited') return { kind };
    return { kind, turnId: id };
  }

  journal(userId: string, sessionId: string, turnId: string): TurnJournal {
    return new RedisTurnJournal(this.#redis, this.#keys(userId, sessionId), turnId, this.#options);
  }

  async runningTurns(userId: string): Promise<number> {
    const key = this.#prefix + runningKey(userId);
    await this.#redis.zremrangebyscore(key, '-inf', Date.now());
    return this.#redis.zcard(key);
  }

  async requestStop(userId: string, sessionId: string): Promise<boolean> {
    const keys = this.#keys(userId, sessionId);
    const pointer = await this.#pointer(keys.pointer);
    if (pointer?.status !== 'running') return false;
    await this.#redis.set(keys.stop(pointer.turnId), '1', 'PX', this.#options.retainMs);
    return true;
  }

  async replay(userId: string, sessionId: string, turnId?: string): Promise<TurnReplay | undefined> {
    const keys = this.#keys(userId, sessionId);
    const pointer = await this.#pointer(keys.pointer);
    const id = turnId ?? pointer?.turnId;
    if (!id) return undefined;
    const eventsKey = keys.events(id);
    const live = pointer?.turnId === id && pointer.status === 'running';
    if (!live && (await this.#redis.exists(eventsKey)) === 0) return undefined;
    const redis = this.#redis;
    const { pollMs } = this.#options;
    const stillRunning = async () => {
      const now = await this.#pointer(keys.pointer);
      return now?.turnId === id && now.status === 'running';
    };
    return {
      turnId: id,
      async *events(afterId: number, signal: AbortSignal) {
        let next = afterId + 1;
        while (!signal.aborted) {
          const running = await stillRunning();
          const batch = await redis.lrange(eventsKey, next, -1);
          for (const raw of batch) {
            const entry = JSON.parse(raw) as JournaledEvent;
            next = entry.id + 1;
            yield entry;
            if (isLast(entry)) return;
          }
          // Checked before reading, so events written just before the turn finished are not missed.
          if (!running) return;
          await sleep(pollMs, undefined, { signal }).catch(() => undefined);
        }
      },
    };
  }

  async #pointer(key: string): Promise<TurnPointer | undefined> {
    const raw = await this.#redis.get(key);
    return raw ? (JSON.parse(raw) as TurnPointer) : undefined;
  }
}

/**
 * Buffers a turn's events and writes them in one pipeline per tick, together with the stop check, so
 * the token path only pushes to an array and a stop reaches the turn within one tick.
 */
class RedisTurnJournal implements TurnJournal {
  readonly #redis: RedisClient;
  readonly #keys: JournalKeys;
  readonly #turnId: string;
  readonly #options: RedisTurnOptions;
  readonly #stop = new AbortController();
  readonly #timer: NodeJS.Timeout;
  #buffer: string[] = [];
  #flushing: Promise<void> = Promise.resolve();

  constructor(redis: RedisClient, keys: JournalKeys, turnId: string, options: RedisTurnOptions) {
    this.#redis = redis;
    this.#keys = keys;
    this.#turnId = turnId;
    this.#options = options;
    this.#timer = setInterval(() => this.#flush(), options.flushMs);
    this.#timer.unref();
  }

  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  append(entry: JournaledEvent): void {
    this.#buffer.push(JSON.stringify(entry));
  }

  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      const batch = this.#buffer;
      this.#buffer = [];
      const eventsKey = this.#keys.events(this.#turnId);
      const pipeline = this.#redis.pipeline();
      if (batch.length > 0) {
        pipeline.eval(
          APPEND_EVENTS,
          3,
          eventsKey,
          this.#keys.userMarker,
          this.#keys.sessionMarker,
          String(uuidv7Time(this.#turnId) ?? ''),
          this.#options.retainMs,
          ...batch,
        );
      }
      pipeline.get(this.#keys.stop(this.#turnId));
      try {
        const results = await pipeline.exec();
        const refused = batch.length > 0 && results?.[0]?.[1] === 0;
        if (refused || results?.at(-1)?.[1] === '1') this.#stop.abort();
      } catch {
        // Lost events only cost a resume its replay; the turn itself goes on.
      }
    });
    return this.#flushing;
  }

  async finish(): Promise<void> {
    clearInterval(this.#timer);
    await this.#flush();
    await this.#redis
      .eval(FINISH, 2, this.#keys.pointer, this.#keys.running, this.#turnId, this.#options.resumableMs)
      .catch(() => undefined);
  }
}
