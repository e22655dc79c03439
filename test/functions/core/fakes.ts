import type { ChatMessage, Passage, UserProfile } from '../../../functions/core/messages.ts';
import type {
  CachedConversation,
  ChatModel,
  ContextCache,
  ConversationStore,
  EventSink,
  MessageOutbox,
  MessageWriter,
  ModelEvent,
  ModelRequest,
  Retriever,
  SaveResult,
} from '../../../functions/core/ports.ts';
import type { TurnDeps } from '../../../functions/core/turn.ts';
import type { TurnEvent } from '../../../functions/core/turn-events.ts';

/** A shared, ordered record of what every fake was asked to do. */
export const calls: string[] = [];

class MemoryCache implements ContextCache {
  profiles = new Map<string, UserProfile>();
  histories = new Map<string, ChatMessage[]>();
  passages = new Map<string, Passage[]>();
  failReads = false;
  loadGate: Promise<void> | undefined;
  loadSignal: AbortSignal | undefined;

  async loadConversation(
    userId: string,
    sessionId: string,
    signal: AbortSignal,
  ): Promise<CachedConversation> {
    calls.push('cache.loadConversation');
    this.loadSignal = signal;
    await this.loadGate;
    if (this.failReads) throw new Error('redis down');
    return { profile: this.profiles.get(userId), history: this.histories.get(`${userId}/${sessionId}`) };
  }
  async storeProfile(profile: UserProfile) {
    this.profiles.set(profile.userId, profile);
  }
  async storeHistory(userId: string, sessionId: string, messages: ChatMessage[]) {
    calls.push('cache.storeHistory');
    this.histories.set(`${userId}/${sessionId}`, [...messages]);
  }
  async appendHistory(userId: string, sessionId: string, messages: ChatMessage[]) {
    calls.push('cache.appendHistory');
    const existing = this.histories.get(`${userId}/${sessionId}`);
    if (existing) existing.push(...messages);
  }
  async loadPassages(kb: string, question: string) {
    if (this.failReads) throw new Error('redis down');
    return this.passages.get(`${kb}/${question}`);
  }
  async storePassages(kb: string, question: string, passages: Passage[]) {
    this.passages.set(`${kb}/${question}`, passages);
  }
}

class MemoryStore implements ConversationStore, MessageWriter {
  profiles = new Map<string, UserProfile>();
  messages: ChatMessage[] = [];
  failReads = false;
  failWrites = false;
  historyGate: Promise<void> | undefined;
  historySignal: AbortSignal | undefined;

  async getProfile(userId: string) {
    calls.push('store.getProfile');
    if (this.failReads) throw new Error('dynamodb down');
    return this.profiles.get(userId);
  }
  async getRecentMessages(userId: string, sessionId: string, limit: number, signal: AbortSignal) {
    calls.push('store.getRecentMessages');
    this.historySignal = signal;
    await this.historyGate;
    if (this.failReads) throw new Error('dynamodb down');
    return this.messages.filter((m) => m.userId === userId && m.sessionId === sessionId).slice(-limit);
  }
  async save(message: ChatMessage): Promise<SaveResult> {
    calls.push(`store.save:${message.role}`);
    if (this.failWrites) throw new Error('dynamodb down');
    if (this.messages.some((m) => m.messageId === message.messageId)) {
      return { outcome: 'duplicate', firstAnswer: false };
    }
    this.messages.push(message);
    return { outcome: 'written', firstAnswer: false };
  }
}

class MemoryOutbox implements MessageOutbox {
  sent: ChatMessage[] = [];
  fail = false;
  gate: Promise<void> | undefined;
  async send(message: ChatMessage) {
    calls.push(`outbox.send:${message.role}`);
    await this.gate;
    if (this.fail) throw new Error('sqs down');
    this.sent.push(message);
  }
}

class FakeRetriever implements Retriever {
  readonly knowledgeBaseId = 'KB1';
  fail = false;
  gate: Promise<void> | undefined;
  count = 0;
  passages: Passage[] = [
    {
      id: 'doc#0',
      title: 'Roth IRA',
      uri: 's3://kb/roth.md',
      score: 0.9,
      excerpt: 'A Roth IRA…',
      text: 'A Roth IRA is funded with after-tax money.',
    },
  ];
  async retrieve(_question: string, _signal: AbortSignal) {
    calls.push('retriever.retrieve');
    this.count++;
    await this.gate;
    if (this.fail) throw new Error('kb down');
    return this.passages;
  }
}

class ScriptedModel implements ChatModel {
  requests: ModelRequest[] = [];
  script: (request: ModelRequest) => AsyncIterable<ModelEvent> = async function* () {
    yield { type: 'text', text: 'Hello ' };
    yield { type: 'text', text: 'there.' };
    yield { type: 'stop', stopReason: 'end_turn' };
    yield { type: 'usage', inputTokens: 12, outputTokens: 2 };
  };
  stream(request: ModelRequest) {
    calls.push('model.stream');
    this.requests.push(request);
    return this.script(request);
  }
}

export class RecordingSink implements EventSink {
  events: TurnEvent[] = [];
  open = true;
  /** Called on each event, e.g. to close the sink mid-stream. */
  onEvent: ((event: TurnEvent) => void) | undefined;
  send(event: TurnEvent) {
    if (!this.open) return false;
    calls.push(`sink.${event.type}`);
    this.events.push(event);
    this.onEvent?.(event);
    return true;
  }
}

export function fakeDeps() {
  let id = 0;
  const logs: Array<{ level: string; message: string; attributes?: Record<string, unknown> }> = [];
  const store = new MemoryStore();
  const deps = {
    cache: new MemoryCache(),
    store,
    writer: store,
    outbox: new MemoryOutbox(),
    retriever: new FakeRetriever(),
    model: new ScriptedModel(),
    log: {
      warn: (message: string, attributes?: Record<string, unknown>) => {
        logs.push({ level: 'warn', message, ...(attributes ? { attributes } : {}) });
      },
      error: (message: string, attributes?: Record<string, unknown>) => {
        logs.push({ level: 'error', message, ...(attributes ? { attributes } : {}) });
      },
    },
    settings: {
      historyLimit: 10,
      cacheTimeoutMs: 100,
      storeTimeoutMs: 200,
      ragTimeoutMs: 200,
      modelTimeoutMs: 1000,
    },
    // UUIDv7-shaped, time-ordered ids.
    newId: () => `01900000-0000-7000-8000-${String(++id).padStart(12, '0')}`,
    now: () => performance.now(),
    clock: () => new Date('2026-11-25T12:00:00Z'),
    userKey: (userId: string) => `key-of-${userId.length}`,
  } satisfies TurnDeps;
  return { deps, logs };
}
