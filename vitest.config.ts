import { configDefaults, defineConfig } from 'vitest/config';

// `npm test` runs the `unit` and `integration` projects: what every change needs, within a minute on two
// cores. `npm run test:all` (CI) adds the projects that exercise the whole system at length: CDK synths,
// the page in Chromium, the adversarial suite and the load tests (the benchmark's smoke run, the consumer
// under 1,000 messages).
//
// Integration tests start the local stack, a Redis or an emulator: seconds each. The rest are unit tests
// (`npm run test:unit`), in-process and quick. New files that start the stack or a Redis belong in
// `*.integration.test.ts`.
const INTEGRATION = ['test/**/*.integration.test.ts', 'test/bench/**/*.test.ts', 'test/events.test.ts'];
// The chat page in Chromium against the local stack: the page is built once for all of them.
const BROWSER = ['test/web/**/*.integration.test.ts'];
// Hostile users against the local stack on the production-shaped cache (also `npm run test:attack`).
const ATTACK = ['test/attack/**/*.test.ts'];
// Load: `npm run bench --quick` end to end (every part of the report checked), the consumer under 1,000 messages.
const LOAD = ['test/bench/bench-smoke.test.ts', 'test/functions/persist/persist-load.integration.test.ts'];
// CDK synths: the first in a process warms aws-cdk-lib up (~8 s of CPU), the next take ~1 s. These files
// share one process and its loaded modules (each synth builds its own App, so no state is shared).
const INFRA = ['test/infra/**/*.test.ts'];
// Cluster-mode Redis nodes started ahead of the files that start caches (a new node serves nothing for 2 s).
const NODE_POOL = 'test/support/redis-node-pool.global.ts';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default on this 2-core machine is one worker: the files ran one after another (101 s). Most
    // of them wait on sockets, timers and child processes, so four at once keep both cores busy (~35 s).
    maxWorkers: 4,
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          // In-process tests that restore what they change: one process per worker runs many files and
          // loads the modules they share once (the project's CPU 24 s -> 14 s; the test:unit files pass in any order).
          isolate: false,
          exclude: [...configDefaults.exclude, ...INTEGRATION, ...ATTACK, ...INFRA],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: INTEGRATION,
          globalSetup: [NODE_POOL],
          exclude: [...configDefaults.exclude, ...BROWSER, ...ATTACK, ...LOAD],
        },
      },
      { extends: true, test: { name: 'infra', include: INFRA, isolate: false } },
      {
        extends: true,
        test: {
          name: 'browser',
          include: BROWSER,
          globalSetup: ['test/support/page-build.global.ts', NODE_POOL],
        },
      },
      { extends: true, test: { name: 'attack', include: ATTACK, globalSetup: [NODE_POOL] } },
      { extends: true, test: { name: 'load', include: LOAD, globalSetup: [NODE_POOL] } },
    ],
  },
});
