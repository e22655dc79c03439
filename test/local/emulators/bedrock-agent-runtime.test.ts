import { join } from 'node:path';
import { BedrockAgentRuntimeClient, RetrieveCommand } from '@aws-sdk/client-bedrock-agent-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentRuntimeEmulator,
  startAgentRuntime,
} from '../../../local/emulators/bedrock-agent-runtime.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';

let emulator: AgentRuntimeEmulator;
let client: BedrockAgentRuntimeClient;

beforeAll(async () => {
  emulator = await startAgentRuntime({
    directory: join(import.meta.dirname, '../../../local/knowledge-base'),
  });
  client = new BedrockAgentRuntimeClient(localClientConfig(emulator.url, 1));
});
afterAll(async () => {
  client.destroy();
  await emulator.close();
});

const retrieve = (text: string, numberOfResults = 3, knowledgeBaseId = emulator.knowledgeBaseId) =>
  client.send(
    new RetrieveCommand({
      knowledgeBaseId,
      retrievalQuery: { text },
      retrievalConfiguration: { vectorSearchConfiguration: { numberOfResults } },
    }),
  );

describe('Bedrock Agent Runtime emulator: Retrieve over the local knowledge base', () => {
  it.each([
    ['What is a Roth IRA?', 'roth-ira.md'],
    ['How much should I keep in an emergency fund?', 'emergency-fund.md'],
    ['Should I pay off the highest interest debt first?', 'debt-avalanche-snowball.md'],
    ['How does an employer match work in a 401(k)?', '401k.md'],
    ['What raises my credit score?', 'credit-score.md'],
    ['What is the rule of 72?', 'compound-interest.md'],
    // Stopwords carry no topic: these once ranked by "what", "is", "how", "does" (Roth IRA, 401(k)).
    ['What is an HSA?', 'hsa.md'],
    ['How does a mortgage work?', 'mortgage-basics.md'],
    ['Compare a Roth IRA and a traditional IRA in a table', 'traditional-ira.md'],
  ])('ranks the right document first for %s', async (question, file) => {
    const { retrievalResults = [] } = await retrieve(question);
    expect(retrievalResults[0]?.location?.s3Location?.uri).toBe(`s3://local-knowledge-base/${file}`);
  });

  it('scores a question of stopwords only as far from everything, and matches whole words only', async () => {
    // As vector search: k results whatever the question, the far ones scored far under the page floor.
    const { retrievalResults: far = [] } = await retrieve('How big should it be?');
    expect(far).toHaveLength(3);
    for (const result of far) expect(result.score).toBeLessThan(0.1);
    const { retrievalResults = [] } = await retrieve('What is an IRA?', 10);
    expect(retrievalResults.length).toBeGreaterThan(0);
    for (const result of retrievalResults.filter((r) => (r.score ?? 0) > 0.1)) {
      expect(`${result.metadata?.title} ${result.content?.text}`).toMatch(/\bIRAs?\b/i);
    }
  });

  it('scores relevance absolutely: a passage sharing one word of a longer question scores under the page floor', async () => {
    // The page hides passages scored under 0.4 (web/src/Message.tsx RELEVANCE_FLOOR).
    const { retrievalResults = [] } = await retrieve('What is the rule of 72?', 5);
    const byFile = (file: string) =>
      retrievalResults.filter((r) => r.location?.s3Location?.uri?.endsWith(file)).map((r) => r.score ?? 0);
    expect(Math.max(...byFile('compound-interest.md'))).toBeGreaterThan(0.6);
    const weak = byFile('budgeting-50-30-20.md');
    expect(weak.length).toBeGreaterThan(0);
    expect(Math.max(...weak)).toBeLessThan(0.4);
  });

  it('answers with the real response shape and honours numberOfResults', async () => {
    const { retrievalResults = [] } = await retrieve('retirement account taxes', 2);
    expect(retrievalResults).toHaveLength(2);
    for (const result of retrievalResults) {
      expect(result.content?.text?.length).toBeGreaterThan(20);
      expect(result.location?.type).toBe('S3');
      expect(result.score).toBeGreaterThan(0);
      expect(result.score).toBeLessThanOrEqual(1);
      expect(result.metadata?.['x-amz-bedrock-kb-source-uri']).toBe(result.location?.s3Location?.uri);
    }
    const [first, second] = retrievalResults;
    expect(first?.score).toBeGreaterThanOrEqual(second?.score ?? 0);
  });

  it('answers ResourceNotFoundException for an unknown knowledge base', async () => {
    await expect(retrieve('anything', 1, 'NOSUCHKB')).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
  });

  it('can be told to fail', async () => {
    emulator.failNext();
    await expect(retrieve('Roth IRA')).rejects.toMatchObject({ $metadata: { httpStatusCode: 503 } });
  });

  it('serves the documents under documentsUrl (the local SOURCE_BASE_URL), and nothing outside them', async () => {
    const hsa = await fetch(`${emulator.documentsUrl}hsa.md`);
    expect(hsa.status).toBe(200);
    expect(hsa.headers.get('content-type')).toMatch(/^text\/plain/);
    await expect(hsa.text()).resolves.toMatch(/^# /);
    expect((await fetch(`${emulator.documentsUrl}missing.md`)).status).toBe(404);
    expect((await fetch(`${emulator.documentsUrl}..%2Fpackage.json`)).status).toBe(404);
  });
});
