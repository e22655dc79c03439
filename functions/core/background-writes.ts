import type { ChatMessage } from './messages.ts';
import type { MessageOutbox, MessageWriter, TurnLog } from './ports.ts';
import type { BackgroundReport } from './turn-events.ts';

export const errorName = (error: unknown) => (error instanceof Error ? error.name : typeof error);

/**
 * The writes a turn starts but never waits for on the critical path. Messages are chained so a
 * conversation reaches the FIFO queue in order; an outbox failure falls back to the direct write.
 */
export class BackgroundWrites {
  readonly #outbox: MessageOutbox;
  readonly #writer: MessageWriter;
  readonly #log: TurnLog;
  readonly #pending: Promise<unknown>[] = [];
  #messageChain: Promise<void> = Promise.resolve();
  #saves = 0;
  #failedSaves = 0;

  constructor(outbox: MessageOutbox, writer: MessageWriter, log: TurnLog) {
    this.#outbox = outbox;
    this.#writer = writer;
    this.#log = log;
  }

  /** A message may still be on its way (its attachments being stored): the chain waits for it, in order. */
  saveMessage(message: ChatMessage | Promise<ChatMessage>): void {
    this.#saves++;
    this.#messageChain = this.#messageChain.then(() => this.#deliver(message));
    this.#pending.push(this.#messageChain);
  }

  async #deliver(pending: ChatMessage | Promise<ChatMessage>): Promise<void> {
    let message: ChatMessage;
    try {
      message = await pending;
    } catch (error) {
      this.#failedSaves++;
      this.#log.error('message not saved: its attachments could not be stored', { error: errorName(error) });
      return;
    }
    try {
      await this.#outbox.send(message);
      return;
    } catch (error) {
      this.#log.warn('queue send failed, writing the message directly', {
        messageId: message.messageId,
        error: errorName(error),
      });
    }
    try {
      await this.#writer.save(message);
    } catch (error) {
      this.#failedSaves++;
      this.#log.error('message not saved: queue and direct write both failed', {
        messageId: message.messageId,
        error: errorName(error),
      });
    }
  }

  /** Tracks a cache write whose failure only costs a later miss. */
  cacheWrite(label: string, work: Promise<unknown>): Promise<void> {
    const settled = work.then(
      () => undefined,
      (error: unknown) => this.#log.warn(`cache ${label} failed`, { error: errorName(error) }),
    );
    this.#pending.push(settled);
    return settled;
  }

  /** Tracks a write that is not a message (a stateless turn's usage); a failure is logged. */
  track(label: string, work: Promise<unknown>): void {
    this.#pending.push(
      work.then(
        () => undefined,
        (error: unknown) => this.#log.warn(`${label} not written`, { error: errorName(error) }),
      ),
    );
  }

  async settle(): Promise<BackgroundReport> {
    await Promise.all(this.#pending);
    return { saves: this.#saves, failedSaves: this.#failedSaves };
  }
}
