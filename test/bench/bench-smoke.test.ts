import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// Runs `npm run bench -- --quick --profile zero` once (its own processes: emulators, one per design) and
// checks the report is complete: every part, every design, every target. Never timings: with nothing
// injected (the zero profile) the run waits on no latency of its own, and --quick keeps each part tiny; the
// budget is a wait budget for a loaded machine, not a speed claim.
describe('npm run bench -- --quick --profile zero', () => {
  it('prints the full report and writes the JSON and the charts', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'));
    const root = join(import.meta.dirname, '..', '..');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'bench/run.ts'), '--quick', '--profile', 'zero', '--out', out],
      { cwd: root, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' } },
    );
    for (const heading of [
      '## Scenarios',
      '## One execution environment under concurrent streams',
      '## Long conversation (prompt caching)',
      '## Cold start',
      '## Idle resume followers',
      '## Persistence lag',
      '## Targets',
    ])
      expect(stdout).toContain(heading);
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as {
      scenarios: Array<{
        id: string;
        results: Array<{
          design: string;
          n: number;
          errors: number;
          firstToken: { p50: number };
          cpuMsPerTurn: number;
          historyCacheHits: number;
        }>;
      }>;
      concurrency: Array<{
        concurrency: number;
        design: string;
        errors: number;
        cpuMsPerTurn: number;
        cache?: { commandsPerTurn: number; readsPerSecond: number };
      }>;
      longConversation: {
        rows: Array<{ design: string; n: number; errors: number; cacheReadTokensPerTurn: number }>;
      };
      coldStart: {
        bundles: Record<string, number>;
        streamInitMs: number[];
        streamInitDeployedMedianMs: number;
      };
      coldPath: { runs: number; coldFirstByte: { p50: number } };
      idleFollowers: { followers: number; attached: number; byCommand: Record<string, number> };
      persistLag: { conversations: number; missing: number; failedTurns: number; lagMs: { n: number } };
      targets: Array<{ target: string; met: boolean; value: unknown }>;
      params: { cache: string; profiles: Array<{ name: string; latencies: Record<string, number> }> };
    };
    expect(report.params.profiles.map((p) => p.name)).toEqual(['zero']);
    expect(new Set(Object.values(report.params.profiles[0]?.latencies ?? {}))).toEqual(new Set([0]));
    expect(report.scenarios.map((s) => s.id)).toEqual([
      'warm-no-rag',
      'cold-no-rag',
      'rag-cold',
      'rag-hit',
      'hold',
    ]);
    for (const scenario of report.scenarios) {
      expect(scenario.results.map((r) => r.design)).toEqual(
        scenario.id === 'hold'
          ? ['ours, padding on', 'ours, padding off']
          : ['ours', 'ours, cache off', 'baseline', 'limit'],
      );
      for (const result of scenario.results) {
        expect(result.errors).toBe(0);
        expect(result.n).toBeGreaterThan(0);
        expect(Number.isFinite(result.firstToken.p50)).toBe(true);
        expect(result.cpuMsPerTurn).toBeGreaterThan(0);
        expect(stdout).toContain(`| ${result.design} |`);
      }
    }
    // The run says which cache it measured (without REDIS_URL, one shaped like ElastiCache Serverless,
    // signed in with expiring IAM-style tokens), and ours used it on every warm turn: a cache refusing
    // the sign-in would still answer, from DynamoDB, and the timings would belong to another design.
    expect(stdout).toContain(`Cache: ${report.params.cache}.`);
    expect(report.params.cache).toMatch(
      process.env.REDIS_URL
        ? /\(REDIS_URL, as given\)$/
        : /as ElastiCache Serverless serves it: cluster mode, default user off/,
    );
    const warm = report.scenarios.find((s) => s.id === 'warm-no-rag')?.results ?? [];
    const ours = warm.find((r) => r.design === 'ours');
    expect(ours?.historyCacheHits).toBe(ours?.n);
    expect(warm.find((r) => r.design === 'ours, cache off')?.historyCacheHits).toBe(0);
    expect(report.concurrency.map((r) => `${r.concurrency} ${r.design}`)).toEqual([
      '1 ours',
      '1 limit',
      '4 ours',
      '4 limit',
    ]);
    for (const row of report.concurrency) {
      expect(row.errors).toBe(0);
      expect(row.cpuMsPerTurn).toBeGreaterThan(0);
      // The cache counted the turns' commands and round trips (every turn of ours admits through it).
      if (row.design === 'ours') expect(row.cache?.commandsPerTurn).toBeGreaterThan(1);
      if (row.design === 'ours') expect(row.cache?.readsPerSecond).toBeGreaterThan(0);
    }
    const long = report.longConversation.rows;
    expect(long.map((r) => r.design)).toEqual(['prompt caching on', 'prompt caching off']);
    for (const row of long) expect(row.errors).toBe(0);
    // The emulator's prompt cache served the history prefix to the caching design only.
    expect(long[0]?.cacheReadTokensPerTurn).toBeGreaterThan(4096);
    expect(long[1]?.cacheReadTokensPerTurn).toBe(0);
    expect(report.coldStart.bundles['chat-stream']).toBeGreaterThan(0);
    expect(report.coldStart.streamInitMs.length).toBe(1);
    expect(report.coldStart.streamInitDeployedMedianMs).toBeGreaterThan(0);
    expect(report.coldPath.runs).toBe(1);
    expect(Number.isFinite(report.coldPath.coldFirstByte.p50)).toBe(true);
    // Every follower attached, and Redis counted the commands of the window.
    expect(report.idleFollowers.attached).toBe(report.idleFollowers.followers);
    expect(Object.keys(report.idleFollowers.byCommand).length).toBeGreaterThan(0);
    // Every conversation of the burst reached DynamoDB through the local consumer.
    expect(report.persistLag).toMatchObject({ missing: 0, failedTurns: 0 });
    expect(report.persistLag.lagMs.n).toBe(report.persistLag.conversations);
    expect(report.targets.map((t) => t.target)).toEqual(
      expect.arrayContaining([
        expect.stringContaining('beyond the bare model call p50'),
        expect.stringContaining('first byte p99 at the Function URL'),
        expect.stringContaining('sequential design ÷ ours'),
        expect.stringContaining('concurrent streams in one environment: first byte p99'),
        expect.stringContaining('added inter-token gap p99'),
        expect.stringContaining('CPU per turn'),
        expect.stringContaining('Redis commands per follower per second'),
        'stream bundle import + init in a fresh process, median',
        expect.stringContaining('persistence lag p99'),
      ]),
    );
    for (const target of report.targets) expect(target.value).toBeDefined();
    const svg = readFileSync(join(out, 'latest-first-token.svg'), 'utf8');
    expect(svg.match(/<polyline/g)?.length).toBe(4 * 4 + 2);
    // Titles are escaped: the hold scenario's title has a '<'.
    expect(svg).toContain('holds writes &lt; ');
    expect(readFileSync(join(out, 'latest-concurrency.svg'), 'utf8')).toContain('<polyline');
  }, 300_000);
});
