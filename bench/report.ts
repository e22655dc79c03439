import type { Summary } from './stats.ts';

export interface DesignResult {
  design: 'ours' | 'baseline' | 'limit' | 'ours, padding on' | 'ours, padding off';
  n: number;
  errors: number;
  firstByte: Summary;
  firstToken: Summary;
  overhead: Summary;
  total: Summary;
  serverFirstByte: Summary;
  /** From the request reaching the Function URL emulator to the first body byte leaving it. */
  emulatorFirstByte: Summary;
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
  beyondLimit?: Record<'ours' | 'baseline', { p50: number; p99: number }>;
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const cell = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99} / ${s.max}`;

export function markdownTable(scenarios: ScenarioResult[]): string {
  const lines = [
    '| profile | scenario | design | n | first byte at the emulator ms (p50 / p95 / p99 / max) | first byte, client | first token, client | server overhead | overhead beyond the limit (p50 / p99) | total | baseline ÷ ours (overhead p50, first token p50) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of scenarios) {
    s.results.forEach((r, i) => {
      const ratio = i === 0 && s.ratio ? `${s.ratio.overhead}×, ${s.ratio.firstToken}×` : '';
      const beyond = s.beyondLimit?.[r.design as 'ours' | 'baseline'];
      lines.push(
        `| ${s.profile} | ${s.title} | ${r.design} | ${r.n}${r.errors ? ` (${r.errors} errors)` : ''} | ${cell(r.emulatorFirstByte)} | ${cell(r.firstByte)} | ${cell(r.firstToken)} | ${cell(r.overhead)} | ${beyond ? `${beyond.p50} / ${beyond.p99}` : ''} | ${cell(r.total)} | ${ratio} |`,
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
