import { beforeEach, describe, expect, it } from 'vitest';
import { ChatTurns, type TurnRequest } from '../../../functions/core/chat-turn.ts';
import { RequestRejected } from '../../../functions/core/errors.ts';
import type { LimitCheck, UserLimits } from '../../../functions/core/limits.ts';
import {
  AdmissionUncertain,
  type JournaledEvent,
  type TurnClaim,
  type TurnFollow,
  type TurnJournal,
  type TurnRegistry,
  type TurnReplay,
  type WireSink,
} from '../../../functions/core/ports.ts';
import { TurnAdmission } from '../../../functions/core/turn-admission.ts';
import type { TurnEvent } from '../../../functions/core/turn-events.ts';
import { calls, fakeDeps } from './fakes.ts';

class RecordingWire implements WireSink {
  events: Array<{ id: number; event: TurnEvent }> = [];
  ended = false;
  send(event: TurnEvent, id: number) {
    calls.push(`wire.${event.type}`);
    this.events.push({ id, event });
    return true;
  }
  end() {
    calls.push('wire.end');
    this.ended = true;
  }
}

class FakeLimits implements UserLimits {
  route_: LimitCheck = { allowed: true };
  routes: string[] = [];
  charged: number[] = [];
  async checkRoute(_userId: string, route: string) {
    this.routes.push(route);
    return this.route_;
  }
  checkInMemory(): LimitCheck {
    return { allowed: true };
  }
  async charge(_userId: string, tokens: number) {
    calls.push('limits.charge');
    this.charged.push(tokens);
  }
  async state() {
    return { turnsThisMinute: 0, tokensToday: 0 };
  }
}

class FakeRegistry implements TurnRegistry {
  claim_: TurnClaim | Error = { kind: 'claimed', turnId: 't1' };
  journaled: JournaledEvent[] = [];
  finished = 0;
  stopping = new AbortController();
  async claim(_u: string, _s: string, _c: string | undefined, turnId: string): Promise<TurnClaim> {
    if (this.claim_ instanceof Error) throw this.claim_;
    return this.claim_.kind === 'claimed' ? { kind: 'claimed', turnId } : this.claim_;
  }
  journal(): TurnJournal {
    return {
      append: (entry) => this.journaled.push(entry),
      stopSignal: this.stopping.signal,
      finish: async () => {
        calls.push('journal.finish');
        this.finished++;
      },
    };
  }
  async runningTurns() {
    return 0;
  }
  requestStop_: boolean | Error = true;
  async requestStop() {
    if (this.requestStop_ instanceof Error) throw this.requestStop_;
    return this.requestStop_;
  }
  async replay(): Promise<TurnReplay | undefined> {
    const stored = this.journaled;
    return {
      turnId: 't1',
      async *events(afterId: number) {
        for (const entry of stored) if (entry.id > afterId) yield entry;
      },
    };
  }
  async follow(): Promise<TurnFollow> {
    calls.push('registry.follow');
    const replay = await this.replay();
    return replay ? { kind: 'follow', replay } : { kind: 'none' };
  }
}

/** `none`: a deployment without a cache, so without a registry. */
function setup(withRegistry: FakeRegistry | 'none' = new FakeRegistry()) {
  const registry = withRegistry === 'none' ? undefined : withRegistry;
  const { deps, logs } = fakeDeps();
  const limits = new FakeLimits();
  const published: string[] = [];
  const rejections: number[] = [];
  const admission = new TurnAdmission({
    registry,
    limits,
    log: deps.log,
    newId: deps.newId,
    settings: { maxConcurrentPerUser: 3, followHoldMs: 1000, recentMessageIds: 100 },
  });
  const turns = new ChatTurns({
    turn: deps,
    limits,
    admission,
    registry,
    observer: {
      countLimitRejection: () => rejections.push(1),
      publishTurn: (report) => published.push(report.outcome),
    },
    log: {
      ...deps.log,
      info: (message: string) => {
        logs.push({ level: 'info', message });
      },
    },
  });
  return { turns, deps, logs, limits, registry, published, rejections };
}

