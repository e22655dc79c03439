import type { JournaledEvent } from '../../functions/core/ports.ts';

/** A turn's last journal entry, as the registry tests write and read it back. */
export const journaledDone = (id: number): JournaledEvent => ({
  id,
  event: {
    type: 'done',
    message_id: 'm',
    stop_reason: 'end_turn',
    usage: { input_tokens: 1, output_tokens: 1 },
    timings: {
      first_byte_ms: 0,
      context_ms: 0,
      rag_ms: 0,
      model_first_token_ms: 0,
      model_latency_ms: 0,
      total_ms: 0,
    },
    cache: { profile: 'miss', history: 'miss', rag: 'skipped' },
  },
});
