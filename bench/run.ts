import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildEnvironmentBundles, type EnvironmentBundles } from './bundles.ts';
import { buildBundles, type ColdPath, type ColdStart, coldPath, measureColdStart } from './cold-start.ts';
import { type ConcurrencyRow, concurrencyAxis } from './concurrency.ts';
import { type IdleFollowers, idleFollowers } from './followers.ts';
import { type LongConversationResult, longConversation, longConversationEnv } from './long-conversation.ts';
import { cpuCost, type Measured, measure } from './measure.ts';
import { type PersistLag, persistLag } from './persist-lag.ts';
import { type Latencies, PROFILES } from './profiles.ts';
import {
  coldTable,
  concurrencyChart,
  concurrencyTable,
  type DesignName,
  type DesignResult,
  firstTokenChart,
  followersText,
  longConversationTable,
  markdownTable,
  persistText,
  type ScenarioResult,
} from './report.ts';
import { requestsFor, SCENARIOS, type Scenario } from './sessions.ts';
import { type Emulators, type Environment, spawnEmulators, spawnEnvironment } from './stack-client.ts';
import { summarize } from './stats.ts';

const PARTS = ['scenarios', 'concurrency', 'long', 'hold', 'cold', 'followers', 'persist'] as const;
type Part = (typeof PARTS)[number];

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'aws' },
    n: { type: 'string' },
    c: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'from-source': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'source-root': { type: 'string' },
    'node-flags': { type: 'string' },
    /** `NAME=value`: an extra setting for every environment (repeatable), e.g. to A/B a configuration. */
    env: { type: 'string', multiple: true },
    levels: { type: 'string' },
    parts: { type: 'string', default: PARTS.join(',') },
    'cold-start-runs': { type: 'string' },
    'cold-path-runs': { type: 'string' },
    'long-conversations': { type: 'string' },
    'long-turns': { type: 'string' },
    'persist-conversations': { type: 'string' },
    'persist-concurrency': { type: 'string' },
    followers: { type: 'string' },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    padding: { type: 'string', default: '16384' },
    'hold-bytes': { type: 'string', default: '16384' },
    'profile-read-ms': { type: 'string' },
    'history-read-ms': { type: 'string' },
    'session-write-ms': { type: 'string' },
    'message-write-ms': { type: 'string' },
    'dynamodb-ms': { type: 'string' },
    'sqs-ms': { type: 'string' },
    'retrieve-ms': { type: 'string' },
    'model-first-token-ms': { type: 'string' },
    'token-ms': { type: 'string' },
  },
});

const quick = args.quick ?? false;
const n = Number(args.n ?? (quick ? 4 : 200));
const c = Number(args.c ?? (quick ? 2 : 10));
const levels = (args.levels ?? (quick ? '1,4' : '1,16,64,128')).split(',').map(Number);
const coldStartRuns = Number(args['cold-start-runs'] ?? (quick ? 1 : 20));
const coldPathRuns = Number(args['cold-path-runs'] ?? (quick ? 1 : 10));
const longConversations = Number(args['long-conversations'] ?? (quick ? 2 : 10));
const longTurns = Number(args['long-turns'] ?? (quick ? 1 : 4));
const persistConversations = Number(args['persist-conversations'] ?? (quick ? 6 : 200));
const persistConcurrency = Number(args['persist-concurrency'] ?? (quick ? 3 : 50));
const followerCount = Number(args.followers ?? (quick ? 4 : 200));
const parts = new Set(args.parts.split(',') as Part[]);
for (const part of parts)
  if (!PARTS.includes(part)) throw new Error(`unknown part ${part}: ${PARTS.join(', ')}`);
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function latenciesFor(profile: keyof typeof PROFILES): Latencies {
  const base = { ...PROFILES[profile].latencies };
  const pick = (flag: string | undefined, fallback: number) => (flag === undefined ? fallback : Number(flag));
  const dynamo = args['dynamodb-ms'];
  return {
    profileRead: pick(args['profile-read-ms'] ?? dynamo, base.profileRead),
    historyRead: pick(args['history-read-ms'] ?? dynamo, base.historyRead),
    sessionWrite: pick(args['session-write-ms'] ?? dynamo, base.sessionWrite),
    messageWrite: pick(args['message-write-ms'] ?? dynamo, base.messageWrite),
    sqsSend: pick(args['sqs-ms'], base.sqsSend),
    retrieve: pick(args['retrieve-ms'], base.retrieve),
    modelFirstToken: pick(args['model-first-token-ms'], base.modelFirstToken),
    perToken: pick(args['token-ms'], base.perToken),
  };
}

