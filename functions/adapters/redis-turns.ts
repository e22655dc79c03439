import { createHash } from 'node:crypto';
import { Cluster, Command, type Redis } from 'ioredis';
import { uuidv7Time } from '../core/conversations.ts';
import type { LimitName } from '../core/limits.ts';
import {
  AdmissionUncertain,
  type JournaledEvent,
  type TurnClaim,
  type TurnFollow,
  type TurnJournal,
  type TurnRegistry,
  type TurnReplay,
} from '../core/ports.ts';
import { admissionKeys, turnIndexKeys, turnKeys } from './admission-keys.ts';
import { erasureKeys, type RedisClient } from './redis-cache.ts';

export { turnKeys } from './admission-keys.ts';

export interface RedisTurnOptions {
  /** How long a running turn holds its session if its environment dies without finishing it. */
  lockMs: number;
  /** How long a finished turn can still be resumed by `GET …/stream`. */
  resumableMs: number;
  /** How long a client message id and its turn's events are kept for retries. */
  retainMs: number;
  /** How often a running turn writes its buffered events and checks for a stop. */
  flushMs: number;
  /** How long one blocking read of a follower waits before it checks that the turn is still alive. */
  followBlockMs: number;
  /** Turns and followers one user may have open at once across sessions; 0 turns the cap off. */
  maxConcurrentPerUser: number;
  /** Turns one user may start per minute; 0 turns the limit off. */
  turnsPerMinute: number;
  /** Tokens one user may use per UTC day; 0 turns the limit off. */
  tokensPerDay: number;
  /**
   * The client's deadline for the admission script (its command timeout). A claim that reaches Redis
   * later than this does nothing, and a claim whose reply came too late is released by its token.
   */
  admitTimeoutMs: number;
  /** How long a claim holds the session before the turn's first flush extends it to `lockMs`. */
  leaseMs: number;
}

interface TurnPointer {
  turnId: string;
  status: 'running' | 'finished';
}

const utcDay = (nowMs: number) => new Date(nowMs).toISOString().slice(0, 10);
const secondsToMidnight = (nowMs: number) => {
  const now = new Date(nowMs);
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((midnight - nowMs) / 1000));
};

// One round trip decides a turn: idempotency, the session lock, the day's tokens, the stream cap and
// the minute's turns, in that order, and only an admitted turn consumes anything. The claim carries a
// deadline (the client's timeout): arriving later, it changes nothing, so a slow reply leaves no ghost.
// KEYS: pointer, msgid, streams, turns/minute, tokens today, session index, user's sessions index.
const ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[3]) then return {'late', ''} end
if ARGV[2] ~= '' then
  local prior = redis.call('GET', KEYS[2])
  if prior then return {'duplicate', prior} end
end
local current = redis.call('GET', KEYS[1])
if current then
  local turn = cjson.decode(current)
  if turn.status == 'running' then return {'busy', turn.turnId} end
end
local tokensPerDay = tonumber(ARGV[8])
if tokensPerDay > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= tokensPerDay then
  return {'limited', 'tokens_per_day', ARGV[10]}
end
local cap = tonumber(ARGV[6])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then return {'limited', 'concurrent_streams', '5'} end
end
local perMinute = tonumber(ARGV[7])
if perMinute > 0 then
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= perMinute then
    local wait = redis.call('PTTL', KEYS[4])
    return {'limited', 'turns_per_minute', tostring(math.max(1, math.ceil(wait / 1000)))}
  end
  if redis.call('INCR', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], 60000) end
end
local lease = tonumber(ARGV[4])
redis.call('SET', KEYS[1], cjson.encode({turnId = ARGV[1], status = 'running'}), 'PX', lease)
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
  redis.call('SADD', KEYS[6], KEYS[2])
