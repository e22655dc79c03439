import type { EventSink, TurnJournal } from '../core/ports.ts';
import type { TurnEvent } from '../core/turn-events.ts';

/**
 * JSON for an SSE `data:` line. JSON leaves U+2028, U+2029 and U+0085 raw, and line readers that split
 * on every Unicode line break (not only the SSE spec's) would cut the event there: escape them.
 */
export const sseJson = (value: unknown) =>
  JSON.stringify(value).replace(
    /[\u2028\u2029\u0085]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );

/** A wire format at the edge: writes one turn event with its position in the turn (its SSE id). */
export interface WireSink {
  send(event: TurnEvent, id: number): boolean;
  /** Ends the wire format (e.g. `data: [DONE]`), called once after the turn's last event. */
  end?(): void;
}

/**
 * Numbers a turn's events, keeps them in the turn's journal for resume (when there is one), and
 * hands them to the wire format the route chose.
 */
export class NumberedSink implements EventSink {
  readonly #wire: WireSink;
  readonly #journal: TurnJournal | undefined;
  #next = 0;

  constructor(wire: WireSink, journal?: TurnJournal) {
    this.#wire = wire;
    this.#journal = journal;
  }

  send(event: TurnEvent): boolean {
    const id = this.#next++;
    this.#journal?.append({ id, event });
    return this.#wire.send(event, id);
  }
}

/**
 * Holds a turn's `done` until its messages are known to be saved: a turn the queue and the direct
 * write both lost ends with an error the client can act on (send again), never with `done`.
 */
export class SavedBeforeDoneSink implements EventSink {
  readonly #inner: EventSink;
  #done: TurnEvent | undefined;

  constructor(inner: EventSink) {
    this.#inner = inner;
  }

  send(event: TurnEvent): boolean {
    if (event.type !== 'done') return this.#inner.send(event);
    this.#done = event;
    return true;
  }

  /** Sends the held `done`, or in its place the error saying the answer was not saved. */
  settle(saved: boolean): void {
    if (!this.#done) return;
    this.#inner.send(
      saved
        ? this.#done
        : {
            type: 'error',
            code: 'internal',
            message: 'The answer could not be saved. Send your message again.',
          },
    );
    this.#done = undefined;
  }
}
