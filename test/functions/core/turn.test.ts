import { beforeEach, describe, expect, it } from 'vitest';
import { ModelError } from '../../../functions/core/errors.ts';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { runTurn, type TurnInput } from '../../../functions/core/turn.ts';
import type { TurnEvent } from '../../../functions/core/turn-events.ts';
import { deferred } from '../../support/deferred.ts';
import { calls, fakeDeps, RecordingSink } from './fakes.ts';

const SESSION = '01900000-0000-7000-8000-aaaaaaaaaaaa';
const input = (overrides: Partial<TurnInput> = {}): TurnInput => ({
  userId: 'alice',
  sessionId: SESSION,
  isNewSession: false,
  message: 'What is a Roth IRA?',
  useRag: true,
  startedAt: performance.now(),
  ...overrides,
});
const history = (n: number): ChatMessage[] =>
  Array.from({ length: n }, (_, i) => ({
    messageId: `01800000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    sessionId: SESSION,
    userId: 'alice',
    role: i % 2 === 0 ? 'user' : 'assistant',
    content: `earlier ${i}`,
    createdAt: '2026-11-25T11:00:00Z',
  }));
const types = (events: TurnEvent[]) => events.map((e) => e.type);
/** The new user turn: the retrieved passages, then the question (the prompt's stable prefix comes first). */
const asked = (question: string) => ({
  role: 'user',
  content: expect.stringMatching(
    new RegExp(
      `^<sources>\\n[\\s\\S]*A Roth IRA is funded with after-tax money[\\s\\S]*\\n</sources>\\n\\n${question.replace(/[?]/g, '\\?')}$`,
    ),
  ),
});

beforeEach(() => {
  calls.length = 0;
});

describe('runTurn', () => {
  it('streams session_id, sources, tokens and done, in that order and shape', async () => {
    const { deps } = fakeDeps();
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(types(sink.events)).toEqual(['session_id', 'sources', 'token', 'token', 'done']);
    expect(sink.events[0]).toEqual({
      type: 'session_id',
      session_id: SESSION,
      message_id: '01900000-0000-7000-8000-000000000002',
    });
    expect(sink.events[1]).toEqual({
      type: 'sources',
      sources: [
        { id: 'doc#0', title: 'Roth IRA', uri: 's3://kb/roth.md', score: 0.9, excerpt: 'A Roth IRA…' },
      ],
    });
    const done = sink.events.at(-1);
    expect(done).toMatchObject({
      type: 'done',
      stop_reason: 'end_turn',
      usage: { input_tokens: 12, output_tokens: 2 },
      cache: { profile: 'miss', history: 'miss', rag: 'miss' },
    });
    if (done?.type !== 'done') throw new Error('no done');
    expect(Object.keys(done.timings)).toEqual([
      'first_byte_ms',
      'context_ms',
      'rag_ms',
      'model_first_token_ms',
      'model_latency_ms',
      'total_ms',
    ]);
    expect(done.timings.total_ms).toBeGreaterThanOrEqual(done.timings.model_first_token_ms);
    expect(done.timings.model_latency_ms).toBeGreaterThan(0);
    // The model call is attributed by a key and the session, never by the user id.
    expect(deps.model.requests[0]?.metadata).toEqual({ user_key: 'key-of-5', session_id: SESSION });
    expect(done.timings.model_latency_ms).toBeLessThanOrEqual(done.timings.model_first_token_ms);
    expect(report.outcome).toBe('done');
    expect(await report.background).toEqual({ saves: 2, failedSaves: 0 });
    expect(deps.outbox.sent.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(deps.outbox.sent[1]?.messageId).toBe(done.message_id);
    expect(deps.outbox.sent[1]?.content).toBe('Hello there.');
  });

  it('writes session_id before any I/O, with the id the answer will have, made after the question id', async () => {
    const { deps } = fakeDeps();
    const sink = new RecordingSink();
    const report = await runTurn(deps, input({ sessionId: 'new-session', isNewSession: true }), sink);
    expect(calls[0]).toBe('sink.session_id');
    expect(sink.events[0]).toEqual({
      type: 'session_id',
      session_id: 'new-session',
      message_id: '01900000-0000-7000-8000-000000000002',
    });
    await report.background;
    const [question, answer] = deps.outbox.sent;
    expect(question?.messageId).toBe('01900000-0000-7000-8000-000000000001');
    expect(answer?.messageId).toBe('01900000-0000-7000-8000-000000000002');
    expect(report.sessionId).toBe('new-session');
  });

  it('starts the history load and Retrieve before either resolves', async () => {
    const { deps } = fakeDeps();
    const historyGate = deferred();
    const ragGate = deferred();
    deps.store.historyGate = historyGate.promise;
    deps.retriever.gate = ragGate.promise;
    const sink = new RecordingSink();
    const turn = runTurn(deps, input(), sink);
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toContain('store.getRecentMessages');
    expect(calls).toContain('retriever.retrieve');
    expect(types(sink.events)).toEqual(['session_id']);
    historyGate.resolve();
    ragGate.resolve();
    await (await turn).background;
    expect(types(sink.events).at(-1)).toBe('done');
  });

  it('queues the question only once the model request is on its way, also when the model fails at once', async () => {
    const { deps } = fakeDeps();
    let requestSent = -1;
    deps.model.script = async function* () {
      requestSent = calls.length;
      yield { type: 'text', text: 'Hi.' };
      yield { type: 'stop', stopReason: 'end_turn' };
    };
    const report = await runTurn(deps, input(), new RecordingSink());
    await report.background;
    expect(requestSent).toBeGreaterThan(-1);
    expect(calls.indexOf('outbox.send:user')).toBeGreaterThanOrEqual(requestSent);

    const failing = fakeDeps().deps;
    failing.model.script = async function* () {
      yield* [];
      throw new Error('refused at once');
    };
    const failed = await runTurn(failing, input(), new RecordingSink());
    await failed.background;
    expect(failing.outbox.sent.map((m) => m.role)).toEqual(['user']);
  });

  it('never waits for a write: done goes out while the queue has not answered, and background settles later', async () => {
    const { deps } = fakeDeps();
    const queueGate = deferred();
    deps.outbox.gate = queueGate.promise;
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(types(sink.events).at(-1)).toBe('done');
    expect(deps.outbox.sent).toHaveLength(0);
    let settled = false;
    const background = report.background.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    queueGate.resolve();
    await background;
    expect(deps.outbox.sent.map((m) => m.role)).toEqual(['user', 'assistant']);
  });

  it('hits the cache on the second turn and the prompt carries the first turn', async () => {
    const { deps } = fakeDeps();
    const first = await runTurn(
      deps,
      input({ sessionId: 'new-session', isNewSession: true, message: 'first question' }),
      new RecordingSink(),
    );
    await first.background;
    const sink = new RecordingSink();
    const second = await runTurn(
      deps,
      input({ sessionId: first.sessionId, message: 'second question' }),
      sink,
    );
    await second.background;
    expect(second.cache).toEqual({ profile: 'hit', history: 'hit', rag: 'miss' });
    expect(deps.model.requests[1]?.messages).toEqual([
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'Hello there.' },
      asked('second question'),
    ]);
    expect(calls).not.toContain('store.getRecentMessages');
  });

  it('falls back to the table when the cache fails, without refilling a partial list', async () => {
    const { deps, logs } = fakeDeps();
    deps.cache.failReads = true;
    deps.store.messages = history(4);
    const report = await runTurn(deps, input(), new RecordingSink());
    await report.background;
    expect(report.cache).toMatchObject({ profile: 'miss', history: 'miss' });
    expect(deps.model.requests[0]?.messages).toHaveLength(5);
    expect(logs.some((l) => l.level === 'warn' && l.message.includes('cache read failed'))).toBe(true);
    // The refill stored the complete table history, then the turn was appended to it.
    expect(calls.indexOf('cache.storeHistory')).toBeLessThan(calls.indexOf('cache.appendHistory'));
    expect(deps.cache.histories.get(`alice/${SESSION}`)).toHaveLength(6);
  });

  it('answers without history when both the cache and the table fail', async () => {
    const { deps } = fakeDeps();
    deps.cache.failReads = true;
    deps.store.failReads = true;
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(report.outcome).toBe('done');
    expect(deps.model.requests[0]?.messages).toEqual([asked('What is a Roth IRA?')]);
    await report.background;
    expect(calls).not.toContain('cache.appendHistory');
  });

  it('skips retrieval when use_rag is false, and uses the RAG cache on a repeat question', async () => {
    const { deps } = fakeDeps();
    const skipped = await runTurn(deps, input({ useRag: false }), new RecordingSink());
    expect(skipped.cache.rag).toBe('skipped');
    expect(deps.retriever.count).toBe(0);
    // Other conversations: a follow-up in the same one would also retrieve with the previous question.
    const first = { sessionId: '01900000-0000-7000-8000-cccccccccccc', isNewSession: true };
    await (await runTurn(deps, input(first), new RecordingSink())).background;
    const sink = new RecordingSink();
    const hit = await runTurn(
      deps,
      input({ sessionId: '01900000-0000-7000-8000-dddddddddddd', isNewSession: true }),
      sink,
    );
    expect(hit.cache.rag).toBe('hit');
    expect(deps.retriever.count).toBe(1);
    expect(types(sink.events)).toContain('sources');
  });

  it('answers without sources when Retrieve fails, and reports the failure', async () => {
    const { deps } = fakeDeps();
    deps.retriever.fail = true;
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(types(sink.events)).toEqual(['session_id', 'token', 'token', 'done']);
    expect(report.outcome).toBe('done');
    expect(report.retrievalFailed).toBe(true);
  });

  it('gives up on a cache that does not answer by its deadline, aborts the call and reads the table', async () => {
    const { deps, logs } = fakeDeps();
    deps.settings.cacheTimeoutMs = 20;
    deps.cache.loadGate = new Promise(() => undefined);
    deps.store.messages = history(2);
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(report.outcome).toBe('done');
    expect(report.cache).toMatchObject({ profile: 'miss', history: 'miss' });
    expect(deps.cache.loadSignal?.aborted).toBe(true);
    expect(deps.model.requests[0]?.messages).toHaveLength(3);
    expect(logs).toContainEqual({
      level: 'warn',
      message: 'cache read failed, using the table',
      attributes: { error: 'DeadlineExceeded' },
    });
  });

  it('gives up on a table that does not answer by its deadline, aborts the query and answers without history', async () => {
    const { deps, logs } = fakeDeps();
    deps.settings.storeTimeoutMs = 20;
    deps.cache.failReads = true;
    deps.store.historyGate = new Promise(() => undefined);
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(report.outcome).toBe('done');
    expect(deps.store.historySignal?.aborted).toBe(true);
    expect(deps.model.requests[0]?.messages).toEqual([asked('What is a Roth IRA?')]);
    expect(logs).toContainEqual({
      level: 'warn',
      message: 'history unavailable, answering without it',
      attributes: { error: 'DeadlineExceeded' },
    });
  });

  it("logs the provider's error name and message when the model fails, never the user's text", async () => {
    const { deps, logs } = fakeDeps();
    const denied = Object.assign(new Error('Model access is denied due to missing subscription.'), {
      name: 'AccessDeniedException',
    });
    deps.model.script = async function* () {
      yield* [];
      throw new ModelError('model_error', 'AccessDeniedException', { cause: denied });
    };
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(report).toMatchObject({ outcome: 'error', errorCode: 'model_error' });
    const logged = logs.find((l) => l.level === 'error');
    expect(logged?.attributes).toEqual({
      code: 'model_error',
      cause: {
        name: 'AccessDeniedException',
        message: 'Model access is denied due to missing subscription.',
      },
    });
    expect(JSON.stringify(logs)).not.toContain('Roth IRA');
  });

  it('writes directly to the table when the queue fails, and counts a save lost only when both fail', async () => {
    const { deps, logs } = fakeDeps();
    deps.outbox.fail = true;
    const ok = await runTurn(deps, input(), new RecordingSink());
    expect(await ok.background).toEqual({ saves: 2, failedSaves: 0 });
    expect(deps.store.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    deps.store.failWrites = true;
    const lost = await runTurn(deps, input(), new RecordingSink());
    expect(await lost.background).toEqual({ saves: 2, failedSaves: 2 });
    expect(logs.filter((l) => l.level === 'error' && l.message.includes('not saved'))).toHaveLength(2);
  });

  it.each([
    [new ModelError('throttled', 'ThrottlingException'), 'throttled'],
    [new ModelError('model_error', 'ModelStreamErrorException'), 'model_error'],
    [new Error('bug'), 'internal'],
  ])('turns a model failure after streaming started into an error event (%s)', async (failure, code) => {
    const { deps } = fakeDeps();
    deps.model.script = async function* () {
      yield { type: 'text', text: 'partial ' };
      throw failure;
    };
    const sink = new RecordingSink();
    const report = await runTurn(deps, input(), sink);
    expect(sink.events.at(-1)).toMatchObject({ type: 'error', code });
    expect(types(sink.events)).not.toContain('done');
    expect(report.outcome).toBe('error');
    // Never reported by the model: a processed request is charged by estimate, a throttled one costs nothing.
    const charged = code !== 'throttled';
    expect(report.usage.output_tokens).toBe(charged ? 2 : 0);
    expect(report.usage.input_tokens > 0).toBe(charged);
    await report.background;
    expect(deps.outbox.sent.map((m) => m.role)).toEqual(['user']);
  });

  it('treats a stream that ends without messageStop as an error, not an answer', async () => {
    const { deps } = fakeDeps();
    deps.model.script = async function* () {
      yield { type: 'text', text: 'cut ' };
    };
    const sink = new RecordingSink();
    await runTurn(deps, input(), sink);
    expect(sink.events.at(-1)).toMatchObject({ type: 'error', code: 'model_error' });
  });

  it('stops a model that runs past its deadline with a timeout error', async () => {
    const { deps } = fakeDeps();
    deps.settings.modelTimeoutMs = 30;
    deps.model.script = async function* (request) {
      yield { type: 'text', text: 'slow ' };
      await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
    };
    const sink = new RecordingSink();
    await runTurn(deps, input(), sink);
    expect(sink.events.at(-1)).toMatchObject({ type: 'error', code: 'timeout' });
  });

  it('aborts the model when the client can no longer be written to', async () => {
    const { deps } = fakeDeps();
    let aborted = false;
    deps.model.script = async function* (request) {
      request.signal.addEventListener('abort', () => {
        aborted = true;
      });
      for (let i = 0; i < 100; i++) yield { type: 'text', text: `${i} ` };
      yield { type: 'stop', stopReason: 'end_turn' };
    };
    const sink = new RecordingSink();
    sink.onEvent = (event) => {
      if (event.type === 'token') sink.open = false;
    };
    const report = await runTurn(deps, input(), sink);
    expect(report.outcome).toBe('client_gone');
    expect(aborted).toBe(true);
    // An abandoned turn is charged what it cost by estimate: the prompt, and the one token sent ('0 ').
    expect(report.usage.output_tokens).toBe(1);
    expect(report.usage.input_tokens).toBeGreaterThan(0);
    expect(types(sink.events)).toEqual(['session_id', 'sources', 'token']);
    await report.background;
    expect(deps.outbox.sent.map((m) => m.role)).toEqual(['user']);
  });

  it('stores a complete history for a new session instead of appending', async () => {
    const { deps } = fakeDeps();
    const report = await runTurn(
      deps,
      input({ sessionId: 'new-session', isNewSession: true }),
      new RecordingSink(),
    );
    await report.background;
    expect(report.cache.history).toBe('skipped');
    expect(calls).not.toContain('store.getRecentMessages');
    expect(deps.cache.histories.get(`alice/${report.sessionId}`)?.map((m) => m.role)).toEqual([
      'user',
      'assistant',
    ]);
  });

  it('does not show this turn twice when the consumer already stored it', async () => {
    const { deps } = fakeDeps();
    const queueGate = deferred();
    deps.outbox.gate = queueGate.promise;
    const historyGate = deferred();
    deps.store.historyGate = historyGate.promise;
    const turn = runTurn(deps, input({ message: 'now' }), new RecordingSink());
    await new Promise((r) => setTimeout(r, 5));
    // The consumer persisted the user message before the history query ran.
    const userMessage = {
      ...history(1)[0],
      messageId: '01900000-0000-7000-8000-000000000001',
      content: 'now',
    } as ChatMessage;
    deps.store.messages.push(userMessage);
    historyGate.resolve();
    queueGate.resolve();
    await (await turn).background;
    expect(deps.model.requests[0]?.messages).toEqual([asked('now')]);
    // Nor in the cached history the conversation is read back from.
    const cached = deps.cache.histories.get(`alice/${SESSION}`) ?? [];
    expect(cached.map((m) => m.role)).toEqual(['user', 'assistant']);
    expect(new Set(cached.map((m) => m.messageId)).size).toBe(2);
  });
});

describe('runTurn: stop and regenerate', () => {
  it('stops the model when asked, keeps the partial answer as stopped, and ends with done', async () => {
    const { deps } = fakeDeps();
    const stop = new AbortController();
    let modelAborted = false;
    deps.model.script = async function* (request) {
      request.signal.addEventListener('abort', () => {
        modelAborted = true;
      });
      yield { type: 'text', text: 'Part ' };
      yield { type: 'text', text: 'one' };
      stop.abort();
      // Like the SDK's stream, end once the request's signal has aborted.
      if (!request.signal.aborted)
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
      yield { type: 'text', text: ' never sent' };
    };
    const sink = new RecordingSink();
    const report = await runTurn(deps, input({ stop: stop.signal }), sink);
    await report.background;
    expect(modelAborted).toBe(true);
    expect(sink.events.at(-1)).toMatchObject({ type: 'done', stop_reason: 'stopped' });
    const saved = deps.outbox.sent.at(-1);
    expect(saved).toMatchObject({ role: 'assistant', content: 'Part one', stopReason: 'stopped' });
    expect(report.outcome).toBe('done');
  });

  it('regenerates the last answer from the stored question, replacing the earlier answer', async () => {
    const { deps } = fakeDeps();
    deps.store.messages = history(4);
    const sink = new RecordingSink();
    const report = await runTurn(deps, input({ message: undefined }), sink);
    await report.background;
    expect(deps.model.requests[0]?.messages).toEqual([
      { role: 'user', content: 'earlier 0' },
      { role: 'assistant', content: 'earlier 1' },
      asked('earlier 2'),
    ]);
    expect(deps.outbox.sent).toHaveLength(1);
    expect(deps.outbox.sent[0]).toMatchObject({
      role: 'assistant',
      content: 'Hello there.',
      replaces: '01800000-0000-7000-8000-000000000003',
    });
    // The next turn sees the new answer in place of the replaced one.
    const next = await runTurn(deps, input({ message: 'and then?' }), new RecordingSink());
    await next.background;
    expect(deps.model.requests[1]?.messages.map((m) => m.content).slice(0, 4)).toEqual([
      'earlier 0',
      'earlier 1',
      'earlier 2',
      'Hello there.',
    ]);
    expect(deps.model.requests[1]?.messages[4]).toEqual(asked('and then?'));
  });

  it('says so when there is no question to regenerate', async () => {
    const { deps } = fakeDeps();
    const sink = new RecordingSink();
    const report = await runTurn(deps, input({ message: undefined }), sink);
    expect(sink.events.at(-1)).toMatchObject({ type: 'error', code: 'nothing_to_regenerate' });
    expect(report.outcome).toBe('error');
  });
});