end
redis.call('SADD', KEYS[6], ARGV[9] .. ARGV[1], ARGV[11] .. ARGV[1])
redis.call('PEXPIRE', KEYS[6], ARGV[5])
redis.call('SADD', KEYS[7], ARGV[12])
redis.call('PEXPIRE', KEYS[7], ARGV[5])
redis.call('ZADD', KEYS[3], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[3], math.max(lease, redis.call('PTTL', KEYS[3])))
return {'claimed', ARGV[1]}
`;

// Undoes a claim by its token, if it ran at all: sent on the same connection right after an admission
// that timed out in the client, so it runs after it. Gives back the minute's turn it took.
const RELEASE = `
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).turnId == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[4]) then redis.call('DECR', KEYS[4]) end
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

// A follower (resume, or a retry attached to its turn) takes a stream slot like a turn does.
// KEYS: pointer, events, streams. ARGV: turn id, follower id, hold ms, cap, live-only.
const FOLLOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('GET', KEYS[1])
local live = false
if current then
  local turn = cjson.decode(current)
  live = turn.turnId == ARGV[1] and turn.status == 'running'
end
if not live and redis.call('EXISTS', KEYS[2]) == 0 then return {'none'} end
local cap = tonumber(ARGV[4])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cap then return {'limited'} end
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[3], math.max(tonumber(ARGV[3]), redis.call('PTTL', KEYS[3])))
return {'follow'}
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

// The first flush of a running turn: its claim was a short lease, now the turn is known to be alive.
const EXTEND = `
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).turnId == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[2])))
end
return 1
`;

// Deletes exactly the turn data of the given sessions, as named by their indexes; never an `adm:` key.
// KEYS: the user's sessions index, then each session's index and pointer. ARGV: the session, or '' for all.
const FORGET = `
local deleted = 0
for i = 2, #KEYS, 2 do
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[i])) do deleted = deleted + redis.call('DEL', key) end
  deleted = deleted + redis.call('DEL', KEYS[i], KEYS[i + 1])
end
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SREM', KEYS[1], ARGV[1]) end
return deleted
`;

type ScriptCall = (...keysAndArgs: (string | number)[]) => Promise<unknown>;

/**
 * A script sent once and then called by its SHA (ioredis falls back to EVAL after a NOSCRIPT), so each
 * admission carries its keys and arguments, not two kilobytes of Lua (ElastiCache bills by bytes too).
 */
export function definedScript(
  redis: RedisClient,
  name: string,
  lua: string,
  numberOfKeys: number,
): ScriptCall {
  const commands = redis as unknown as Record<string, ScriptCall | undefined>;
  if (!commands[name]) redis.defineCommand(name, { lua, numberOfKeys });
  const call = commands[name] as ScriptCall;
  return (...keysAndArgs) => call.apply(redis, keysAndArgs);
}

const ADMIT_SHA = createHash('sha1').update(ADMIT).digest('hex');
const NUMBER_OF_ADMIT_KEYS = 7;

/**
 * The admission script with a timeout of its own, by SHA (EVAL once after a NOSCRIPT): the client's command timeout is the cache's (short,
 * for reads that have a fallback), while a claim may wait longer, since its deadline travels with it.
 * A command whose timer is already set keeps it (ioredis arms the client's only on an unset one).
 */
async function admitWithTimeout(
  redis: RedisClient,
  timeoutMs: number,
  keysAndArgs: (string | number)[],
): Promise<unknown> {
  const send = (name: 'evalsha' | 'eval', script: string) => {
    const command = new Command(name, [script, NUMBER_OF_ADMIT_KEYS, ...keysAndArgs], {
      replyEncoding: 'utf8',
    });
    command.setTimeout(timeoutMs);
    // The command's own promise settles too (by its timer, if the circuit refuses to send it), but the
    // outcome is the one sendCommand returns: through the circuit it rejects at once when the cache is
    // down, and then nobody else may be left holding a rejection.
    command.promise.catch(() => undefined);
    return redis.sendCommand(command) as Promise<unknown>;
  };
  try {
    return await send('evalsha', ADMIT_SHA);
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
    return send('eval', ADMIT);
  }
}

const isLast = (event: JournaledEvent) => event.event.type === 'done' || event.event.type === 'error';

/** A journal batch's stream id: `0-<last event id + 1>`, so a read after `0-<n + 1>` starts after event n. */
const streamId = (eventId: number) => `0-${eventId + 1}`;

type StreamReply = [string, [string, string[]][]][] | null;

