import type { EmulatorOptions } from './emulator-process.ts';
import type { EnvironmentOptions } from './environment-process.ts';

/**
 * The benchmark's child processes, one entry: `role: 'emulators'` runs the emulated AWS services,
 * `role: 'environment'` one design's handler as one execution environment. Each loads only its own
 * modules, so an environment's CPU time and memory are the handler's.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as
  | ({ role: 'emulators' } & EmulatorOptions)
  | EnvironmentOptions;
if (options.role === 'environment') {
  const { runEnvironment } = await import('./environment-process.ts');
  await runEnvironment(options);
} else {
  const { runEmulators } = await import('./emulator-process.ts');
  await runEmulators(options);
}
