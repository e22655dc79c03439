/** Injected service latencies (ms). None of these touch production code: they live in emulators and proxies. */
export interface Latencies {
  profileRead: number;
  historyRead: number;
  sessionWrite: number;
  messageWrite: number;
  sqsSend: number;
  retrieve: number;
  modelFirstToken: number;
  perToken: number;
}

/**
 * Model time to read the prompt, per 1,000 input tokens not read from the prompt cache, added to the
 * first-token delay in the long-conversation scenario only (elsewhere the model's first-token delay is
 * flat, so that server overhead stays first token minus an exact figure). An assumption scaled from
 * Anthropic's published prompt-caching example (a 100,000-token prompt: 11.5 s to first token uncached,
 * 2.4 s cached, ~91 ms per 1,000 tokens for a Sonnet-class model), about halved for a Haiku-class model.
 */
const PREFILL_MS_PER_1K_TOKENS = 50;

export const PROFILES: Record<
  'seed' | 'aws' | 'zero',
  { description: string; latencies: Latencies; prefillMsPer1kTokens: number }
> = {
  seed: {
    description:
      "the seed's own figures: profile 150, history 200, RAG 500, session write 150, message write 300, model first token 249 (DynamoDB stands in for its database; SQS, which the seed lacks, at the AWS figure)",
    latencies: {
      profileRead: 150,
      historyRead: 200,
      sessionWrite: 150,
      messageWrite: 300,
      sqsSend: 15,
      retrieve: 500,
      modelFirstToken: 249,
      perToken: 10,
    },
    prefillMsPer1kTokens: PREFILL_MS_PER_1K_TOKENS,
  },
  aws: {
    description:
      'published AWS figures: DynamoDB ~5 ms, SQS send ~15 ms, KB Retrieve ~400 ms, model first token 350 ms and 10 ms per token; Redis is the real local server',
    latencies: {
      profileRead: 5,
      historyRead: 5,
      sessionWrite: 5,
      messageWrite: 5,
      sqsSend: 15,
      retrieve: 400,
      modelFirstToken: 350,
      perToken: 10,
    },
    prefillMsPer1kTokens: PREFILL_MS_PER_1K_TOKENS,
  },
  // Nothing injected: a run is only as slow as this machine. For smoke runs (npm test) and profiling; its
  // overhead figures are the whole first token, so its targets say little.
  zero: {
    description: 'no injected latency: every emulator and proxy answers at once',
    latencies: {
      profileRead: 0,
      historyRead: 0,
      sessionWrite: 0,
      messageWrite: 0,
      sqsSend: 0,
      retrieve: 0,
      modelFirstToken: 0,
      perToken: 0,
    },
    prefillMsPer1kTokens: 0,
  },
};

/** DynamoDB's JSON protocol names the operation in x-amz-target: pick the seed's latency per operation. */
export function dynamoDelay(latencies: Latencies, target: string | undefined): number {
  const operation = target?.split('.').pop();
  switch (operation) {
    case 'GetItem':
      return latencies.profileRead;
    case 'Query':
      return latencies.historyRead;
    case 'UpdateItem':
      return latencies.sessionWrite;
    case 'PutItem':
      return latencies.messageWrite;
    default:
      return 0;
  }
}
