import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { startFunctionUrl } from '../local/lambda-runtime/function-url.ts';
import {
  installAwsLambdaGlobal,
  type LambdaResponseStream,
  type StreamingHandler,
  streamifyResponse,
} from '../local/lambda-runtime/response-stream.ts';

/**
 * One execution environment in a process of its own: one design's handler (its module, its init, its
 * clients) behind the Function URL emulator, as the Lambda runtime runs it, and nothing else. The
 * emulators and the load client run in other processes, so this process's CPU time and memory are the
 * environment's. Driven over IPC by `stack-client.ts`.
 */
export type Design = 'ours' | 'baseline' | 'limit';

export interface EnvironmentOptions {
  role: 'environment';
  design: Design;
  env: Record<string, string>;
  /** Variables to remove from the inherited environment (e.g. REDIS_URL for the cache-off option). */
  unset?: string[];
  holdBelowBytes?: number;
  /**
   * The built module to run: the stream function's bundle for `ours` (exports `handler`), the comparison
   * designs' for the others; without it the design runs from source.
   */
  bundle?: string;
  /** Write a V8 CPU profile of each measured phase (from `start` to `stop`) into this directory. */
  cpuProfileDir?: string;
}

export type EnvironmentRequest =
  | { type: 'start' }
  | { type: 'stop' }
  | { type: 'memory' }
  | { type: 'close' };

export interface EnvironmentReady {
  type: 'ready';
  url: string;
  /** From process start to the handler's module imported and its init done, ms. */
  initMs: number;
}

/** What one measured phase cost this environment. */
export interface PhaseStats {
  type: 'phase';
  /** Request arrival to first body byte leaving the Function URL emulator, per request. */
  firstByteMs: number[];
  /** Between consecutive token writes of one response, as the handler handed them to the runtime. */
  tokenGapsMs: number[];
  cpuUserMs: number;
  cpuSystemMs: number;
  wallMs: number;
  /** Share of the phase the event loop was busy (0..1). */
  eventLoopUtilization: number;
  /** How late timers fired (event loop delay), p99 and max, ms: what any callback may wait behind others. */
  eventLoopDelay: { p99: number; max: number };
  /** Garbage collection pauses during the phase: total and longest, ms. */
  gc: { totalMs: number; maxMs: number; count: number };
  invocations: number;
  /** Bytes the environment wrote to stdout and stderr (its logs and EMF metrics: CloudWatch Logs ingestion). */
  logBytes: number;
}

/** Live memory with `open` streams in flight, after a full GC, against the idle figure taken at `start`. */
export interface MemoryStats {
  type: 'memory';
  open: number;
  heapBytes: number;
  idleHeapBytes: number;
  rssBytes: number;
  idleRssBytes: number;
}

const TOKEN = '"type":"token"';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const liveBytes = () => {
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external, rss: m.rss };
};

