import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_USER, STATE_DIR, seedDemoProfile, startLocalStack } from './stack.ts';
import { startWebServer, type WebServer } from './web-server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '3000' },
    hold: { type: 'string', default: process.env.LOCAL_HOLD_BELOW_BYTES ?? '0' },
    'first-token-ms': { type: 'string', default: process.env.LOCAL_FIRST_TOKEN_MS ?? '250' },
    'token-ms': { type: 'string', default: process.env.LOCAL_TOKEN_MS ?? '20' },
    'retrieve-ms': { type: 'string', default: process.env.LOCAL_RETRIEVE_MS ?? '0' },
    environments: { type: 'string', default: process.env.LOCAL_ENVIRONMENTS ?? 'shared' },
    web: { type: 'boolean', default: true },
  },
  allowNegative: true,
});

/** The local users of the chat page's user switcher: two, so isolation can be seen. */
const PAGE_USERS = [DEMO_USER, 'alice'];

const started = performance.now();
const base = Number(values.port);
const webPort = base + 6;
const stack = await startLocalStack({
  ports: {
    functionUrl: base,
    bedrockRuntime: base + 1,
    agentRuntime: base + 2,
    issuer: base + 3,
    dynamodb: base + 4,
    sqs: base + 5,
  },
  holdBelowBytes: Number(values.hold),
  firstTokenDelayMs: Number(values['first-token-ms']),
  perTokenDelayMs: Number(values['token-ms']),
  retrieveDelayMs: Number(values['retrieve-ms']),
  environments: values.environments === 'isolated' ? 'isolated' : 'shared',
  // The chat page's origin (and * without the page, for any local tool).
  ...(values.web ? { allowOrigins: [`http://127.0.0.1:${webPort}`] } : {}),
});
await seedDemoProfile(stack);
const token = await stack.issuer.mint(DEMO_USER);
await mkdir(STATE_DIR, { recursive: true });
await writeFile(
  join(STATE_DIR, 'endpoints.json'),
  `${JSON.stringify({ ...stack.endpoints, tableName: stack.tableName, env: stack.env }, null, 2)}\n`,
);
let web: WebServer | undefined;
if (values.web) {
  web = await startWebServer({
    mode: 'source',
    port: webPort,
    config: async () => ({
      apiUrl: stack.url,
      auth: {
        mode: 'dev',
        users: Object.fromEntries(
          await Promise.all(PAGE_USERS.map(async (user) => [user, await stack.issuer.mint(user)])),
        ),
      },
    }),
  });
}
const readyMs = Math.round(performance.now() - started);

const curl = `curl -N ${stack.url} -H 'content-type: application/json' -H "authorization: Bearer $(npm run -s token)" -d '{"message":"What is a Roth IRA?"}'`;
console.log(`
Streaming chat backend, local stack ready in ${readyMs} ms

${web ? `  Chat page          ${web.url}   (open it in a browser; local users ${PAGE_USERS.join(', ')})\n` : ''}  Function URL       ${stack.url}   (POST, SSE)
  DynamoDB           ${stack.endpoints.dynamodb}   table ${stack.tableName}
  SQS                ${stack.endpoints.sqs}   queue ${stack.queueUrl}
  Bedrock Runtime    ${stack.endpoints.bedrockRuntime}
  Bedrock Agent RT   ${stack.endpoints.bedrockAgentRuntime}   knowledge base ${stack.knowledgeBase.knowledgeBaseId}
  OIDC issuer        ${stack.endpoints.issuer}   JWKS ${stack.endpoints.jwks}
  Redis              ${stack.redisNote}
  Environments       ${values.environments === 'isolated' ? 'isolated (a worker per concurrent request, as in Lambda)' : 'shared (one module instance)'}
  Write hold         ${Number(values.hold) > 0 ? `on, below ${values.hold} bytes (flush padding on)` : 'off'}
  Endpoints file     .local/endpoints.json

Dev token for "${DEMO_USER}" (12 h):
${token}

Try it:
${curl}

Ctrl-C stops everything.`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping the local stack…');
  await web?.close();
  await stack.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
