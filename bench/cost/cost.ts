import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { AWS_PRICES as P } from './aws-prices.ts';

/**
 * The cost model: fixed monthly cost and cost per 1,000 turns of each deploy option, from the list
 * prices in aws-prices.ts, the stated turn below and what the benchmark measured (the latest
 * `npm run bench` run with the aws profile, else the figures of the README's run).
 */

/** A turn as the model prices it; change it with flags. */
export interface Turn {
  inputTokens: number;
  outputTokens: number;
  /** The model's time to first token and per output token (the benchmark's aws profile). */
  modelFirstTokenMs: number;
  modelMsPerToken: number;
  streamMemoryGb: number;
  /** The consumer (512 MB) per turn: two messages in one batch, a conditional put and an update each. */
  persistMemoryGb: number;
  persistMs: number;
  turnsPerSession: number;
}

export const DEFAULT_TURN: Turn = {
  inputTokens: 1500,
  outputTokens: 300,
  modelFirstTokenMs: 350,
  modelMsPerToken: 10,
  streamMemoryGb: 1,
  persistMemoryGb: 0.5,
  persistMs: 60,
  turnsPerSession: 5,
};

/** What the benchmark measured and the model uses. */
export interface Measured {
  source: string;
  /** Our first-token overhead, warm cache, p50 (ms): added to every turn's duration. */
  overheadMs: number;
  /** The same for the cache-off option (DynamoDB on every turn). */
  cacheOffOverheadMs: number;
  /** Handler CPU per turn in one environment under concurrency (sizes Managed Instances). */
  cpuMsPerTurn: number;
  /** Log and EMF bytes the stream function writes per turn. */
  logBytesPerTurn: number;
  /** Live heap per open stream (sizes Managed Instances' memory). */
  heapKiBPerStream: number;
  /** The long-conversation scenario's tokens per turn, with prompt caching on (when it ran). */
  longConversation?: { promptTokens: number; cacheRead: number; cacheWrite: number; savedMs: number };
}

/** The README's run (npm run bench, aws profile); used when no aws-profile result is at hand. */
const README_RUN: Measured = {
  source: "the README's run (npm run bench, 2026-11-27)",
  overheadMs: 20.66,
  cacheOffOverheadMs: 48.79,
  cpuMsPerTurn: 7.56,
  logBytesPerTurn: 1478,
  heapKiBPerStream: 38.4,
  longConversation: { promptTokens: 8590, cacheRead: 8489, cacheWrite: 82, savedMs: 412.17 },
};

interface BenchJson {
  date: string;
  params: { profiles: Array<{ name: string }> };
  scenarios: Array<{
    profile: string;
    id: string;
    results: Array<{ design: string; overhead: { p50: number }; logBytesPerTurn?: number }>;
  }>;
  longConversation?: {
    savedP50Ms: number;
    rows: Array<{
      design: string;
      promptTokensPerTurn: number;
      cacheReadTokensPerTurn: number;
      cacheWriteTokensPerTurn: number;
    }>;
  };
  concurrency?: Array<{
    design: string;
    concurrency: number;
    cpuMsPerTurn: number;
    memory?: { heapKiBPerStream: number };
  }>;
}

export function measuredFrom(file: string): Measured {
  if (!existsSync(file)) return README_RUN;
  const bench = JSON.parse(readFileSync(file, 'utf8')) as BenchJson;
  const warm = bench.scenarios.find((s) => s.profile === 'aws' && s.id === 'warm-no-rag');
  const ours = warm?.results.find((r) => r.design === 'ours');
  const off = warm?.results.find((r) => r.design === 'ours, cache off');
  if (!ours || !off) return README_RUN;
  const axis = (bench.concurrency ?? []).filter((r) => r.design === 'ours');
  const busiest = axis.at(-1);
  const withMemory = axis.filter((r) => r.memory && r.memory.heapKiBPerStream > 0).at(-1);
  const on = bench.longConversation?.rows.find((r) => r.design === 'prompt caching on');
  return {
    ...(on && bench.longConversation
      ? {
          longConversation: {
            promptTokens: on.promptTokensPerTurn,
            cacheRead: on.cacheReadTokensPerTurn,
            cacheWrite: on.cacheWriteTokensPerTurn,
            savedMs: bench.longConversation.savedP50Ms,
          },
        }
      : {}),
    source: `${relative(process.cwd(), file) || file} (${bench.date})`,
    overheadMs: ours.overhead.p50,
    cacheOffOverheadMs: off.overhead.p50,
    cpuMsPerTurn: busiest?.cpuMsPerTurn ?? README_RUN.cpuMsPerTurn,
    logBytesPerTurn: ours.logBytesPerTurn ?? README_RUN.logBytesPerTurn,
    heapKiBPerStream: withMemory?.memory?.heapKiBPerStream ?? README_RUN.heapKiBPerStream,
  };
}

