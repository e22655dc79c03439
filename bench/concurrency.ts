import { Redis } from 'ioredis';
import { cpuCost, measure, memoryPerStream } from './measure.ts';
import type { Latencies } from './profiles.ts';
import { requestsFor, SCENARIOS, type Scenario } from './sessions.ts';
import type { Emulators, Environment } from './stack-client.ts';
import { type Summary, summarize } from './stats.ts';

export interface ConcurrencyRow {
  concurrency: number;
  design: 'ours' | 'limit';
  n: number;
  errors: number;
  /** At the Function URL emulator, in the environment: request arrival to the first body byte. */
  firstByte: Summary;
  firstByteClient: Summary;
  firstToken: Summary;
  overhead: Summary;
  /** Ours minus the bare model call (limit) at the same concurrency, first-token overhead. */
  beyondLimit?: { p50: number; p99: number };
  /** Token to token as the handler wrote them, as the emulator wrote them, as the client read them. */
  gaps: { handler: Summary; model: Summary; client: Summary; addedP99: number; addedClientP99: number };
  cpuMsPerTurn: number;
  cpuMsPerToken: number;
  eventLoopUtilization: number;
  /** Event loop delay in the environment during the load, p99 / max (ms). */
  eventLoopDelay: { p99: number; max: number };
  gc: { totalMs: number; maxMs: number; count: number };
  logBytesPerTurn: number;
  memory?: { open: number; heapKiBPerStream: number; rssKiBPerStream: number } | undefined;
  /**
   * The cache's work during the load (INFO stats of the run's cache, every client): commands, and read
   * events (one per batch of commands a connection sent together: about one per round trip), per second.
   */
  cache?:
    | { commandsPerSecond: number; readsPerSecond: number; commandsPerTurn: number; inputKiBPerTurn: number }
    | undefined;
}

/** The cache's command and read-event counters from now on, as rates over the time until `stop`. */
async function cacheActivity(url: string) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const counters = async () => {
    const stats = await redis.info('stats');
    const field = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(stats)?.[1] ?? Number.NaN);
    return {
      commands: field('total_commands_processed'),
      reads: field('total_reads_processed'),
      // What ElastiCache Serverless bills its ECPUs by, besides the commands: the bytes sent to it.
      inputBytes: field('total_net_input_bytes'),
    };
  };
  const started = { at: performance.now(), ...(await counters()) };
  return {
    async stop(turns: number) {
      // The INFO calls themselves (one each) are left in: two commands against thousands.
      const ended = await counters();
      redis.disconnect();
      const seconds = (performance.now() - started.at) / 1000;
      return {
        commandsPerSecond: Math.round((ended.commands - started.commands) / seconds),
        readsPerSecond: Math.round((ended.reads - started.reads) / seconds),
        commandsPerTurn: round((ended.commands - started.commands) / Math.max(1, turns)),
        inputKiBPerTurn: round((ended.inputBytes - started.inputBytes) / 1024 / Math.max(1, turns)),
      };
    },
  };
}

const round = (v: number) => Math.round(v * 100) / 100;

/** Turns per level: enough rounds for a p99 that is not the maximum. */
const turnsAt = (c: number, quick: boolean) => (quick ? c * 2 : Math.max(40, c * 4));

/**
 * One execution environment under rising concurrency: `levels` streams at once (a closed loop), ours
 * beside the bare model call, on warm sessions without RAG, each design in its own environment process.
 */
export async function concurrencyAxis(options: {
  emulators: Emulators;
  environments: { ours: Environment; limit: Environment };
  levels: number[];
  latencies: Latencies;
  quick: boolean;
  log: (line: string) => void;
  /** An admin URL of the run's cache, to count its work during each design's load. */
  cacheInspectUrl?: string | undefined;
}): Promise<ConcurrencyRow[]> {
  const { emulators, environments, latencies } = options;
  const scenario = SCENARIOS[0] as Scenario;
  const rows: ConcurrencyRow[] = [];
  for (const c of options.levels) {
    const byDesign: Partial<Record<'ours' | 'limit', ConcurrencyRow>> = {};
    for (const design of ['ours', 'limit'] as const) {
      const environment = environments[design];
      const label = `axis-${c}-${design}`;
      const next = await requestsFor(emulators.mint, environment.url, scenario, c, label);
      const activity = options.cacheInspectUrl ? await cacheActivity(options.cacheInspectUrl) : undefined;
      const measured = await measure(environment, emulators, turnsAt(c, options.quick), c, next, latencies);
      const cache = await activity?.stop(measured.samples.length);
      const memory = c > 1 ? await memoryPerStream(environment, c, next, latencies) : undefined;
      const { samples } = measured;
      const handler = summarize(measured.phase.tokenGapsMs);
      const model = summarize(measured.model.tokenGapsMs);
      const client = summarize(samples.flatMap((s) => s.tokenGapsMs));
      byDesign[design] = {
        concurrency: c,
        design,
        n: samples.length,
        errors: measured.errors.length,
        firstByte: summarize(measured.phase.firstByteMs),
        firstByteClient: summarize(samples.map((s) => s.firstByteMs)),
        firstToken: summarize(samples.map((s) => s.firstTokenMs)),
        overhead: summarize(samples.map((s) => s.overheadMs)),
        gaps: {
          handler,
          model,
          client,
          addedP99: round(handler.p99 - model.p99),
          addedClientP99: round(client.p99 - model.p99),
        },
        ...cpuCost(measured),
        eventLoopDelay: measured.phase.eventLoopDelay,
        gc: measured.phase.gc,
        memory,
        cache,
      };
      options.log(`concurrency ${c} ${design} done`);
    }
    const { ours, limit } = byDesign as Record<'ours' | 'limit', ConcurrencyRow>;
    ours.beyondLimit = {
      p50: round(ours.overhead.p50 - limit.overhead.p50),
      p99: round(ours.overhead.p99 - limit.overhead.p99),
    };
    rows.push(ours, limit);
  }
  return rows;
}
