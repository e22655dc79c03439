import { join } from 'node:path';

const HERE = import.meta.dirname;
const NODE_HTTP = join(HERE, 'node-http.cjs');

/**
 * The esbuild aliases of a function's bundle, one definition for the stack (lib/functions.ts) and the
 * benchmark (bench/bundles.ts), so what the benchmark measures is what deploys: `node:http` through
 * CommonJS (why: node-http.cjs) and, unless `credentials` is `chain`, the SDK's credential chain reduced
 * to the environment (why: credentials-from-environment.ts).
 */
export function bundleAliases(credentials: 'environment' | 'chain'): Record<string, string> {
  return {
    http: NODE_HTTP,
    'node:http': NODE_HTTP,
    ...(credentials === 'environment'
      ? { '@aws-sdk/credential-provider-node': join(HERE, 'credentials-from-environment.ts') }
      : {}),
  };
}