export type OptionName = 'default' | 'NAT gateway' | 'Managed Instances' | 'cache off';
export const OPTIONS: OptionName[] = ['default', 'NAT gateway', 'Managed Instances', 'cache off'];

interface Line {
  item: string;
  usd: number;
}

export interface OptionCost {
  option: OptionName;
  fixed: Line[];
  /** Per 1,000 turns, the model's tokens apart. */
  perThousand: Line[];
  modelPerThousand: number;
  /** Turn duration billed (ms) and the assumptions that depend on the option. */
  durationMs: number;
}

const GB = 1024 ** 3;
const sum = (lines: Line[]) => lines.reduce((total, l) => total + l.usd, 0);

/** Bytes a turn moves through the VPC's endpoints or NAT: the model call both ways and two queue sends. */
function vpcBytes(turn: Turn): number {
  const request = turn.inputTokens * 4 + 2000;
  // One event-stream frame (headers, JSON, CRC) of about 120 bytes per output token.
  const response = turn.outputTokens * 120 + 1000;
  const queue = 2 * 3000;
  return request + response + queue;
}

/** Bytes streamed to the client: session_id, the first token padded (16 KiB each), then the tokens. */
const responseBytes = (turn: Turn) => 2 * 16_384 + turn.outputTokens * 40 + 1500;

