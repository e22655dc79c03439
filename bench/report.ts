import { FUNCTION_NODE_OPTIONS } from '../lib/bundling/node-options.ts';
import type { ColdPath, ColdStart } from './cold-start.ts';
import type { ConcurrencyRow } from './concurrency.ts';
import type { IdleFollowers } from './followers.ts';
import type { LongConversationResult } from './long-conversation.ts';
import type { PersistLag } from './persist-lag.ts';
import type { Summary } from './stats.ts';

export type DesignName =
  | 'ours'
  | 'ours, cache off'
  | 'baseline'
  | 'limit'
  | 'ours, padding on'
  | 'ours, padding off';

export interface DesignResult {
  design: DesignName;
  n: number;
  errors: number;
  firstByte: Summary;
  firstToken: Summary;
  overhead: Summary;
  total: Summary;
  serverFirstByte: Summary;
  /** From the request reaching the Function URL emulator to the first body byte leaving it. */
  emulatorFirstByte: Summary;
  /** CPU time of the design's environment process per turn, ms. */
  cpuMsPerTurn: number;
  /** Log and EMF bytes the environment wrote per turn (CloudWatch Logs ingestion). */
  logBytesPerTurn: number;
  /** Turns whose history came from the cache: proof that the design signed in and used it. */
  historyCacheHits: number;
  firstTokens: number[];
}

export interface ScenarioResult {
  profile: string;
  id: string;
  title: string;
  results: DesignResult[];
  /** baseline / ours, p50 */
  ratio?: { overhead: number; firstToken: number };
  /** Overhead above the limit design (a bare model call), ms. */
  beyondLimit?: Partial<Record<DesignName, { p50: number; p99: number }>>;
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const cell = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99} / ${s.max}`;

export function markdownTable(scenarios: ScenarioResult[]): string {
  const lines = [
    '| profile | scenario | design | n | first byte at the emulator ms (p50 / p95 / p99 / max) | first byte, client | first token, client | server overhead | overhead beyond the limit (p50 / p99) | total | CPU ms per turn | baseline ÷ ours (overhead p50, first token p50) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of scenarios) {
    s.results.forEach((r, i) => {
      const ratio = i === 0 && s.ratio ? `${s.ratio.overhead}×, ${s.ratio.firstToken}×` : '';
      const beyond = s.beyondLimit?.[r.design];
      lines.push(
        `| ${s.profile} | ${s.title} | ${r.design} | ${r.n}${r.errors ? ` (${r.errors} errors)` : ''} | ${cell(r.emulatorFirstByte)} | ${cell(r.firstByte)} | ${cell(r.firstToken)} | ${cell(r.overhead)} | ${beyond ? `${beyond.p50} / ${beyond.p99}` : ''} | ${cell(r.total)} | ${r.cpuMsPerTurn} | ${ratio} |`,
      );
    });
  }
  return lines.join('\n');
}

/** First-token CDFs per scenario, ours beside the baseline, as a small self-contained SVG. */
export function firstTokenChart(scenarios: ScenarioResult[]): string {
  const panels = scenarios.filter((s) => s.results.some((r) => r.firstTokens.length > 0));
  const width = 420;
  const height = 240;
  const columns = 2;
  const rows = Math.ceil(panels.length / columns);
  const colors: Record<string, string> = {
    ours: '#1f77b4',
    baseline: '#d62728',
    limit: '#7f7f7f',
    'ours, cache off': '#9467bd',
    'ours, padding on': '#2ca02c',
    'ours, padding off': '#ff7f0e',
  };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width * columns}" height="${height * rows}" font-family="sans-serif" font-size="11">`,
    '<title>Time to first token, cumulative distribution per scenario and design</title>',
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  panels.forEach((scenario, index) => {
    const x0 = (index % columns) * width + 50;
    const y0 = Math.floor(index / columns) * height + 30;
    const w = width - 80;
    const h = height - 70;
    const all = scenario.results.flatMap((r) => r.firstTokens);
    const max = Math.max(...all, 1) * 1.05;
    parts.push(
      `<text x="${x0}" y="${y0 - 10}" font-weight="bold">${escapeXml(`${scenario.profile}: ${scenario.title} — first token CDF`)}</text>`,
    );
    parts.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
    for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
      parts.push(
        `<text x="${x0 + tick * w}" y="${y0 + h + 14}" text-anchor="middle">${Math.round(tick * max)}</text>`,
      );
      parts.push(`<text x="${x0 - 5}" y="${y0 + h - tick * h + 4}" text-anchor="end">${tick * 100}%</text>`);
    }
    parts.push(`<text x="${x0 + w / 2}" y="${y0 + h + 28}" text-anchor="middle">ms</text>`);
    scenario.results.forEach((result, i) => {
      const sorted = [...result.firstTokens].sort((a, b) => a - b);
      const points = sorted.map(
        (v, k) => `${(x0 + (v / max) * w).toFixed(1)},${(y0 + h - ((k + 1) / sorted.length) * h).toFixed(1)}`,
      );
      const color = colors[result.design] ?? '#333';
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`);
      parts.push(
        `<text x="${x0 + w - 5}" y="${y0 + h - 10 - i * 14}" text-anchor="end" fill="${color}">${escapeXml(`${result.design} (p50 ${result.firstToken.p50} ms)`)}</text>`,
      );
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const pair = (s: Summary) => `${s.p50} / ${s.p99}`;

/** One row per concurrency level and design: what one execution environment does under many streams. */
export function concurrencyTable(rows: ConcurrencyRow[]): string {
  const lines = [
    '| streams | design | n | first byte at the Function URL p50 / p99 | first byte, client p50 / p99 | first-token overhead p50 / p99 | beyond the bare model call p50 / p99 | inter-token gap p99: handler / model / added | client gap p99 (added) | CPU ms per turn | CPU ms per token | event loop busy | event loop delay p99 / max | live heap KiB per open stream | cache commands / read events per second (commands, KiB sent per turn) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.concurrency} | ${r.design === 'limit' ? 'bare model call' : 'ours'} | ${r.n}${r.errors ? ` (${r.errors} errors)` : ''} | ${pair(r.firstByte)} | ${pair(r.firstByteClient)} | ${pair(r.overhead)} | ${r.beyondLimit ? `${r.beyondLimit.p50} / ${r.beyondLimit.p99}` : ''} | ${r.gaps.handler.p99} / ${r.gaps.model.p99} / ${r.gaps.addedP99} | ${r.gaps.client.p99} (${r.gaps.addedClientP99}) | ${r.cpuMsPerTurn} | ${r.cpuMsPerToken} | ${Math.round(r.eventLoopUtilization * 100)} % | ${r.eventLoopDelay.p99} / ${r.eventLoopDelay.max} | ${r.memory ? r.memory.heapKiBPerStream : ''} | ${r.cache ? `${r.cache.commandsPerSecond} / ${r.cache.readsPerSecond} (${r.cache.commandsPerTurn}, ${r.cache.inputKiBPerTurn} KiB)` : ''} |`,
    );
  }
  return lines.join('\n');
}

