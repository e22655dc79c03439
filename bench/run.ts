import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import { chat } from '../local/sse-client.ts';
import { type ColdStart, measureColdStart } from './cold-start.ts';
import { type RequestSpec, runLoad, type Sample } from './load.ts';
import { type Latencies, PROFILES } from './profiles.ts';
import { type DesignResult, firstTokenChart, markdownTable, type ScenarioResult } from './report.ts';
import { type StackUnderTest, spawnStack } from './stack-client.ts';
import { summarize } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'aws' },
    n: { type: 'string' },
    c: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'cold-start-runs': { type: 'string' },
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

const n = Number(args.n ?? (args.quick ? 8 : 200));
const c = Number(args.c ?? (args.quick ? 4 : 10));
const coldStartRuns = Number(args['cold-start-runs'] ?? (args.quick ? 5 : 20));
const QUESTIONS = [
  'What is a Roth IRA?',
  'How big should an emergency fund be?',
  'How does an employer 401(k) match work?',
  'What helps my credit score most?',
  'Should I pay the highest interest debt first?',
];

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

function designResult(
  design: DesignResult['design'],
  samples: Sample[],
  errors: string[],
  emulatorFirstByte: number[],
): DesignResult {
  return {
    design,
    emulatorFirstByte: summarize(emulatorFirstByte),
    n: samples.length,
    errors: errors.length,
    firstByte: summarize(samples.map((s) => s.firstByteMs)),
    firstToken: summarize(samples.map((s) => s.firstTokenMs)),
    overhead: summarize(samples.map((s) => s.overheadMs)),
    total: summarize(samples.map((s) => s.lastByteMs)),
    serverFirstByte: summarize(samples.map((s) => s.server.first_byte_ms ?? Number.NaN)),
    firstTokens: samples.map((s) => Math.round(s.firstTokenMs * 100) / 100),
  };
}

interface Scenario {
  id: string;
  title: string;
  useRag: boolean;
  session: 'warm' | 'cold';
  question: 'fixed' | 'unique';
}

const SCENARIOS: Scenario[] = [
  { id: 'warm-no-rag', title: 'warm cache, no RAG', useRag: false, session: 'warm', question: 'fixed' },
  { id: 'cold-no-rag', title: 'cold cache, no RAG', useRag: false, session: 'cold', question: 'fixed' },
  { id: 'rag-cold', title: 'RAG, cold RAG cache', useRag: true, session: 'warm', question: 'unique' },
  { id: 'rag-hit', title: 'RAG, RAG cache hit', useRag: true, session: 'warm', question: 'fixed' },
];

/** Warm sessions: one per worker and design, with profile and history cached by a first turn. */
async function warmSessions(sut: StackUnderTest, url: string, label: string) {
  return Promise.all(
    Array.from({ length: c }, async (_, w) => {
      const token = await sut.mint(`bench-${label}-${w}-${uuidv7()}`);
      const first = await chat(url, token, { message: QUESTIONS[0], use_rag: false });
      return { token, sessionId: first.events[0]?.data.session_id as string };
    }),
  );
}

async function requestsFor(sut: StackUnderTest, url: string, scenario: Scenario, label: string) {
  const sessions = scenario.session === 'warm' ? await warmSessions(sut, url, label) : [];
  const nonce = uuidv7().slice(-8);
  const fixed = QUESTIONS[1] as string;
  if (scenario.useRag && scenario.question === 'fixed') {
    await chat(url, sessions[0]?.token, { message: fixed, use_rag: true });
  }
  return async (index: number, worker: number): Promise<RequestSpec> => {
    const message =
      scenario.question === 'unique' ? `${QUESTIONS[index % QUESTIONS.length]} case ${nonce}${index}` : fixed;
    if (scenario.session === 'cold') {
      return {
        token: await sut.mint(`bench-cold-${uuidv7()}`),
        body: { message, session_id: uuidv7(), use_rag: scenario.useRag },
      };
    }
    const session = sessions[worker] ?? sessions[0];
    return {
      token: session?.token ?? '',
      body: { message, session_id: session?.sessionId, use_rag: scenario.useRag },
    };
  };
}