export function optionCost(option: OptionName, turn: Turn, measured: Measured): OptionCost {
  const cacheOff = option === 'cache off';
  const overheadMs = cacheOff ? measured.cacheOffOverheadMs : measured.overheadMs;
  // The answer's wait, the model streaming it, our overhead, the writes settled after the stream.
  const durationMs = Math.round(
    turn.modelFirstTokenMs + turn.outputTokens * turn.modelMsPerToken + overheadMs + 20,
  );
  const perTurn: Line[] = [];
  const add = (item: string, usdPerTurn: number) => perTurn.push({ item, usd: usdPerTurn * 1000 });

  // Lambda: the stream invocation, and one consumer invocation per turn.
  const streamRequests =
    option === 'Managed Instances' ? P.managedInstances.requestsPerMillion : P.lambda.requestsPerMillion;
  add('Lambda requests (stream + consumer)', (streamRequests + P.lambda.requestsPerMillion) / 1e6);
  if (option === 'Managed Instances') {
    // No duration charge for the stream: its instances are a fixed cost; the consumer stays on demand.
    add(
      'Lambda duration (stream + consumer)',
      (turn.persistMs / 1000) * turn.persistMemoryGb * P.lambda.armPerGbSecond,
    );
  } else {
    add(
      'Lambda duration (stream + consumer)',
      ((durationMs / 1000) * turn.streamMemoryGb + (turn.persistMs / 1000) * turn.persistMemoryGb) *
        P.lambda.armPerGbSecond,
    );
  }
  // SQS FIFO: two sends, about two receives and one batch delete.
  add('SQS FIFO requests', (5 * P.sqs.fifoRequestsPerMillion) / 1e6);
  // DynamoDB: two conditional puts (the answer with sources ~2 KB), two session updates, a title per session.
  const wru = 1 + 2 + 2 + 1 / turn.turnsPerSession;
  // Reads: with the cache, only on a miss (profile 5 min, history 1 h); without it, profile + history every turn.
  const rru = cacheOff ? 0.5 + 2 : 0.2 * (0.5 + 2);
  add('DynamoDB writes', (wru * P.dynamodb.writeRequestUnitsPerMillion) / 1e6);
  add('DynamoDB reads', (rru * P.dynamodb.readRequestUnitsPerMillion) / 1e6);
  add(
    'DynamoDB storage + PITR, one month per turn kept',
    (3000 / GB) * (P.dynamodb.storagePerGbMonth + P.dynamodb.pitrPerGbMonth),
  );
  if (!cacheOff) {
    // Valkey: ~25 commands per turn, plus the turn journal's flush (3 commands) every 100 ms while it streams.
    const ecpus = 25 + (durationMs / 100) * 3;
    add('Valkey ECPUs', (ecpus * P.valkeyServerless.ecpusPerMillion) / 1e6);
  }
  if (option === 'NAT gateway')
    add('NAT data processed', (vpcBytes(turn) / GB) * P.natGateway.perGbProcessed);
  else if (!cacheOff)
    add('interface endpoint data processed', (vpcBytes(turn) / GB) * P.interfaceEndpoint.perGbProcessed);
  // Logs: what the stream function wrote (measured), Lambda's platform lines for two invocations, the consumer's.
  const logBytes = measured.logBytesPerTurn + 2 * 700 + 500;
  add('CloudWatch Logs ingestion', (logBytes / GB) * P.cloudwatch.logsIngestedPerGb);
  add(
    'data transfer out (the streamed answer, padding included)',
    (responseBytes(turn) / GB) * P.dataTransferOutPerGb,
  );

  const fixed: Line[] = [];
  const hours = P.hoursPerMonth;
  if (!cacheOff) {
    fixed.push({
      item: 'Valkey Serverless, 100 MB minimum storage',
      usd: P.valkeyServerless.minimumStorageGb * P.valkeyServerless.storagePerGbHour * hours,
    });
    if (option === 'NAT gateway')
      fixed.push({ item: 'NAT gateway (one AZ)', usd: P.natGateway.perHour * hours });
    else
      fixed.push({
        item: '3 interface endpoints × 2 AZs (SQS, Bedrock Runtime, Agent Runtime)',
        usd: 3 * 2 * P.interfaceEndpoint.perAzHour * hours,
      });
  }
  if (option === 'Managed Instances') {
    fixed.push({
      item: `${P.managedInstances.minimumInstances} × ${P.managedInstances.instanceType} + 15 % management fee (minimum fleet)`,
      usd:
        P.managedInstances.minimumInstances *
        P.managedInstances.instancePerHour *
        (1 + P.managedInstances.managementFeeRate) *
        hours,
    });
    fixed.push({
      item: 'CloudWatch Logs interface endpoint × 2 AZs',
      usd: 2 * P.interfaceEndpoint.perAzHour * hours,
    });
  }
  fixed.push(
    { item: 'custom metrics (24 metric/dimension pairs)', usd: 24 * P.cloudwatch.customMetricPerMonth },
    { item: 'dashboard', usd: P.cloudwatch.dashboardPerMonth },
    { item: 'alarms (24 metrics)', usd: 24 * P.cloudwatch.alarmMetricPerMonth },
    { item: 'KMS key (alarm topic)', usd: P.kms.keyPerMonth },
    // The consumer's event source long-polls FIFO: about 5 pollers × 3 empty receives a minute.
    {
      item: 'SQS empty receives (event source polling)',
      usd: ((5 * 3 * 60 * hours) / 1e6) * P.sqs.fifoRequestsPerMillion,
    },
  );

  const m = P.bedrockHaiku45;
  const modelPerThousand =
    ((turn.inputTokens * m.inputPerMillion + turn.outputTokens * m.outputPerMillion) / 1e6) * 1000;
  return { option, fixed, perThousand: perTurn, modelPerThousand, durationMs };
}

/** Managed Instances beyond the minimum fleet at `turns` a month (peak three times the average). */
export function managedInstancesNeeded(turns: number, measured: Measured, durationMs: number): number {
  const peakTurnsPerSecond = (turns / P.secondsPerMonth) * 3;
  // Scaling is on CPU: keep it near half busy.
  const vcpus = (peakTurnsPerSecond * measured.cpuMsPerTurn) / 1000 / 0.5;
  // Memory: 2 GB per vCPU environments, each stream's live heap plus a 512 MB base per environment.
  const streams = peakTurnsPerSecond * (durationMs / 1000);
  const memoryGb = (streams * measured.heapKiBPerStream) / 1024 ** 2 + 0.5 * Math.ceil(vcpus);
  const perInstance = P.managedInstances.instanceVcpus;
  return Math.max(
    P.managedInstances.minimumInstances,
    Math.ceil(vcpus / perInstance),
    Math.ceil(memoryGb / (perInstance * 4)),
  );
}