/** Blocking reads hold their connection, so each runs on a connection of its own, kept for reuse. */
class BlockingConnections {
  readonly #redis: RedisClient;
  readonly #idle: RedisClient[] = [];

  constructor(redis: RedisClient) {
    this.#redis = redis;
  }

  take(): RedisClient {
    const idle = this.#idle.pop();
    if (idle) return idle;
    // No command timeout: the read's own BLOCK bounds it, which the client's short timeout would cut.
    const connection =
      this.#redis instanceof Cluster
        ? this.#redis.duplicate([], {
            enableOfflineQueue: true,
            redisOptions: {
              ...this.#redis.options.redisOptions,
              commandTimeout: undefined,
              enableOfflineQueue: true,
            },
          })
        : (this.#redis as Redis).duplicate({ commandTimeout: undefined, enableOfflineQueue: true });
    connection.on('error', () => undefined);
    return connection;
  }

  give(connection: RedisClient, healthy: boolean): void {
    if (healthy) this.#idle.push(connection);
    else connection.disconnect();
  }

  close(): void {
    for (const connection of this.#idle.splice(0)) connection.disconnect();
  }
}

/** Every key the registry touches for one session, under the test prefix. */
function registryKeys(prefix: string, userId: string, sessionId: string) {
  const keys = turnKeys(userId, sessionId);
  const limits = admissionKeys(userId);
  return {
    streams: prefix + limits.streams,
    turnsThisMinute: prefix + limits.turnsThisMinute,
    tokensOn: (day: string) => prefix + limits.tokensOn(day),
    pointer: prefix + keys.pointer,
    clientMessage: (id: string) => prefix + keys.clientMessage(id),
    events: (id: string) => prefix + keys.events(id),
    stop: (id: string) => prefix + keys.stop(id),
    index: prefix + keys.index,
    sessions: prefix + turnIndexKeys(userId).sessions,
    userMarker: prefix + erasureKeys.userMarker(userId),
    sessionMarker: prefix + erasureKeys.sessionMarker(userId, sessionId),
  };
}
type RegistryKeys = ReturnType<typeof registryKeys>;

export class RedisTurnRegistry implements TurnRegistry {
  readonly #redis: RedisClient;
  readonly #options: RedisTurnOptions;
  readonly #prefix: string;
  readonly #blocking: BlockingConnections;
  readonly #flusher: JournalFlusher;

  /** `prefix` namespaces every key (tests share one server). */
  constructor(redis: RedisClient, options: RedisTurnOptions, prefix = '') {
    this.#redis = redis;
    this.#options = options;
    this.#prefix = prefix;
    this.#blocking = new BlockingConnections(redis);
    this.#flusher = new JournalFlusher(redis, options.flushMs);
  }

  #keys(userId: string, sessionId: string): RegistryKeys {
    return registryKeys(this.#prefix, userId, sessionId);
  }

