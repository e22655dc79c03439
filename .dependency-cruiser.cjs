// Import direction: runtime code never reaches into infrastructure, the local stack,
// the benchmark or tests; the domain core stays free of AWS, adapters and HTTP; the shared contracts import
// nothing. `npm run lint:imports` checks it; test/tooling/import-rules.test.ts proves each rule fires.
// Type-only imports count too (tsPreCompilationDeps), so a type cannot sneak a forbidden edge in.

/**
 * Packages that tie code to AWS, to a Lambda event shape or to a concrete client: adapter material. Matched
 * resolved (…node_modules/<name>/…) or, when not installed, by bare name.
 */
const AWS_AND_CLIENTS =
  '(^|node_modules/)(@aws-sdk/|@smithy/|@aws-lambda-powertools/|@middy/|(@types/aws-lambda|aws-lambda|aws-jwt-verify|ioredis)(/|$))';
const HTTP = '^(node:)?(http|https|http2)$|(^|node_modules/)undici(/|$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'functions-not-to-infra',
      comment:
        'Runtime code ships in the Lambda bundle: it never imports lib/, bin/, local/, bench/, web/ or test/.',
      severity: 'error',
      from: { path: '^functions/' },
      to: { path: '^(lib|bin|local|bench|web|test)/' },
    },
    {
      name: 'lambda-code-not-to-dev-dep',
      comment:
        'Code bundled into a Lambda (functions/, the deploy-time handlers) only uses `dependencies`: a devDependency such as aws-cdk-lib would be missing or bloat the bundle. Types are fine.',
      severity: 'error',
      from: { path: '^(functions|lib/custom-resources)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'deploy-time-handlers-stand-alone',
      comment:
        'lib/custom-resources/ holds Lambda handlers that run at deploy time: they import each other, never the CDK app around them.',
      severity: 'error',
      from: { path: '^lib/custom-resources/' },
      to: { path: '^(lib|bin|local|bench|web|test)/', pathNot: '^lib/custom-resources/' },
    },
    {
      name: 'core-not-to-aws-or-http',
      comment:
        'The domain core is plain TypeScript: no AWS SDK, Lambda types, concrete clients or HTTP modules.',
      severity: 'error',
      from: { path: '^functions/core/' },
      to: { path: [AWS_AND_CLIENTS, HTTP] },
    },
    {
      name: 'core-only-core-and-contracts',
      comment:
        'Inside functions/, the core imports only itself and the contracts: never an adapter, the edge (chat-stream) or an entry point.',
      severity: 'error',
      from: { path: '^functions/core/' },
      to: { path: '^functions/', pathNot: '^functions/(core|contracts)/' },
    },
    {
      name: 'edge-not-to-adapters',
      comment:
        'Routes and wire formats reach adapters only through the ports handed to them: the composition root (chat-stream/stream-runtime.ts) is the one edge module that names an adapter.',
      severity: 'error',
      from: { path: '^functions/chat-stream/(routes|wire)/' },
      to: { path: '^functions/adapters/' },
    },
    {
      name: 'wire-formats-stand-alone',
      comment:
        'A wire format maps turn events to its protocol: it imports the core, the contracts and the SSE writer, never a route, the router or the handler.',
      severity: 'error',
      from: { path: '^functions/chat-stream/wire/' },
      to: { path: '^functions/chat-stream/', pathNot: '^functions/chat-stream/wire/' },
    },
    {
      name: 'contracts-import-nothing',
      comment:
        'functions/contracts/ is shared by runtime and infrastructure: it imports no module and no package.',
      severity: 'error',
      from: { path: '^functions/contracts/' },
      to: {},
    },
    {
      name: 'infra-not-to-local-or-bench',
      comment:
        'The CDK app deploys what runs in AWS: it never imports the local stack, the benchmark or tests.',
      severity: 'error',
      from: { path: '^(bin|lib)/' },
      to: { path: '^(local|bench|web|test)/' },
    },
    {
      name: 'web-only-contracts',
      comment:
        'The chat page (web/) is built for the browser: of this repository it may import only functions/contracts/, never the runtime, the CDK app, the local stack, the benchmark or tests.',
      severity: 'error',
      from: { path: '^web/' },
      to: { path: '^(functions|lib|bin|local|bench|test)/', pathNot: '^functions/contracts/' },
    },
    {
      name: 'nothing-imports-web',
      comment:
        'web/ is an app of its own, built by Vite and served or deployed as files: only its own tests import it (the local page server names its Vite config by path).',
      severity: 'error',
      from: { pathNot: '^(web|test/web)/' },
      to: { path: '^web/' },
    },
    {
      name: 'no-circular',
      comment:
        'No cycles, type-only ones included: a value cycle makes init order matter, and any cycle ties modules that should split.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