export function monthly(cost: OptionCost, turns: number, measured: Measured) {
  let fixed = sum(cost.fixed);
  if (cost.option === 'Managed Instances') {
    const instances = managedInstancesNeeded(turns, measured, cost.durationMs);
    const extra = instances - P.managedInstances.minimumInstances;
    fixed +=
      extra *
      P.managedInstances.instancePerHour *
      (1 + P.managedInstances.managementFeeRate) *
      P.hoursPerMonth;
  }
  const infrastructure = fixed + (turns / 1000) * sum(cost.perThousand);
  return { infrastructure, total: infrastructure + (turns / 1000) * cost.modelPerThousand };
}

const usd = (v: number) =>
  v >= 100 ? `$${Math.round(v).toLocaleString('en-US')}` : `$${v.toFixed(v >= 1 ? 2 : 4)}`;

export function costReport(turn: Turn, measured: Measured, levels: number[]): string {
  const costs = OPTIONS.map((o) => optionCost(o, turn, measured));
  const lines: string[] = [
    `Turn: ${turn.inputTokens} input and ${turn.outputTokens} output tokens (Claude Haiku 4.5), model first token ${turn.modelFirstTokenMs} ms and ${turn.modelMsPerToken} ms per token, stream function ${turn.streamMemoryGb * 1024} MB arm64, ${turn.turnsPerSession} turns per conversation, RAG off (a knowledge base's vector store is priced apart).`,
    `Measured (${measured.source}): our overhead ${measured.overheadMs} ms p50 (cache off ${measured.cacheOffOverheadMs} ms), handler CPU ${measured.cpuMsPerTurn} ms per turn, ${measured.logBytesPerTurn} log bytes per turn, ${measured.heapKiBPerStream} KiB heap per open stream.`,
    `Prices: ${P.region} list prices (bench/aws-prices.ts, checked ${P.checked}), no free tier.`,
    '',
    `| item | ${OPTIONS.join(' | ')} |`,
    `|---|${OPTIONS.map(() => '---:').join('|')}|`,
  ];
  const row = (item: string, values: string[]) => lines.push(`| ${item} | ${values.join(' | ')} |`);
  row(
    '**fixed per month**',
    costs.map((c) => `**${usd(sum(c.fixed))}**`),
  );
  const items = [...new Set(costs.flatMap((c) => c.perThousand.map((l) => l.item)))];
  for (const item of items) {
    row(
      `${item}, per 1,000 turns`,
      costs.map((c) => {
        const line = c.perThousand.find((l) => l.item === item);
        return line ? usd(line.usd) : '–';
      }),
    );
  }
  row(
    '**infrastructure per 1,000 turns**',
    costs.map((c) => `**${usd(sum(c.perThousand))}**`),
  );
  row(
    'model tokens per 1,000 turns',
    costs.map((c) => usd(c.modelPerThousand)),
  );
  row(
    'billed stream duration per turn',
    costs.map((c) => (c.option === 'Managed Instances' ? 'instances' : `${c.durationMs} ms`)),
  );
  lines.push(
    '',
    `| turns per month | ${OPTIONS.join(' | ')} | cheapest (infrastructure) |`,
    `|---:|${OPTIONS.map(() => '---:').join('|')}|---|`,
  );
  for (const turns of levels) {
    const totals = costs.map((c) => monthly(c, turns, measured));
    const best = totals.reduce(
      (b, t, i) => (t.infrastructure < (totals[b]?.infrastructure ?? Infinity) ? i : b),
      0,
    );
    lines.push(
      `| ${turns.toLocaleString('en-US')} | ${totals.map((t) => `${usd(t.infrastructure)} (+ model ${usd(t.total - t.infrastructure)})`).join(' | ')} | ${OPTIONS[best]} |`,
    );
  }
  lines.push('', ...wins(costs, measured));
  const long = measured.longConversation;
  if (long) {
    const m = P.bedrockHaiku45;
    const input = long.promptTokens - long.cacheRead - long.cacheWrite;
    const cached =
      (input * m.inputPerMillion +
        long.cacheRead * m.cacheReadPerMillion +
        long.cacheWrite * m.cacheWritePerMillion +
        turn.outputTokens * m.outputPerMillion) /
      1e3;
    const plain = (long.promptTokens * m.inputPerMillion + turn.outputTokens * m.outputPerMillion) / 1e3;
    lines.push(
      `- **Prompt caching** in a long conversation (the benchmark's: ${long.promptTokens.toLocaleString('en-US')} prompt tokens a turn, ${long.cacheRead.toLocaleString('en-US')} read from the cache and ${long.cacheWrite.toLocaleString('en-US')} written): model cost per 1,000 turns ${usd(cached)} instead of ${usd(plain)}, and ${long.savedMs} ms sooner to the first token (p50).`,
    );
  }
  return lines.join('\n');
}

