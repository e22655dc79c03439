import type { EnvironmentOptions } from './environment-process.ts';
import type { Latencies } from './profiles.ts';

/**
 * The benchmark's child processes, one entry: `role: 'emulators'` runs the emulated AWS services,
 * `role: 'environment'` one design's handler as one execution environment. Each loads only its own
 * modules, so an environment's CPU time and memory are the handler's.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as
  | { role: 'emulators'; latencies: Latencies }
  | EnvironmentOptions;
if (options.role === 'environment') {
  const { runEnvironment } = await import('./environment-process.ts');
  await runEnvironment(options);
} else {
  const { runEmulators } = await import('./emulator-process.ts');
  await runEmulators(options);
}