/**
 * Every environment's settings beside the endpoints: production logging and metrics (their cost is
 * part of a turn's), and per-user limits high enough for a benchmark's few users (their Redis round
 * trips stay on the path).
 */
const BENCH_ENV = {
  POWERTOOLS_LOG_LEVEL: 'INFO',
  POWERTOOLS_METRICS_DISABLED: 'false',
  LIMIT_TURNS_PER_MINUTE: '10000',
  LIMIT_CONCURRENT_STREAMS: '1000',
  LIMIT_TOKENS_PER_DAY: '1000000000',
  FLUSH_PADDING_BYTES: '0',
};

function designResult(design: DesignName, measured: Measured): DesignResult {
  const { samples, errors, phase } = measured;
  return {
    design,
    emulatorFirstByte: summarize(phase.firstByteMs),
    n: samples.length,
    errors: errors.length,
    firstByte: summarize(samples.map((s) => s.firstByteMs)),
    firstToken: summarize(samples.map((s) => s.firstTokenMs)),
    overhead: summarize(samples.map((s) => s.overheadMs)),
    total: summarize(samples.map((s) => s.lastByteMs)),
    serverFirstByte: summarize(samples.map((s) => s.server.first_byte_ms ?? Number.NaN)),
    cpuMsPerTurn: cpuCost(measured).cpuMsPerTurn,
    logBytesPerTurn: cpuCost(measured).logBytesPerTurn,
    historyCacheHits: samples.filter((s) => s.cache.history === 'hit').length,
    firstTokens: samples.map((s) => Math.round(s.firstTokenMs * 100) / 100),
  };
}

const round = (v: number) => Math.round(v * 100) / 100;

async function runProfile(
  profile: keyof typeof PROFILES,
  emulators: Emulators,
  designs: Array<[DesignName, Environment]>,
) {
  const latencies = latenciesFor(profile);
  await emulators.setLatencies(latencies);
  const results: ScenarioResult[] = [];
  for (const scenario of SCENARIOS) {
    const byDesign: DesignResult[] = [];
    for (const [design, environment] of designs) {
      const label = `${profile}-${scenario.id}-${design}`;
      const next = await requestsFor(emulators.mint, environment.url, scenario, c, label);
      byDesign.push(designResult(design, await measure(environment, emulators, n, c, next, latencies)));
    }
    const find = (d: DesignName) => byDesign.find((r) => r.design === d);
    const ours = find('ours') as DesignResult;
    const baseline = find('baseline') as DesignResult;
    const limit = find('limit') as DesignResult;
    const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
    const beyond = (r: DesignResult | undefined) =>
      r
        ? { p50: round(r.overhead.p50 - limit.overhead.p50), p99: round(r.overhead.p99 - limit.overhead.p99) }
        : undefined;
    results.push({
      profile,
      id: scenario.id,
      title: scenario.title,
      results: byDesign,
      ratio: {
        overhead: ratio(baseline.overhead.p50, ours.overhead.p50),
        firstToken: ratio(baseline.firstToken.p50, ours.firstToken.p50),
      },
      beyondLimit: {
        ours: beyond(ours),
        'ours, cache off': beyond(find('ours, cache off')),
        baseline: beyond(baseline),
      },
    });
    log(`${profile} ${scenario.id} done`);
  }
  return results;
}

/**
 * Persistence lag after a burst of new conversations, against emulators of its own with the consumer on
 * (a fresh table and queue, the consumer's work not shared with the other parts).
 */
async function persistPart(
  env: Record<string, string>,
  bundles: EnvironmentBundles | undefined,
  latencies: Latencies,
): Promise<PersistLag> {
  const emulators = await spawnEmulators(latencies, true);
  const overrides = Object.fromEntries(Object.entries(env).filter(([name]) => !(name in emulators.env)));
  const environment = await spawnEnvironment({
    design: 'ours',
    env: { ...emulators.env, ...overrides, ...(env.REDIS_URL ? { REDIS_URL: env.REDIS_URL } : {}) },
    bundle: bundleFor(bundles, 'ours'),
  });
  try {
    const result = await persistLag({
      emulators,
      url: environment.url,
      conversations: persistConversations,
      concurrency: persistConcurrency,
    });
    log('persistence lag done');
    return result;
  } finally {
    await environment.close();
    await emulators.close();
  }
}

