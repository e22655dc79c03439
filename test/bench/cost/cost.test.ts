import { describe, expect, it } from 'vitest';
import { AWS_PRICES } from '../../../bench/cost/aws-prices.ts';
import {
  costReport,
  DEFAULT_TURN,
  type Measured,
  managedInstancesNeeded,
  monthly,
  OPTIONS,
  optionCost,
} from '../../../bench/cost/cost.ts';

const measured: Measured = {
  source: 'test',
  overheadMs: 10,
  cacheOffOverheadMs: 30,
  cpuMsPerTurn: 10,
  logBytesPerTurn: 2000,
  heapKiBPerStream: 100,
};
const fixed = (option: (typeof OPTIONS)[number]) =>
  optionCost(option, DEFAULT_TURN, measured).fixed.reduce((sum, l) => sum + l.usd, 0);

describe('npm run cost: the cost model', () => {
  it("prices the default stack's fixed month as the README lists it (endpoints, Valkey minimum, metrics, alarms)", () => {
    // 3 endpoints × 2 AZs × $0.01 × 730 h = $43.80; 0.1 GB × $0.0837 × 730 h = $6.11; 24 × $0.30; $3; 24 × $0.10; $1.
    expect(fixed('default')).toBeCloseTo(43.8 + 6.11 + 7.2 + 3 + 2.4 + 1 + 0.33, 1);
    expect(fixed('NAT gateway')).toBeCloseTo(fixed('default') - 43.8 + 32.85, 1);
    expect(fixed('cache off')).toBeLessThan(15);
    // Three m7g.large at $0.0816/h plus the 15 % fee, and a Logs endpoint in 2 AZs.
    expect(fixed('Managed Instances') - fixed('default')).toBeCloseTo(3 * 0.0816 * 1.15 * 730 + 14.6, 0);
  });

  it('bills on-demand Lambda for the whole stream: the model streaming the answer plus our overhead', () => {
    const cost = optionCost('default', DEFAULT_TURN, measured);
    expect(cost.durationMs).toBe(350 + 300 * 10 + 10 + 20);
    const duration = cost.perThousand.find((l) => l.item.startsWith('Lambda duration'))?.usd ?? 0;
    expect(duration).toBeCloseTo(1000 * (3.38 * 1 + 0.06 * 0.5) * AWS_PRICES.lambda.armPerGbSecond, 5);
    // Managed Instances bill no stream duration, only the consumer's.
    const mi = optionCost('Managed Instances', DEFAULT_TURN, measured);
    expect(mi.perThousand.find((l) => l.item.startsWith('Lambda duration'))?.usd).toBeLessThan(duration / 50);
  });

  it('sizes Managed Instances from the measured CPU per turn, never below the three-instance minimum', () => {
    expect(managedInstancesNeeded(1000, measured, 3380)).toBe(3);
    const busy = managedInstancesNeeded(1e9, measured, 3380);
    expect(busy).toBeGreaterThan(3);
    expect(managedInstancesNeeded(1e9, { ...measured, cpuMsPerTurn: 20 }, 3380)).toBeGreaterThan(busy);
  });

  it('prices the model tokens of the stated turn (Claude Haiku 4.5: $1 in, $5 out per million)', () => {
    expect(optionCost('default', DEFAULT_TURN, measured).modelPerThousand).toBeCloseTo(1.5 + 1.5, 5);
    const month = monthly(optionCost('default', DEFAULT_TURN, measured), 1_000_000, measured);
    expect(month.total - month.infrastructure).toBeCloseTo(3000, 0);
  });

  it('prints one column per option and where each wins', () => {
    const report = costReport(
      DEFAULT_TURN,
      {
        ...measured,
        longConversation: { promptTokens: 8000, cacheRead: 7800, cacheWrite: 150, savedMs: 390 },
      },
      [10_000, 1_000_000],
    );
    for (const option of OPTIONS) expect(report).toContain(option);
    expect(report).toContain('| 1,000,000 |');
    expect(report).toMatch(/Managed Instances\*\* beat on-demand Lambda from about [\d,]+ turns a month/);
    expect(report).toContain('Prompt caching');
  });
});