export async function runEnvironment(options: EnvironmentOptions): Promise<void> {
  const importStarted = performance.now();
  Object.assign(process.env, options.env);
  for (const name of options.unset ?? []) delete process.env[name];
  installAwsLambdaGlobal();
  const handler = await loadDesign(options.design, options.bundle);
  const initMs = performance.now() - importStarted;

  let recording = false;
  let logBytes = 0;
  // What Lambda would ship to CloudWatch Logs: counted, then written where the parent sent it.
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      if (recording) logBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  let gaps: number[] = [];
  let invocations = 0;
  let open = 0;
  /** Records when each token write leaves the handler: the gaps between them are what a client sees. */
  const measured = streamifyResponse(
    async (event: LambdaFunctionURLEvent, stream: LambdaResponseStream, context: Context) => {
      invocations++;
      open++;
      let last: number | undefined;
      const write = stream._write.bind(stream);
      stream._write = (chunk, encoding, callback) => {
        if (recording && chunk.includes(TOKEN)) {
          const now = performance.now();
          if (last !== undefined) gaps.push(now - last);
          last = now;
        }
        write(chunk, encoding, callback);
      };
      try {
        await handler(event, stream, context);
      } finally {
        open--;
      }
    },
  );
  const server = await startFunctionUrl({
    handler: measured as unknown as StreamingHandler,
    functionName: options.design,
    holdBelowBytes: options.holdBelowBytes ?? 0,
  });

  const profiler = options.cpuProfileDir ? new Session() : undefined;
  profiler?.connect();
  let phase = 0;
  const delay = monitorEventLoopDelay({ resolution: 5 });
  let pauses: number[] = [];
  new PerformanceObserver((list) => {
    if (recording) for (const entry of list.getEntries()) pauses.push(entry.duration);
  }).observe({ entryTypes: ['gc'] });
  let cpu = process.cpuUsage();
  let wall = performance.now();
  let elu = performance.eventLoopUtilization();
  let idle = liveBytes();
  process.on('message', async (message: EnvironmentRequest) => {
    if (message.type === 'start') {
      gc();
      idle = liveBytes();
      server.firstBodyByteMs.splice(0);
      gaps = [];
      invocations = 0;
      logBytes = 0;
      recording = true;
      if (profiler) {
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      cpu = process.cpuUsage();
      elu = performance.eventLoopUtilization();
      delay.reset();
      delay.enable();
      pauses = [];
      wall = performance.now();
      process.send?.({ type: 'ok' });
    } else if (message.type === 'stop') {
      const used = process.cpuUsage(cpu);
      const utilization = performance.eventLoopUtilization(elu).utilization;
      delay.disable();
      recording = false;
      if (profiler && options.cpuProfileDir) {
        const { profile } = await profiler.post('Profiler.stop');
        const file = join(options.cpuProfileDir, `${options.design}-${process.pid}-${++phase}.cpuprofile`);
        await writeFile(file, JSON.stringify(profile));
      }
      process.send?.({
        type: 'phase',
        firstByteMs: server.firstBodyByteMs.splice(0),
        tokenGapsMs: gaps,
        cpuUserMs: used.user / 1000,
        cpuSystemMs: used.system / 1000,
        wallMs: performance.now() - wall,
        eventLoopUtilization: utilization,
        // The histogram is in nanoseconds and includes the sampling interval itself.
        eventLoopDelay: {
          p99: Math.round(delay.percentile(99) / 1e4) / 100,
          max: Math.round(delay.max / 1e4) / 100,
        },
        gc: {
          totalMs: Math.round(pauses.reduce((a, b) => a + b, 0)),
          maxMs: Math.round(Math.max(0, ...pauses) * 100) / 100,
          count: pauses.length,
        },
        invocations,
        logBytes,
      } satisfies PhaseStats);
      gaps = [];
    } else if (message.type === 'memory') {
      const streams = open;
      gc();
      gc();
      const now = liveBytes();
      process.send?.({
        type: 'memory',
        open: streams,
        heapBytes: now.heap,
        idleHeapBytes: idle.heap,
        rssBytes: now.rss,
        idleRssBytes: idle.rss,
      } satisfies MemoryStats);
    } else {
      await server.close();
      process.exit(0);
    }
  });
  process.send?.({ type: 'ready', url: server.url, initMs } satisfies EnvironmentReady);
}

async function loadDesign(design: Design, bundle: string | undefined): Promise<StreamingHandler> {
  if (design === 'ours') {
    const { handler } = bundle
      ? ((await import(pathToFileURL(bundle).href)) as { handler: unknown })
      : await import('../functions/chat-stream/handler.ts');
    return handler as unknown as StreamingHandler;
  }
  const { createBaselineHandler, createLimitHandler } = bundle
    ? ((await import(pathToFileURL(bundle).href)) as typeof import('./baseline-handler.ts'))
    : await import('./baseline-handler.ts');
  return (design === 'baseline' ? createBaselineHandler() : createLimitHandler()) as StreamingHandler;
}
