import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// Runs `npm run bench -- --quick --profile zero --cold-start-runs 1` once (its own local stacks) and checks
// the report is complete. Never timings: with nothing injected (the zero profile) and one cold start, the
// run waits on no latency of its own.
describe('npm run bench -- --quick --profile zero --cold-start-runs 1', () => {
  it('prints the full report and writes the JSON and the chart', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'));
    const root = join(import.meta.dirname, '..', '..');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'bench/run.ts'), '--quick', '--profile', 'zero', '--cold-start-runs', '1', '--out', out],
      {
        cwd: root,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' },
      },
    );
    for (const heading of ['| profile | scenario | design |', 'Cold start:', 'Targets:'])
      expect(stdout).toContain(heading);
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as {
      scenarios: Array<{
        id: string;
        results: Array<{ design: string; n: number; errors: number; firstToken: { p50: number } }>;
      }>;
      coldStart: { bundles: Record<string, number>; streamInitMs: number[] };
      targets: Array<{ target: string; met: boolean; value: unknown }>;
      machine: { cpus: number };
      params: { profiles: Array<{ name: string; latencies: Record<string, number> }> };
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
      const designs = scenario.results.map((r) => r.design);
      expect(designs).toEqual(
        scenario.id === 'hold' ? ['ours, padding on', 'ours, padding off'] : ['ours', 'baseline', 'limit'],
      );
      for (const result of scenario.results) {
        expect(result.errors).toBe(0);
        expect(result.n).toBeGreaterThan(0);
        expect(Number.isFinite(result.firstToken.p50)).toBe(true);
        expect(stdout).toContain(`| ${result.design} |`);
      }
    }
    // One bundle per function built from this repo; the deploy-time ones come and go with the stack.
    expect(Object.keys(report.coldStart.bundles)).toEqual(expect.arrayContaining(['chat-stream', 'persist']));
    for (const size of Object.values(report.coldStart.bundles)) expect(size).toBeGreaterThan(0);
    expect(report.coldStart.streamInitMs.length).toBeGreaterThan(0);
    expect(report.targets).toHaveLength(8);
    for (const target of report.targets) expect(target.value).toBeDefined();
    expect(report.machine.cpus).toBeGreaterThan(0);
    const svg = readFileSync(join(out, 'latest-first-token.svg'), 'utf8');
    expect(svg.match(/<polyline/g)?.length).toBe(4 * 3 + 2);
    // Titles are escaped: the hold scenario's title has a '<'.
    expect(svg).toContain('holds writes &lt; ');
    expect(svg).not.toContain('holds writes < ');
  }, 180_000);
});