export function longConversationTable(result: LongConversationResult): string {
  const lines = [
    `${result.conversations} conversations × ${result.turnsPerConversation} measured turns, each conversation opening with ${result.historyTurns} stored turns; the model reads uncached prompt tokens at ${result.prefillMsPer1kTokens} ms per 1,000.`,
    '',
    '| design | n | first token p50 / p99 | overhead beyond the flat model delay p50 / p99 | prompt tokens per turn | read from cache | written to cache | first turn on the loaded conversation, first token p50 |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of result.rows) {
    lines.push(
      `| ${r.design} | ${r.n}${r.errors ? ` (${r.errors} errors)` : ''} | ${pair(r.firstToken)} | ${pair(r.overhead)} | ${r.promptTokensPerTurn} | ${r.cacheReadTokensPerTurn} | ${r.cacheWriteTokensPerTurn} | ${r.firstTurnFirstToken.p50} |`,
    );
  }
  lines.push('', `Prompt caching saves ${result.savedP50Ms} ms of first token at p50.`);
  return lines.join('\n');
}

export function coldTable(cold: ColdStart, path: ColdPath | undefined): string {
  const sizes = Object.entries(cold.bundles)
    .map(([k, v]) => `${k} ${(v / 1024).toFixed(1)} KiB`)
    .join(', ');
  const lines = [
    `Bundles (built by ${cold.builtBy}): ${sizes}. Stream bundle import + init in a fresh process: median ${cold.streamInitMedianMs} ms over ${cold.streamInitMs.length} runs, ${cold.streamInitCpuMedianMs} ms of CPU; with the functions' NODE_OPTIONS as deployed (\`${FUNCTION_NODE_OPTIONS}\`) ${cold.streamInitDeployedMedianMs} ms (for scale: starting and ending a Node process that does nothing takes ${cold.nodeStartMedianMs} ms).`,
  ];
  if (path) {
    lines.push(
      '',
      `Cold path, ${path.runs} fresh execution environments running the built bundle (ms, p50 / p99):`,
      '',
      '| spawn to ready (Node start + import + init) | import + init | cold first byte at the Function URL | cold first byte, client | cold start + first byte | cold first-token overhead | warm first byte (same environment, next turn) | warm first-token overhead |',
      '|---|---|---|---|---|---|---|---|',
      `| ${pair(path.readyMs)} | ${pair(path.initMs)} | ${pair(path.coldFirstByte)} | ${pair(path.coldFirstByteClient)} | ${pair(path.coldStartToFirstByte)} | ${pair(path.coldFirstTokenOverhead)} | ${pair(path.warmFirstByte)} | ${pair(path.warmFirstTokenOverhead)} |`,
    );
  }
  return lines.join('\n');
}