async function runProfile(profile: keyof typeof PROFILES, sut: StackUnderTest) {
  const latencies = latenciesFor(profile);
  await sut.setLatencies(latencies);
  const results: ScenarioResult[] = [];
  for (const scenario of SCENARIOS) {
    const designs: DesignResult[] = [];
    for (const [design, url] of [
      ['ours', sut.url],
      ['baseline', sut.baselineUrl],
      ['limit', sut.limitUrl],
    ] as const) {
      const next = await requestsFor(sut, url, scenario, `${profile}-${scenario.id}-${design}`);
      await sut.firstByteTimes(design);
      const { samples, errors } = await runLoad(url, n, c, next, latencies);
      designs.push(designResult(design, samples, errors, await sut.firstByteTimes(design)));
    }
    const [ours, baseline, limit] = designs as [DesignResult, DesignResult, DesignResult];
    const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
    const round = (v: number) => Math.round(v * 100) / 100;
    results.push({
      profile,
      id: scenario.id,
      title: scenario.title,
      results: designs,
      ratio: {
        overhead: ratio(baseline.overhead.p50, ours.overhead.p50),
        firstToken: ratio(baseline.firstToken.p50, ours.firstToken.p50),
      },
      beyondLimit: {
        ours: {
          p50: round(ours.overhead.p50 - limit.overhead.p50),
          p99: round(ours.overhead.p99 - limit.overhead.p99),
        },
        baseline: {
          p50: round(baseline.overhead.p50 - limit.overhead.p50),
          p99: round(baseline.overhead.p99 - limit.overhead.p99),
        },
      },
    });
    process.stderr.write(`bench: ${profile} ${scenario.id} done\n`);
  }
  return results;
}

/** The Function URL's small-write hold, with and without the handler's padding (configuration read once at init: one stack each). */
async function holdScenario(profile: keyof typeof PROFILES): Promise<ScenarioResult> {
  const latencies = latenciesFor(profile);
  const holdBelowBytes = Number(args['hold-bytes']);
  const results: DesignResult[] = [];
  for (const padding of [Number(args.padding), 0]) {
    const sut = await spawnStack({ latencies, holdBelowBytes, padding });
    try {
      const next = await requestsFor(sut, sut.url, SCENARIOS[0] as Scenario, `hold-${padding}`);
      await sut.firstByteTimes('ours');
      const { samples, errors } = await runLoad(sut.url, n, c, next, latencies);
      const design = padding > 0 ? 'ours, padding on' : 'ours, padding off';
      results.push(designResult(design, samples, errors, await sut.firstByteTimes('ours')));
    } finally {
      await sut.close();
    }
  }
  return { profile, id: 'hold', title: `Function URL holds writes < ${holdBelowBytes} B`, results };
}

function targets(all: ScenarioResult[], cold: ColdStart) {
  const find = (profile: string, id: string, design = 'ours') =>
    all.find((s) => s.profile === profile && s.id === id)?.results.find((r) => r.design === design);
  const profile = all.some((s) => s.profile === 'aws') ? 'aws' : (all[0]?.profile ?? 'aws');
  const warm = find(profile, 'warm-no-rag');
  const ragCold = find(profile, 'rag-cold');
  const ragHit = find(profile, 'rag-hit');
  const baselineWarm = find(profile, 'warm-no-rag', 'baseline');
  const check = (name: string, value: number | undefined, limit: number, unit = 'ms', atMost = true) => ({
    target: name,
    value,
    limit,
    met: value !== undefined && (atMost ? value <= limit : value >= limit),
    text: `${name}: ${value ?? 'n/a'} ${unit} (target ${atMost ? '≤' : '≥'} ${limit} ${unit})`,
  });
  return [
    check(
      `[${profile}] first byte p99 after the request reaches the emulator, warm`,
      warm?.emulatorFirstByte.p99,
      5,
    ),
    check(`[${profile}] warm, no RAG: overhead p50`, warm?.overhead.p50, 3),
    check(`[${profile}] warm, no RAG: overhead p99`, warm?.overhead.p99, 10),
    check(`[${profile}] RAG cold cache: overhead beyond Retrieve + model p50`, ragCold?.overhead.p50, 5),
    check(`[${profile}] RAG cache hit: overhead p50`, ragHit?.overhead.p50, 5),
    check(
      `[${profile}] warm, no RAG: baseline ÷ ours overhead p50`,
      baselineWarm && warm
        ? Math.round((baselineWarm.overhead.p50 / warm.overhead.p50) * 10) / 10
        : undefined,
      10,
      '×',
      false,
    ),
    check('stream bundle', Math.round((cold.bundles['chat-stream'] ?? 0) / 1024), 1024, 'KiB'),
    check('stream bundle init in a fresh process, median', cold.streamInitMedianMs, 250),
  ];
}

