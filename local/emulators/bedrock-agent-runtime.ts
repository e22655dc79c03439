import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import MiniSearch from 'minisearch';
import { type ListeningServer, listenH2cAndHttp1, readJson, sendAwsError, sleep } from './h2c-server.ts';

export interface KnowledgeBaseOptions {
  port?: number;
  directory: string;
  knowledgeBaseId?: string;
  retrieveDelayMs?: number;
}

interface Chunk {
  id: string;
  title: string;
  text: string;
  uri: string;
}

export interface AgentRuntimeEmulator extends ListeningServer {
  knowledgeBaseId: string;
  options: { retrieveDelayMs: number };
  retrieveCount: number;
  failNext(times?: number): void;
}

/** Splits each markdown document into paragraph chunks that keep the document's title. */
async function loadChunks(directory: string): Promise<Chunk[]> {
  const files = (await readdir(directory)).filter((f) => f.endsWith('.md')).sort();
  const chunks: Chunk[] = [];
  for (const file of files) {
    const markdown = await readFile(join(directory, file), 'utf8');
    const title = /^#\s+(.+)$/m.exec(markdown)?.[1]?.trim() ?? basename(file, '.md');
    const paragraphs = markdown
      .replace(/^#.*$/gm, '')
      .split(/\n\s*\n/)
      .map((p) => p.trim())
      .filter(Boolean);
    paragraphs.forEach((text, index) => {
      chunks.push({
        id: `${basename(file, '.md')}#${index}`,
        title,
        text,
        uri: `s3://local-knowledge-base/${file}`,
      });
    });
  }
  return chunks;
}

/** Bedrock Agent Runtime on localhost: `Retrieve` ranked by BM25 over the local knowledge base. */
export async function startAgentRuntime(options: KnowledgeBaseOptions): Promise<AgentRuntimeEmulator> {
  const knowledgeBaseId = options.knowledgeBaseId ?? 'LOCALKB001';
  const chunks = await loadChunks(options.directory);
  const index = new MiniSearch<Chunk>({
    fields: ['title', 'text'],
    storeFields: ['title', 'text', 'uri'],
    searchOptions: { boost: { title: 2 }, fuzzy: 0.15, prefix: true },
  });
  index.addAll(chunks);
  const settings = { retrieveDelayMs: options.retrieveDelayMs ?? 0 };
  let failures = 0;
  let retrieveCount = 0;

  const server = await listenH2cAndHttp1(async (req, res) => {
    const match = /^\/knowledgebases\/([^/]+)\/retrieve$/.exec(req.url?.split('?')[0] ?? '');
    if (req.method !== 'POST' || !match?.[1]) {
      sendAwsError(res, 404, 'UnknownOperationException', 'Unknown operation');
      return;
    }
    const body = (await readJson(req).catch(() => undefined)) as
      | {
          retrievalQuery?: { text?: string };
          retrievalConfiguration?: { vectorSearchConfiguration?: { numberOfResults?: number } };
        }
      | undefined;
    retrieveCount++;
    await sleep(settings.retrieveDelayMs);
    if (failures > 0) {
      failures--;
      sendAwsError(res, 503, 'ServiceUnavailableException', 'The knowledge base is unavailable.');
      return;
    }
    if (decodeURIComponent(match[1]) !== knowledgeBaseId) {
      sendAwsError(res, 404, 'ResourceNotFoundException', `Knowledge base ${match[1]} not found`);
      return;
    }
    const text = body?.retrievalQuery?.text;
    if (!text) {
      sendAwsError(res, 400, 'ValidationException', 'retrievalQuery.text is required');
      return;
    }
    const limit = body.retrievalConfiguration?.vectorSearchConfiguration?.numberOfResults ?? 5;
    const hits = index.search(text).slice(0, limit);
    const top = hits[0]?.score ?? 1;
    const retrievalResults = hits.map((hit) => ({
      content: { type: 'TEXT', text: hit.text as string },
      location: { type: 'S3', s3Location: { uri: hit.uri as string } },
      // Bedrock scores are relevance in [0, 1]; BM25 is unbounded, so scale by the best hit.
      score: Number(((hit.score / top) * 0.9).toFixed(4)),
      metadata: {
        'x-amz-bedrock-kb-source-uri': hit.uri as string,
        'x-amz-bedrock-kb-chunk-id': String(hit.id),
        title: hit.title as string,
      },
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ retrievalResults }));
  }, options.port);

  return {
    ...server,
    knowledgeBaseId,
    options: settings,
    get retrieveCount() {
      return retrieveCount;
    },
    failNext(times = 1) {
      failures += times;
    },
  };
}