export function followersText(f: IdleFollowers): string {
  const commands = Object.entries(f.byCommand)
    .sort((a, b) => b[1] - a[1])
    .map(([name, calls]) => `${name} ${calls}`)
    .join(', ');
  return `${f.followers} resume followers (\`GET /sessions/{id}/stream\`) of one running turn whose model has not answered yet, ${f.attached} of them answered 200 by the end; commands on the run's Redis database (MONITOR) over a ${f.idleSeconds}-s idle window${f.includesAttach ? ' that includes the attach' : ''}: ${f.commandsTurnAlone} commands with the turn alone, ${f.commandsWithFollowers} with the followers, so **${f.commandsPerFollowerPerSecond} commands per follower per second** (${commands || 'none'}).`;
}

export function persistText(p: PersistLag): string {
  return `${p.conversations} new conversations (a new user's first turn each) at concurrency ${p.concurrency} into one environment, the local consumer (SQS event-source poller + persist function) draining the queue. Lag = from a turn's last byte at the client to its question and answer both readable in DynamoDB (a watcher scans the part's own table; a pass took at most ${p.pollRoundMaxMs} ms, the lag's resolution): **p50 / p99 ${pair(p.lagMs)} ms**, max ${p.lagMs.max} ms. Burst ${p.burstMs} ms; the last conversation stored ${p.drainAfterBurstMs} ms after it ended. Failed turns ${p.failedTurns}, conversations never stored ${p.missing}.`;
}

/** First byte p99, overhead beyond the bare model call and the added inter-token gap, by concurrency. */
export function concurrencyChart(rows: ConcurrencyRow[]): string {
  const ours = rows.filter((r) => r.design === 'ours');
  const series: Array<{ name: string; color: string; values: number[] }> = [
    { name: 'first byte p99 (ms)', color: '#1f77b4', values: ours.map((r) => r.firstByte.p99) },
    {
      name: 'first-token overhead beyond the bare model call p99 (ms)',
      color: '#d62728',
      values: ours.map((r) => r.beyondLimit?.p99 ?? 0),
    },
    { name: 'added inter-token gap p99 (ms)', color: '#2ca02c', values: ours.map((r) => r.gaps.addedP99) },
    {
      name: 'CPU ms per turn ÷ bare model call',
      color: '#9467bd',
      values: ours.map((r) => {
        const limit = rows.find((l) => l.design === 'limit' && l.concurrency === r.concurrency);
        return limit ? Math.round((r.cpuMsPerTurn / limit.cpuMsPerTurn) * 100) / 100 : 0;
      }),
    },
  ];
  const width = 640;
  const height = 320;
  const x0 = 60;
  const y0 = 30;
  const w = width - 100;
  const h = height - 120;
  const levels = ours.map((r) => r.concurrency);
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter(Number.isFinite))) * 1.1;
  const x = (i: number) => x0 + (levels.length > 1 ? (i / (levels.length - 1)) * w : w / 2);
  const y = (v: number) => y0 + h - (Math.max(0, v) / max) * h;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    '<title>One execution environment under concurrent streams</title>',
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${x0}" y="${y0 - 10}" font-weight="bold">One execution environment, concurrent streams (ours)</text>`,
    `<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`,
  ];
  levels.forEach((level, i) => {
    parts.push(`<text x="${x(i)}" y="${y0 + h + 14}" text-anchor="middle">${level}</text>`);
  });
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + h + 28}" text-anchor="middle">concurrent streams</text>`);
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<text x="${x0 - 5}" y="${y0 + h - tick * h + 4}" text-anchor="end">${Math.round(tick * max * 10) / 10}</text>`,
    );
  }
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points}"/>`);
    parts.push(
      `<text x="${x0}" y="${y0 + h + 46 + k * 14}" fill="${s.color}">${escapeXml(s.name)}: ${s.values.join(', ')}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