const request = (overrides: Partial<TurnRequest> = {}): TurnRequest => ({
  userId: 'alice',
  sessionId: 'session-1',
  message: 'What is a Roth IRA?',
  clientMessageId: 'client-1',
  useRag: false,
  startedAt: performance.now(),
  replayBudgetMs: 1000,
  ...overrides,
});

const refusal = async (work: Promise<unknown>) => {
  const error = await work.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RequestRejected);
  return error as RequestRejected;
};

beforeEach(() => {
  calls.length = 0;
});

describe('ChatTurns: the turn from admission to its last write', () => {
  it('numbers and journals every event, frees the session before the body ends, then charges and publishes', async () => {
    const { turns, registry, limits, published, logs } = setup();
    const wire = new RecordingWire();
    const started = await turns.start(request());
    expect(started.sessionId).toBe('session-1');
    await started.deliver(wire);
    expect(wire.events.map((e) => e.id)).toEqual([0, 1, 2, 3]);
    expect(wire.events.map((e) => e.event.type)).toEqual(['session_id', 'token', 'token', 'done']);
    expect(registry?.journaled).toEqual(wire.events);
    const order = calls.filter((c) => ['journal.finish', 'wire.end', 'limits.charge'].includes(c));
    expect(order).toEqual(['journal.finish', 'wire.end', 'limits.charge']);
    expect(limits.charged).toEqual([14]);
    expect(published).toEqual(['done']);
    expect(logs.map((l) => l.message)).toContain('turn finished');
  });

  it('refuses over a limit before any model call, and counts the refusal', async () => {
    const registry = new FakeRegistry();
    registry.claim_ = { kind: 'limited', limit: 'turns_per_minute', retryAfterSeconds: 30 };
    const { turns, rejections } = setup(registry);
    const rejected = await refusal(turns.start(request()));
    expect(rejected.kind).toBe('limited');
    expect(rejected.details).toMatchObject({ limit: 'turns_per_minute', retry_after_seconds: 30 });
    expect(rejections).toEqual([1]);
    expect(calls).not.toContain('model.stream');
  });

  it('refuses a second turn on a busy session as a conflict', async () => {
    const registry = new FakeRegistry();
    registry.claim_ = { kind: 'busy' };
    const rejected = await refusal(setup(registry).turns.start(request()));
    expect([rejected.kind, rejected.code]).toEqual(['conflict', 'turn_in_progress']);
  });

  it('answers 503 (never a turn without a lock) when the registry answers the claim too late', async () => {
    const registry = new FakeRegistry();
    registry.claim_ = new AdmissionUncertain('claim timed out');
    const { turns, rejections } = setup(registry);
    const rejected = await refusal(turns.start(request()));
    expect([rejected.kind, rejected.code]).toEqual(['unavailable', 'admission_unavailable']);
    expect(rejected.details).toMatchObject({ retry_after_seconds: 1 });
    expect(rejections).toEqual([]);
    expect(calls).not.toContain('model.stream');
  });

  it('attaches a retried message to its turn: the journal is replayed, the model is not called again', async () => {
    const registry = new FakeRegistry();
    const first = setup(registry);
    await (await first.turns.start(request())).deliver(new RecordingWire());
    calls.length = 0;
    registry.claim_ = { kind: 'duplicate', turnId: 't1' };
    const retry = await first.turns.start(request());
    const wire = new RecordingWire();
    await retry.deliver(wire);
    expect(wire.events).toEqual(registry.journaled);
    expect(wire.ended).toBe(true);
    expect(calls).not.toContain('model.stream');
  });

  it("still answers when the registry is down: this environment's lock, a warning, the same events", async () => {
    const registry = new FakeRegistry();
    registry.claim_ = new Error('redis down');
    const { turns, logs } = setup(registry);
    const wire = new RecordingWire();
    await (await turns.start(request())).deliver(wire);
    expect(wire.events.at(-1)?.event.type).toBe('done');
    expect(registry.journaled).toEqual([]);
    expect(logs.some((l) => l.level === 'warn' && /registry unreachable/.test(l.message))).toBe(true);
    // The in-memory lock was given back when the turn finished: the next message on the session runs.
    await (await turns.start(request({ clientMessageId: 'client-2' }))).deliver(new RecordingWire());
  });

  it('a crash in the turn still reaches the client as an error, finishes the journal and ends the body', async () => {
    const { turns, deps, registry, logs, published } = setup();
    deps.clock = () => {
      throw new TypeError('clock broke');
    };
    const wire = new RecordingWire();
    await (await turns.start(request())).deliver(wire);
    expect(wire.events.at(-1)?.event).toEqual({
      type: 'error',
      code: 'internal',
      message: 'Something went wrong while answering.',
    });
    expect(registry?.finished).toBe(1);
    expect(wire.ended).toBe(true);
    expect(logs).toContainEqual({
      level: 'error',
      message: 'turn crashed',
      attributes: { error: 'TypeError' },
    });
    expect(published).toEqual([]);
  });

  it('resumes after the last event the client saw, and stops only where a registry can carry the stop', async () => {
    const { turns, registry } = setup();
    await (await turns.start(request())).deliver(new RecordingWire());
    const resumed = await turns.resume('alice', 'session-1', 1, 1000);
    const wire = new RecordingWire();
    await resumed?.deliver(wire);
    expect(wire.events.map((e) => e.id)).toEqual([2, 3]);
    expect(await turns.stop('alice', 'session-1')).toBe(true);
    expect(registry?.finished).toBe(1);
    const rejected = await refusal(setup('none').turns.stop('alice', 'session-1'));
    expect([rejected.kind, rejected.code]).toEqual(['unavailable', 'stop_unavailable']);
  });

  it('ends a turn whose messages neither the queue nor the direct write saved with not_saved, never done', async () => {
    const { turns, deps, registry, published } = setup();
    deps.outbox.fail = true;
    deps.writer.failWrites = true;
    const wire = new RecordingWire();
    await (await turns.start(request())).deliver(wire);
    const types = wire.events.map((e) => e.event.type);
    expect(types).not.toContain('done');
    expect(wire.events.at(-1)).toEqual({
      id: 3,
      event: { type: 'error', code: 'not_saved', message: expect.stringMatching(/not be saved/) },
    });
    // A resume replays the same end: the journal has the error, not a done.
    expect(registry?.journaled.at(-1)?.event.type).toBe('error');
    expect(calls.filter((c) => ['journal.finish', 'wire.end'].includes(c))).toEqual([
      'journal.finish',
      'wire.end',
    ]);
    expect(published).toEqual(['error']);
  });

  it('holds done only until the saves are known: a save the direct write rescued still ends with done', async () => {
    const { turns, deps } = setup();
    deps.outbox.fail = true;
    const wire = new RecordingWire();
    await (await turns.start(request())).deliver(wire);
    expect(wire.events.at(-1)?.event.type).toBe('done');
  });

  it('answers a stop while the registry is down with a 503-kind refusal that says when to retry', async () => {
    const registry = new FakeRegistry();
    registry.requestStop_ = new Error('redis down');
    const { turns, logs } = setup(registry);
    const rejected = await refusal(turns.stop('alice', 'session-1'));
    expect([rejected.kind, rejected.code]).toEqual(['unavailable', 'stop_unavailable']);
    expect(rejected.details).toMatchObject({ retry_after_seconds: expect.any(Number) });
    expect(logs.some((l) => l.level === 'warn' && /unavailable for stop/.test(l.message))).toBe(true);
  });

  it('resume and stop spend their route budget first: over it, 429 and nothing followed or stopped', async () => {
    const { turns, limits } = setup();
    limits.route_ = { allowed: false, limit: 'requests_per_minute', retryAfterSeconds: 20 };
    const resumed = await refusal(turns.resume('alice', 'session-1', -1, 1000));
    const stopped = await refusal(turns.stop('alice', 'session-1'));
    for (const rejected of [resumed, stopped]) {
      expect(rejected.kind).toBe('limited');
      expect(rejected.details).toMatchObject({ limit: 'requests_per_minute', retry_after_seconds: 20 });
    }
    expect(limits.routes).toEqual(['resume', 'stop']);
    expect(calls).not.toContain('registry.follow');
  });
});