/** Where each option wins: the traffic at which one option's monthly infrastructure cost crosses another's. */
function wins(costs: OptionCost[], measured: Measured): string[] {
  const find = (o: OptionName) => costs.find((c) => c.option === o) as OptionCost;
  const crossing = (a: OptionCost, b: OptionCost) => {
    // Smallest traffic (by 1 % steps from 1,000 turns) at which a becomes cheaper than b.
    for (let turns = 1000; turns < 1e10; turns *= 1.01) {
      if (monthly(a, turns, measured).infrastructure < monthly(b, turns, measured).infrastructure)
        return Math.round(turns);
    }
    return undefined;
  };
  // Two significant figures, and the average rate it means.
  const fmt = (t: number | undefined) => {
    const rounded = Number((t ?? 0).toPrecision(2));
    return `about ${rounded.toLocaleString('en-US')} turns a month (${(rounded / P.secondsPerMonth).toFixed(1)} a second on average)`;
  };
  const natVsDefault = crossing(find('default'), find('NAT gateway'));
  const miVsDefault = crossing(find('Managed Instances'), find('default'));
  const miVsOff = crossing(find('Managed Instances'), find('cache off'));
  const offGap = find('cache off').durationMs - find('default').durationMs;
  return [
    `- **cache off** costs the least in dollars${miVsOff ? ` up to ${fmt(miVsOff)}` : ' at every level'}: no endpoints, no Valkey, and the DynamoDB reads it does instead cost cents. What it costs is latency (${offGap} ms more per turn here, measured) and features that need a shared store: a stop or a resume across environments, per-user limits across environments. For dev and test stages.`,
    natVsDefault
      ? `- **NAT gateway** costs less than the default endpoints until ${fmt(natVsDefault)}, where the endpoints' lower per-GB price wins; endpoints also keep traffic off the internet.`
      : '- **NAT gateway** costs less than the default endpoints at every level here; endpoints keep traffic off the internet.',
    miVsDefault
      ? `- **Managed Instances** beat on-demand Lambda from ${fmt(miVsDefault)}: on demand bills every streaming second of a 1 GB function, while one instance serves many streams (Node.js takes 64 concurrent invocations per environment by default). Below that, the three-instance minimum fleet is the largest line of the bill.`
      : '- **Managed Instances** never beat on-demand Lambda here: the minimum fleet costs more than the streaming seconds it saves.',
    `- At every level the model's tokens dominate: ${usd(find('default').modelPerThousand)} per 1,000 turns against ${usd(sum(find('default').perThousand))} of infrastructure.`,
  ];
}

async function main() {
  const { values } = parseArgs({
    options: {
      from: { type: 'string', default: join(import.meta.dirname, '..', 'results', 'latest.json') },
      turns: { type: 'string', default: '10000,100000,1000000,10000000' },
      'input-tokens': { type: 'string' },
      'output-tokens': { type: 'string' },
      'memory-mb': { type: 'string' },
    },
  });
  const turn: Turn = {
    ...DEFAULT_TURN,
    ...(values['input-tokens'] ? { inputTokens: Number(values['input-tokens']) } : {}),
    ...(values['output-tokens'] ? { outputTokens: Number(values['output-tokens']) } : {}),
    ...(values['memory-mb'] ? { streamMemoryGb: Number(values['memory-mb']) / 1024 } : {}),
  };
  const levels = values.turns.split(',').map(Number);
  console.log(`# Cost per option\n\n${costReport(turn, measuredFrom(values.from), levels)}`);
}

if (import.meta.main) await main();