/** The Function URL's small-write hold, with and without the handler's padding (each its own environment). */
async function holdScenario(
  profile: keyof typeof PROFILES,
  emulators: Emulators,
  env: Record<string, string>,
  bundle: string | undefined,
): Promise<ScenarioResult> {
  const latencies = latenciesFor(profile);
  await emulators.setLatencies(latencies);
  const holdBelowBytes = Number(args['hold-bytes']);
  const results: DesignResult[] = [];
  const paddings = [Number(args.padding), 0];
  const environments = await Promise.all(
    paddings.map((padding) =>
      spawnEnvironment({
        design: 'ours',
        env: { ...env, FLUSH_PADDING_BYTES: String(padding) },
        holdBelowBytes,
        bundle,
      }),
    ),
  );
  try {
    for (const [i, environment] of environments.entries()) {
      const padding = paddings[i] ?? 0;
      const next = await requestsFor(
        emulators.mint,
        environment.url,
        SCENARIOS[0] as Scenario,
        c,
        `hold-${padding}`,
      );
      const design = padding > 0 ? 'ours, padding on' : 'ours, padding off';
      results.push(designResult(design, await measure(environment, emulators, n, c, next, latencies)));
    }
  } finally {
    await Promise.all(environments.map((e) => e.close()));
  }
  return { profile, id: 'hold', title: `Function URL holds writes < ${holdBelowBytes} B`, results };
}

interface Check {
  target: string;
  value: number | undefined;
  limit: number;
  met: boolean;
  text: string;
}

const check = (
  name: string,
  value: number | undefined,
  limit: number,
  unit = 'ms',
  atMost = true,
): Check => ({
  target: name,
  value,
  limit,
  met: value !== undefined && !Number.isNaN(value) && (atMost ? value <= limit : value >= limit),
  text: `${name}: ${value === Number.POSITIVE_INFINITY ? '∞' : (value ?? 'n/a')} ${unit} (target ${atMost ? '≤' : '≥'} ${limit} ${unit})`,
});

interface Measured22 {
  scenarios: ScenarioResult[];
  axis: ConcurrencyRow[];
  cold: ColdStart | undefined;
  followers: IdleFollowers | undefined;
  persist: PersistLag | undefined;
}

/** The targets of the latest performance issue, each met or not (a part not run is left out). */
function targets({ scenarios: all, axis, cold, followers, persist }: Measured22): Check[] {
  const find = (profile: string, id: string, design = 'ours') =>
    all.find((s) => s.profile === profile && s.id === id)?.results.find((r) => r.design === design);
  const profile = all.some((s) => s.profile === 'aws') ? 'aws' : (all[0]?.profile ?? 'aws');
  const warm = find(profile, 'warm-no-rag');
  const baselineWarm = find(profile, 'warm-no-rag', 'baseline');
  const limitWarm = find(profile, 'warm-no-rag', 'limit');
  const checks: Check[] = [];
  if (warm && limitWarm && baselineWarm) {
    const beyond = (r: DesignResult) => r.overhead.p50 - limitWarm.overhead.p50;
    checks.push(
      check(
        `[${profile}] concurrency ${c}, warm, no RAG: beyond the bare model call p50`,
        round(beyond(warm)),
        2,
      ),
      check(
        `[${profile}] concurrency ${c}: first byte p99 at the Function URL`,
        warm.emulatorFirstByte.p99,
        5,
      ),
      check(
        `[${profile}] concurrency ${c}: sequential design ÷ ours, overhead beyond the bare call p50`,
        // Ours at or under the bare call's p50 leaves nothing to divide by: the sequential design is unboundedly worse.
        beyond(warm) > 0
          ? Math.round((beyond(baselineWarm) / beyond(warm)) * 10) / 10
          : Number.POSITIVE_INFINITY,
        10,
        '×',
        false,
      ),
    );
  }
  // The concurrency targets at 64 streams, or at the highest level run when 64 was not.
  const at = axis.some((r) => r.concurrency === 64) ? 64 : Math.max(0, ...axis.map((r) => r.concurrency));
  const ours = axis.find((r) => r.design === 'ours' && r.concurrency === at);
  const limit = axis.find((r) => r.design === 'limit' && r.concurrency === at);
  if (ours && limit) {
    checks.push(
      check(`${at} concurrent streams in one environment: first byte p99`, ours.firstByte.p99, 10),
      check(
        `${at} concurrent streams: added inter-token gap p99 ÷ the bare call's`,
        Math.round((ours.gaps.addedP99 / limit.gaps.addedP99) * 100) / 100,
        1.2,
        '×',
      ),
      check(
        `${at} concurrent streams: handler CPU per turn ÷ the bare model call's`,
        Math.round((ours.cpuMsPerTurn / limit.cpuMsPerTurn) * 100) / 100,
        1.3,
        '×',
      ),
    );
  }
  if (followers) {
    checks.push(
      check(
        `${followers.followers} idle followers of one running turn${followers.includesAttach ? ' (window includes the attach)' : ''}: Redis commands per follower per second`,
        followers.commandsPerFollowerPerSecond,
        1,
        'commands',
      ),
    );
  }
  if (cold) {
    checks.push(
      check('stream bundle', Math.round((cold.bundles['chat-stream'] ?? 0) / 1024), 1024, 'KiB'),
      check('stream bundle import + init in a fresh process, median', cold.streamInitMedianMs, 80),
    );
  }
  if (persist) {
    checks.push(
      check(
        `persistence lag p99 after ${persist.conversations} new conversations at concurrency ${persist.concurrency}`,
        persist.missing > 0 ? Number.NaN : persist.lagMs.p99,
        2000,
      ),
    );
  }
  return checks;
}