function seedTable(all: ScenarioResult[]): string | undefined {
  const find = (id: string, design: string) =>
    all.find((s) => s.profile === 'seed' && s.id === id)?.results.find((r) => r.design === design);
  const before = find('rag-cold', 'baseline');
  const parallel = find('rag-cold', 'ours');
  const fast = find('warm-no-rag', 'ours');
  if (!before || !parallel || !fast) return undefined;
  return [
    "| seed's table (TTFT) | seed claims | measured here (first token p50, ms) |",
    '|---|---|---|',
    `| Before (sequential) | ~1500 ms | ${before.firstToken.p50} (p99 ${before.firstToken.p99}) |`,
    `| After (parallel, RAG) | ~350 ms | ${parallel.firstToken.p50} (p99 ${parallel.firstToken.p99}) |`,
    `| After (Redis, no RAG) | ~50-80 ms | ${fast.firstToken.p50} (p99 ${fast.firstToken.p99}); model first token alone is 249 |`,
    `| Total request | 1549 → ~600-800 ms | ${before.total.p50} → ${fast.total.p50} |`,
  ].join('\n');
}

async function main() {
  const started = performance.now();
  const profiles = (args.profile === 'all' ? ['aws', 'seed'] : [args.profile]) as Array<
    keyof typeof PROFILES
  >;
  for (const p of profiles)
    if (!PROFILES[p]) throw new Error(`unknown profile ${p}: use aws, seed, zero or all (aws and seed)`);
  const sut = await spawnStack({ latencies: latenciesFor(profiles[0] ?? 'aws') });
  const scenarios: ScenarioResult[] = [];
  let cold: ColdStart;
  try {
    for (const profile of profiles) scenarios.push(...(await runProfile(profile, sut)));
    cold = await measureColdStart(sut.env, coldStartRuns);
  } finally {
    await sut.close();
  }
  for (const profile of profiles) scenarios.push(await holdScenario(profile));

  const checks = targets(scenarios, cold);
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  const report = {
    date: new Date().toISOString(),
    machine,
    params: {
      n,
      c,
      quick: args.quick,
      profiles: profiles.map((p) => ({
        name: p,
        description: PROFILES[p].description,
        latencies: latenciesFor(p),
      })),
    },
    scenarios: scenarios.map((s) => ({
      ...s,
      results: s.results.map(({ firstTokens, ...r }) => ({ ...r, firstTokens })),
    })),
    coldStart: cold,
    targets: checks,
    durationSeconds: Math.round((performance.now() - started) / 100) / 10,
  };
  await mkdir(args.out, { recursive: true });
  const stamp = report.date.replace(/[:.]/g, '-');
  const svg = firstTokenChart(scenarios);
  await Promise.all([
    writeFile(join(args.out, `bench-${stamp}.json`), JSON.stringify(report, null, 2)),
    writeFile(join(args.out, 'latest.json'), JSON.stringify(report, null, 2)),
    writeFile(join(args.out, 'latest-first-token.svg'), svg),
  ]);

  const seed = seedTable(scenarios);
  console.log(`# Benchmark (${report.date})

Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}.
N = ${n} requests per design and scenario at concurrency ${c}, over HTTP through the Function URL emulator.
${profiles.map((p) => `- profile \`${p}\`: ${PROFILES[p].description}`).join('\n')}
Server overhead = first token − injected model first-token delay − injected Retrieve delay (when Retrieve ran).

${markdownTable(scenarios)}
${seed ? `\n${seed}\n` : ''}
Cold start: bundles ${Object.entries(cold.bundles)
    .map(([k, v]) => `${k} ${(v / 1024).toFixed(1)} KiB`)
    .join(
      ', ',
    )}; stream bundle import + init in a fresh process: median ${cold.streamInitMedianMs} ms over ${cold.streamInitMs.length} runs.

Targets:
${checks.map((t) => `- ${t.met ? 'MET' : 'NOT MET'} ${t.text}`).join('\n')}

Written: ${join(args.out, `bench-${stamp}.json`)}, latest.json, latest-first-token.svg (${report.durationSeconds} s)`);
  process.exit(0);
}

await main();
