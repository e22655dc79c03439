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
  /** Where the documents are served (`GET <documentsUrl><file>`): the local SOURCE_BASE_URL. */
  documentsUrl: string;
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

/**
 * Words that carry no topic: a real knowledge base's embeddings ignore them, so must the local ranking
 * (without this list "What is an HSA?" ranks by "what" and "is").
 */
const STOPWORDS = new Set(
  (
    'a about above after again against all am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each few for from further had has have ' +
    'having he her here hers how i if in into is it its itself just me more most my myself no nor not now ' +
    'of off on once only or other our ours out over own same she should so some such than that the their ' +
    'theirs them then there these they this those through to too under until up very was we were what ' +
    'when where which while who whom why will with would you your yours work works ' +
    // What a question asks the model to do, not what it is about.
    'tell explain show give compare table list example code compute calculate write'
  ).split(' '),
);

/** Lower-case words, stopwords out; a term that is only stopwords leaves nothing to match. */
const processTerm = (term: string) => {
  const word = term.toLowerCase();
  return word === '' || STOPWORDS.has(word) ? null : word;
};

/**
 * BM25 is unbounded; Bedrock's relevance is in [0, 1] and absolute (a weak match scores low even when it is
 * the best there is). `score / (score + HALF)` gives 0.5 at HALF; times the share of the question's words
 * the passage holds, so a passage that shares one common word with a long question scores low.
 */
const HALF_RELEVANCE_SCORE = 4;
/** The score of a chunk that shares no word with the question. */
const FAR_SCORE = 0.05;
const relevance = (score: number, matched: number, asked: number) =>
  Number(((score / (score + HALF_RELEVANCE_SCORE)) * (asked ? Math.min(1, matched / asked) : 0)).toFixed(4));
const tokenize = MiniSearch.getDefault('tokenize') as (text: string) => string[];
const topicWords = (text: string) =>
  new Set(tokenize(text).flatMap((term) => (term ? (processTerm(term) ?? []) : []))).size;

/** Bedrock Agent Runtime on localhost: `Retrieve` ranked by BM25 over the local knowledge base. */
export async function startAgentRuntime(options: KnowledgeBaseOptions): Promise<AgentRuntimeEmulator> {
  const knowledgeBaseId = options.knowledgeBaseId ?? 'LOCALKB001';
  const chunks = await loadChunks(options.directory);
  const index = new MiniSearch<Chunk>({
    fields: ['title', 'text'],
    storeFields: ['title', 'text', 'uri'],
    processTerm,
    // Whole words only (a prefix or fuzzy match lets "IRA" find "irate"), typos forgiven in long words.
    searchOptions: { boost: { title: 2 }, fuzzy: (term) => (term.length > 5 ? 0.2 : false), prefix: false },
  });
  index.addAll(chunks);
  const settings = { retrieveDelayMs: options.retrieveDelayMs ?? 0 };
  let failures = 0;
  let retrieveCount = 0;

  const server = await listenH2cAndHttp1(async (req, res) => {
    // The documents themselves, as a deployment's SOURCE_BASE_URL serves them: local sources are links too.
    const document = /^\/documents\/([\w.-]+\.md)$/.exec(req.url?.split('?')[0] ?? '')?.[1];
    if (req.method === 'GET' && document) {
      const body = await readFile(join(options.directory, document), 'utf8').catch(() => undefined);
      res.writeHead(body === undefined ? 404 : 200, {
        'content-type': 'text/plain; charset=utf-8',
        'x-content-type-options': 'nosniff',
      });
      res.end(body ?? 'No such document.');
      return;
    }
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
    const asked = topicWords(text);
    const hits = index
      .search(text)
      .map((hit) => Object.assign(hit, { relevance: relevance(hit.score, hit.queryTerms.length, asked) }))
      .sort((a, b) => b.relevance - a.relevance)
      .slice(0, limit);
    // Vector search always returns its k nearest chunks, however far: the rest come at a low score (what
    // a relevance floor is for), so prompts carry as many passages as in AWS.
    const taken = new Set(hits.map((hit) => hit.id));
    for (const chunk of chunks) {
      if (hits.length >= limit) break;
      if (taken.has(chunk.id)) continue;
      hits.push(
        Object.assign({ ...chunk, terms: [], queryTerms: [], score: 0, match: {} }, { relevance: FAR_SCORE }),
      );
    }
    const retrievalResults = hits.map((hit) => ({
      content: { type: 'TEXT', text: hit.text as string },
      location: { type: 'S3', s3Location: { uri: hit.uri as string } },
      score: hit.relevance,
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
    documentsUrl: `${server.url}/documents/`,
    options: settings,
    get retrieveCount() {
      return retrieveCount;
    },
    failNext(times = 1) {
      failures += times;
    },
  };
}