const bundleFor = (bundles: EnvironmentBundles | undefined, design: string) =>
  bundles ? (design === 'ours' ? bundles.ours : bundles.comparison) : undefined;

async function main() {
  const started = performance.now();
  const loadAtStart = loadavg()[0] ?? 0;
  const profiles = (args.profile === 'all' ? ['aws', 'seed'] : [args.profile]) as Array<
    keyof typeof PROFILES
  >;
  for (const p of profiles)
    if (!PROFILES[p]) throw new Error(`unknown profile ${p}: use aws, seed, zero or all (aws and seed)`);
  const first = profiles[0] ?? 'aws';
  const [emulators, bundles] = await Promise.all([
    spawnEmulators(latenciesFor(first)),
    args['from-source'] ? undefined : buildEnvironmentBundles(args['source-root']),
  ]);
  const overrides = Object.fromEntries(
    (args.env ?? []).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
  const env: Record<string, string> = { ...emulators.env, ...BENCH_ENV, ...overrides };
  const environments: Environment[] = [];
  const open = async (options: Parameters<typeof spawnEnvironment>[0]) => {
    const environment = await spawnEnvironment(
      {
        ...options,
        bundle: bundleFor(bundles, options.design),
        ...(args['cpu-prof'] ? { cpuProfileDir: args['cpu-prof'] } : {}),
      },
      args['node-flags']?.split(' ').filter(Boolean),
    );
    environments.push(environment);
    return environment;
  };
  const scenarios: ScenarioResult[] = [];
  let axis: ConcurrencyRow[] = [];
  let long: LongConversationResult | undefined;
  let cold: ColdStart | undefined;
  let path: ColdPath | undefined;
  let persist: PersistLag | undefined;
  let followers: IdleFollowers | undefined;
  try {
    const [ours, cacheOff, baseline, limit] = await Promise.all([
      open({ design: 'ours', env }),
      parts.has('scenarios') ? open({ design: 'ours', env, unset: ['REDIS_URL'] }) : undefined,
      parts.has('scenarios') ? open({ design: 'baseline', env }) : undefined,
      open({ design: 'limit', env }),
    ]);
    if (parts.has('scenarios') && cacheOff && baseline) {
      for (const profile of profiles) {
        scenarios.push(
          ...(await runProfile(profile, emulators, [
            ['ours', ours],
            ['ours, cache off', cacheOff],
            ['baseline', baseline],
            ['limit', limit],
          ])),
        );
      }
      await Promise.all([cacheOff.close(), baseline.close()]);
    }
    const latencies = latenciesFor(first);
    await emulators.setLatencies(latencies);
    if (parts.has('concurrency')) {
      axis = await concurrencyAxis({
        emulators,
        environments: { ours, limit },
        levels,
        latencies,
        quick,
        log,
        cacheInspectUrl: emulators.cacheInspectUrl,
      });
    }
    if (parts.has('long')) {
      const [on, off] = await Promise.all([
        open({ design: 'ours', env: { ...env, ...longConversationEnv(true) } }),
        open({ design: 'ours', env: { ...env, ...longConversationEnv(false) } }),
      ]);
      long = await longConversation({
        emulators,
        environments: { on, off },
        latencies,
        prefillMsPer1kTokens: PROFILES[first].prefillMsPer1kTokens,
        conversations: longConversations,
        turns: longTurns,
        log,
      });
      await Promise.all([on.close(), off.close()]);
    }
    if (parts.has('hold')) {
      for (const profile of profiles) {
        scenarios.push(await holdScenario(profile, emulators, env, bundleFor(bundles, 'ours')));
      }
    }
    if (parts.has('cold')) {
      const builtBy = quick || !bundles ? 'esbuild' : 'cdk';
      const built = await buildBundles(builtBy, bundles?.ours ?? (await buildEnvironmentBundles()).ours);
      cold = await measureColdStart(emulators.env, built, builtBy, coldStartRuns);
      await emulators.setLatencies(latencies);
      path = await coldPath({
        emulators,
        env,
        bundle: built['chat-stream'] ?? '',
        warmUrl: ours.url,
        runs: coldPathRuns,
        latencies,
      });
      log('cold start done');
    }
    const inspectUrl = emulators.cacheInspectUrl;
    if (parts.has('followers') && env.REDIS_URL && inspectUrl) {
      followers = await idleFollowers({
        emulators,
        url: ours.url,
        redisUrl: inspectUrl,
        latencies,
        followers: followerCount,
        // Longer than a follower's blocking read (10 s), so each follower's re-issued read falls in the
        // window; the quick run counts from the attach instead, in a short window.
        idleSeconds: quick ? 2 : 15,
        includeAttach: quick,
      });
      log('idle followers done');
    }
    if (parts.has('persist')) persist = await persistPart(env, bundles, latencies);
  } finally {
    await Promise.all(environments.map((e) => e.close()));
    await emulators.close();
  }

  const checks = targets({ scenarios, axis, cold, followers, persist });
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    /** 1-minute load average at the start and the end: other work on the machine skews every figure. */
    loadAverage: { start: Math.round(loadAtStart * 10) / 10, end: Math.round((loadavg()[0] ?? 0) * 10) / 10 },
  };
  const report = {
    date: new Date().toISOString(),
    machine,
    params: {
      n,
      c,
      levels,
      quick,
      parts: [...parts],
      // Which cache the environments signed in to: the results depend on its shape.
      cache: env.REDIS_URL === emulators.env.REDIS_URL ? emulators.cache : 'REDIS_URL given with --env',
      profiles: profiles.map((p) => ({
        name: p,
        description: PROFILES[p].description,
        latencies: latenciesFor(p),
      })),
    },
    scenarios,
    concurrency: axis,
    longConversation: long,
    coldStart: cold,
    coldPath: path,
    idleFollowers: followers,
    persistLag: persist,
    targets: checks,
    durationSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
  await mkdir(args.out, { recursive: true });
  const stamp = report.date.replace(/[:.]/g, '-');
  const json = JSON.stringify(report, null, 2);
  await Promise.all([
    writeFile(join(args.out, `bench-${stamp}.json`), json),
    writeFile(join(args.out, 'latest.json'), json),
    writeFile(join(args.out, 'latest-first-token.svg'), firstTokenChart(scenarios)),
    ...(axis.length > 0 ? [writeFile(join(args.out, 'latest-concurrency.svg'), concurrencyChart(axis))] : []),
  ]);

  const sections = [
    `# Benchmark (${report.date})`,
    `Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}; load average ${machine.loadAverage.start} at the start, ${machine.loadAverage.end} at the end.
Processes: the load client (this one), the emulated AWS services, Redis, and one process per design: its
handler and the Function URL emulator, as one execution environment.
Cache: ${report.params.cache}.
${profiles.map((p) => `- profile \`${p}\`: ${PROFILES[p].description}`).join('\n')}
Server overhead = first token − injected model first-token delay − injected Retrieve delay (when Retrieve ran).`,
  ];
  if (scenarios.length > 0) {
    sections.push(
      `## Scenarios (N = ${n} per design and scenario, concurrency ${c})`,
      markdownTable(scenarios),
    );
  }
  if (axis.length > 0) {
    sections.push(
      `## One execution environment under concurrent streams (profile ${first}, warm cache, no RAG)`,
      concurrencyTable(axis),
    );
  }
  if (long) sections.push('## Long conversation (prompt caching)', longConversationTable(long));
  if (cold) sections.push('## Cold start', coldTable(cold, path));
  if (followers) sections.push('## Idle resume followers', followersText(followers));
  if (persist) sections.push('## Persistence lag', persistText(persist));
  sections.push(
    `## Targets\n${checks.map((t) => `- ${t.met ? 'MET' : 'NOT MET'} ${t.text}`).join('\n')}`,
    `Written: ${join(args.out, `bench-${stamp}.json`)}, latest.json, latest-first-token.svg${axis.length > 0 ? ', latest-concurrency.svg' : ''} (${report.durationSeconds} s)`,
  );
  console.log(sections.join('\n\n'));
  process.exit(0);
}

await main();