  /**
   * Admits a turn in one round trip. A reply later than `admitTimeoutMs` throws `AdmissionUncertain`
   * after sending a release for this turn id: whatever the claim did, if it ran, is undone.
   */
  async claim(
    userId: string,
    sessionId: string,
    clientMessageId: string | undefined,
    turnId: string,
  ): Promise<TurnClaim> {
    const keys = this.#keys(userId, sessionId);
    const o = this.#options;
    const now = Date.now();
    const messageKey = keys.clientMessage(clientMessageId ?? '');
    let reply: string[];
    try {
      reply = (await admitWithTimeout(this.#redis, o.admitTimeoutMs, [
        keys.pointer,
        messageKey,
        keys.streams,
        keys.turnsThisMinute,
        keys.tokensOn(utcDay(now)),
        keys.index,
        keys.sessions,
        turnId,
        clientMessageId ?? '',
        now + o.admitTimeoutMs,
        o.leaseMs,
        o.retainMs,
        o.maxConcurrentPerUser,
        o.turnsPerMinute,
        o.tokensPerDay,
        keys.events(''),
        secondsToMidnight(now),
        keys.stop(''),
        sessionId,
      ])) as string[];
    } catch (error) {
      if (!timedOut(error)) throw error;
      this.#release(keys, turnId, messageKey);
      throw new AdmissionUncertain('the admission script did not answer in time', { cause: error });
    }
    const [kind, detail, retryAfter] = reply;
    if (kind === 'late') {
      this.#release(keys, turnId, messageKey);
      throw new AdmissionUncertain('the admission script ran after the client deadline');
    }
    if (kind === 'busy') return { kind };
    if (kind === 'limited') {
      return { kind, limit: detail as LimitName, retryAfterSeconds: Number(retryAfter) };
    }
    return { kind: kind as 'claimed' | 'duplicate', turnId: detail ?? turnId };
  }

  #release(keys: RegistryKeys, turnId: string, messageKey: string): void {
    this.#redis
      .eval(RELEASE, 4, keys.pointer, messageKey, keys.streams, keys.turnsThisMinute, turnId, messageKey)
      .catch(() => undefined);
  }

  journal(userId: string, sessionId: string, turnId: string): TurnJournal {
    return new RedisTurnJournal(
      this.#redis,
      this.#flusher,
      this.#keys(userId, sessionId),
      turnId,
      this.#options,
    );
  }

  async runningTurns(userId: string): Promise<number> {
    const key = this.#prefix + admissionKeys(userId).streams;
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

  /** A replay without a stream slot (tests and tools); routes use `follow`, which counts against the cap. */
  async replay(userId: string, sessionId: string, turnId?: string): Promise<TurnReplay | undefined> {
    const keys = this.#keys(userId, sessionId);
    const pointer = await this.#pointer(keys.pointer);
    const id = turnId ?? pointer?.turnId;
    if (!id) return undefined;
    const live = pointer?.turnId === id && pointer.status === 'running';
    if (!live && (await this.#redis.exists(keys.events(id))) === 0) return undefined;
    return this.#replayOf(keys, id, undefined);
  }

  async follow(
    userId: string,
    sessionId: string,
    followerId: string,
    options: { turnId?: string; holdMs: number },
  ): Promise<TurnFollow> {
    const keys = this.#keys(userId, sessionId);
    const id = options.turnId ?? (await this.#pointer(keys.pointer))?.turnId;
    if (!id) return { kind: 'none' };
    const [kind] = (await this.#redis.eval(
      FOLLOW,
      3,
      keys.pointer,
      keys.events(id),
      keys.streams,
      id,
      followerId,
      options.holdMs,
      this.#options.maxConcurrentPerUser,
    )) as [string];
    if (kind === 'none') return { kind };
    if (kind === 'limited') return { kind, retryAfterSeconds: 5 };
    const release = () => this.#redis.zrem(keys.streams, followerId).then(() => undefined);
    return { kind: 'follow', replay: this.#replayOf(keys, id, release) };
  }

  /**
   * Deletes the turn data (pointers, message ids, journals, stop flags) of one session, or of every
   * session of the user, by the exact names the claims recorded. Limiter keys are never touched.
   */
  async forget(userId: string, sessionId?: string): Promise<number> {
    const user = this.#prefix + turnIndexKeys(userId).sessions;
    const sessions = sessionId === undefined ? await this.#redis.smembers(user) : [sessionId];
    const perSession = sessions.flatMap((s) => {
      const keys = registryKeys(this.#prefix, userId, s);
      return [keys.index, keys.pointer];
    });
    return (await this.#redis.eval(
      FORGET,
      perSession.length + 1,
      user,
      ...perSession,
      sessionId ?? '',
    )) as number;
  }

  /** Stops the connections of blocking reads and the journals' ticker (tests, and the local stack's shutdown). */
  close(): void {
    this.#blocking.close();
    this.#flusher.close();
  }

  #replayOf(keys: RegistryKeys, turnId: string, release: (() => Promise<void>) | undefined): TurnReplay {
    const redis = this.#redis;
    const blocking = this.#blocking;
    const { followBlockMs } = this.#options;
    const eventsKey = keys.events(turnId);
    const stillRunning = async () => {
      const now = await this.#pointer(keys.pointer);
      return now?.turnId === turnId && now.status === 'running';
    };
    return {
      turnId,
      async *events(afterId: number, signal: AbortSignal) {
        let cursor = afterId;
        const read = async () => (await redis.xread('STREAMS', eventsKey, streamId(cursor))) as StreamReply;
        // After an empty read of a turn no longer running, one last read catches events written just
        // before it finished.
        const nextRead = async (empty: boolean) =>
          empty && !(await stillRunning())
            ? { reply: await read(), final: true }
            : {
                reply: await blockingRead(blocking, eventsKey, streamId(cursor), followBlockMs, signal),
                final: false,
              };
        try {
          // Catch up without blocking, then wait on a blocking read that returns as soon as a batch lands.
          let reply = await read();
          let final = false;
          while (!signal.aborted) {
            for (const entry of entriesAfter(reply, cursor)) {
              cursor = entry.id;
              yield entry;
              if (isLast(entry)) return;
            }
            if (final) return;
            ({ reply, final } = await nextRead(reply === null));
          }
        } finally {
          await release?.().catch(() => undefined);
        }
      },
    };
  }

  async #pointer(key: string): Promise<TurnPointer | undefined> {
    const raw = await this.#redis.get(key);
    return raw ? (JSON.parse(raw) as TurnPointer) : undefined;
  }
}

/** The journaled events of a stream read that come after `afterId`, in order and each once. */
function entriesAfter(reply: StreamReply, afterId: number): JournaledEvent[] {
  const batches = (reply ?? []).flatMap(([, entries]) => entries.map(([, fields]) => fields[1] ?? '[]'));
  let last = afterId;
  return batches
    .flatMap((batch) => JSON.parse(batch) as JournaledEvent[])
    .filter((entry) => {
      if (entry.id <= last) return false;
      last = entry.id;
      return true;
    });
}

/** One `XREAD BLOCK`; an abort drops its connection, since a blocked connection cannot be interrupted. */
async function blockingRead(
  connections: BlockingConnections,
  key: string,
  after: string,
  blockMs: number,
  signal: AbortSignal,
): Promise<StreamReply> {
  const connection = connections.take();
  let healthy = true;
  const onAbort = () => {
    healthy = false;
    connection.disconnect();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return (await connection.xread('BLOCK', blockMs, 'STREAMS', key, after)) as StreamReply;
  } catch (error) {
    healthy = false;
    if (signal.aborted) return null;
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
    connections.give(connection, healthy && !signal.aborted);
  }
}

const timedOut = (error: unknown) => error instanceof Error && error.message === 'Command timed out';

// The journal's append with the stop check, refused once the user or session was deleted after the turn
// began (the turn is then stopped). One MGET reads the stop flag and both markers; the expiry is set on
// the first and the last batch only. KEYS: events, stop flag, user marker, session marker. ARGV: turn
// start ms, retain ms ('' to keep the expiry), entry id, batch. Returns 0 refused, 2 stop asked, else 1.
const APPEND_EVENTS = `
local found = redis.call('MGET', KEYS[2], KEYS[3], KEYS[4])
for i = 2, 3 do
  if found[i] and (ARGV[1] == '' or tonumber(ARGV[1]) <= tonumber(found[i])) then return 0 end
end
redis.call('XADD', KEYS[1], ARGV[3], 'e', ARGV[4])
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if found[1] == '1' then return 2 end
return 1
`;

interface JournalKeys {
  userMarker: string;
  sessionMarker: string;
  streams: string;
  pointer: string;
  events: (turnId: string) => string;
  stop: (turnId: string) => string;
}

type Pipeline = ReturnType<RedisClient['pipeline']>;
type PipelineResults = [Error | null, unknown][];

/**
 * The journal's scripts as defined commands: in a pipeline each is sent by its SHA once its connection
 * has run it (ioredis sends the first as EVAL), not as its Lua text every tick for every turn.
 */
const JOURNAL_SCRIPTS = [
  ['journalExtend', EXTEND, 2],
  ['journalAppend', APPEND_EVENTS, 4],
  ['turnFinish', FINISH, 2],
] as const;
type JournalScripts = Record<
  (typeof JOURNAL_SCRIPTS)[number][0],
  (...keysAndArgs: (string | number)[]) => unknown
>;
const scriptsOf = (pipeline: Pipeline) => pipeline as unknown as JournalScripts;

/** One journal's part of a pipeline: its commands, and what it makes of their replies. */
interface JournalFlush {
  /** A key of the flush (all of a turn's keys share the user's slot): flushes are grouped by its node. */
  slotKey: string;
  /** Adds the commands; returns how many, so the replies can be handed back by position. */
  addTo(pipeline: Pipeline): number;
  /** The replies of its commands, or undefined when the pipeline failed as a whole. */
  settle(results: PipelineResults | undefined): void;
}

/** Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its first non-empty `{hash tag}`, mod 16384. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * The flushes that can share a pipeline: all of them on one server; on a cluster, those whose slots
 * one node serves (what an ioredis cluster pipeline accepts), or one slot each while the slot map is
 * not known yet.
 */
function pipelineGroups(redis: RedisClient, flushes: JournalFlush[]): JournalFlush[][] {
  if (!(redis instanceof Cluster)) return flushes.length > 0 ? [flushes] : [];
  const groups = new Map<string, JournalFlush[]>();
  for (const flush of flushes) {
    const slot = keySlot(flush.slotKey);
    const node = redis.slots[slot]?.join(';') ?? `slot ${slot}`;
    const group = groups.get(node);
    if (group) group.push(flush);
    else groups.set(node, [flush]);
  }
  return [...groups.values()];
}

const CROSS_NODE = /same slots allocation group|same slot/;

/**
 * Sends flushes in one pipeline and hands each its replies. When the slot map moved between the
 * grouping and the send (the pipeline then spans nodes and ioredis refuses it), each goes on its own.
 */
async function sendFlushes(redis: RedisClient, flushes: JournalFlush[]): Promise<void> {
  let counts: number[] = [];
  let results: PipelineResults | undefined;
  // Whatever fails, every flush is settled: a turn's last batch waits for its previous one.
  try {
    const pipeline = redis.pipeline();
    counts = flushes.map((flush) => flush.addTo(pipeline));
    results = (await pipeline.exec()) ?? undefined;
  } catch (error) {
    if (flushes.length > 1 && error instanceof Error && CROSS_NODE.test(error.message)) {
      await Promise.all(flushes.map((flush) => sendFlushes(redis, [flush])));
      return;
    }
    // Lost events only cost a resume its replay; the turns themselves go on.
  }
  let at = 0;
  for (const [index, flush] of flushes.entries()) {
    const count = counts[index] ?? 0;
    flush.settle(results && count > 0 ? results.slice(at, at + count) : undefined);
    at += count;
  }
}

/**
 * One ticker per registry (an execution environment's): each tick sends every running turn's
 * buffered events and stop check in one pipeline per cache node, rather than a timer and a round trip
 * per turn. A tick still waiting on the cache holds the next one back, so batches stay in order.
 */
class JournalFlusher {
  readonly #redis: RedisClient;
  readonly #flushMs: number;
  readonly #journals = new Set<RedisTurnJournal>();
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  constructor(redis: RedisClient, flushMs: number) {
    this.#redis = redis;
    this.#flushMs = flushMs;
    // Defined on the client before any pipeline is made: a pipeline takes the client's scripts when created.
    for (const [name, lua, keys] of JOURNAL_SCRIPTS) definedScript(redis, name, lua, keys);
  }

  add(journal: RedisTurnJournal): void {
    this.#journals.add(journal);
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#tick(), this.#flushMs);
    this.#timer.unref();
  }

  /** The timer stops with the last running turn: an idle environment has no ticker. */
  remove(journal: RedisTurnJournal): void {
    this.#journals.delete(journal);
    if (this.#journals.size === 0) this.close();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const flushes = [...this.#journals].map((journal) => journal.takeFlush());
      const sent = pipelineGroups(this.#redis, flushes).map((group) => sendFlushes(this.#redis, group));
      await Promise.all(sent);
    } finally {
      this.#ticking = false;
    }
  }
}

/**
 * Buffers a turn's events and writes them as one stream entry per tick (`XADD` with the batch's last
 * event id), together with the stop check, so the token path only pushes to an array, followers wake
 * on the write, and a stop reaches the turn within one tick. The ticks are the registry's (see
 * JournalFlusher); the last batch goes out with `finish`.
 */
class RedisTurnJournal implements TurnJournal {
  readonly #redis: RedisClient;
  readonly #flusher: JournalFlusher;
  readonly #keys: JournalKeys;
  readonly #turnId: string;
  readonly #options: RedisTurnOptions;
  readonly #stop = new AbortController();
  #buffer: JournaledEvent[] = [];
  #extended = false;
  /** Whether the events key has its expiry (set with the first batch, renewed with the last). */
  #expiring = false;
  /** The flush in flight, settled once its replies are handled (the last batch waits for it). */
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    redis: RedisClient,
    flusher: JournalFlusher,
    keys: JournalKeys,
    turnId: string,
    options: RedisTurnOptions,
  ) {
    this.#redis = redis;
    this.#flusher = flusher;
    this.#keys = keys;
    this.#turnId = turnId;
    this.#options = options;
    flusher.add(this);
  }

  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  append(entry: JournaledEvent): void {
    this.#buffer.push(entry);
  }

  /** This tick's flush: the events buffered until now (or the stop check alone). */
  takeFlush(final = false): JournalFlush {
    const batch = this.#buffer;
    this.#buffer = [];
    let settled: () => void = () => undefined;
    this.#flushing = new Promise((resolve) => {
      settled = resolve;
    });
    return {
      slotKey: this.#keys.pointer,
      addTo: (pipeline) => {
        let count = 0;
        if (!this.#extended) {
          scriptsOf(pipeline).journalExtend(
            this.#keys.pointer,
            this.#keys.streams,
            this.#turnId,
            this.#options.lockMs,
            Date.now() + this.#options.lockMs,
          );
          count++;
        }
        return count + this.#appendOrCheck(pipeline, batch, final);
      },
      settle: (results) => {
        if (results?.every(([error]) => !error)) this.#extended = true;
        const outcome = results?.at(-1)?.[1];
        if (batch.length > 0 && results?.at(-1)?.[0] === null) this.#expiring = true;
        if (outcome === 0 || outcome === 2 || outcome === '1') this.#stop.abort();
        settled();
      },
    };
  }

  /**
   * The batch's append (with the stop and marker checks), or without a batch the stop check alone;
   * returns how many commands it added.
   */
  #appendOrCheck(pipeline: Pipeline, batch: JournaledEvent[], final: boolean): number {
    const eventsKey = this.#keys.events(this.#turnId);
    const last = batch.at(-1);
    if (last) {
      scriptsOf(pipeline).journalAppend(
        eventsKey,
        this.#keys.stop(this.#turnId),
        this.#keys.userMarker,
        this.#keys.sessionMarker,
        String(uuidv7Time(this.#turnId) ?? ''),
        this.#expiring && !final ? '' : this.#options.retainMs,
        streamId(last.id),
        JSON.stringify(batch),
      );
      return 1;
    }
    // The last batch went out with an earlier tick: the retention still counts from the turn's end.
    const renew = final && this.#expiring;
    if (renew) pipeline.pexpire(eventsKey, this.#options.retainMs);
    pipeline.get(this.#keys.stop(this.#turnId));
    return renew ? 2 : 1;
  }

  /**
   * The last batch and the turn's end in one round trip: FINISH follows the append in the same
   * pipeline (one slot, so one node, in order). Its reply is nobody's: a turn that could not be marked
   * finished frees its session when the lock expires.
   */
  async finish(): Promise<void> {
    this.#flusher.remove(this);
    await this.#flushing;
    const last = this.takeFlush(true);
    const withFinish: JournalFlush = {
      ...last,
      addTo: (pipeline) => {
        const count = last.addTo(pipeline);
        scriptsOf(pipeline).turnFinish(
          this.#keys.pointer,
          this.#keys.streams,
          this.#turnId,
          this.#options.resumableMs,
        );
        return count;
      },
    };
    await sendFlushes(this.#redis, [withFinish]);
  }
}
