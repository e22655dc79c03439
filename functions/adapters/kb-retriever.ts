import { type BedrockAgentRuntimeClient, RetrieveCommand } from '@aws-sdk/client-bedrock-agent-runtime';
import type { Passage } from '../core/messages.ts';
import type { Retriever } from '../core/ports.ts';

const EXCERPT_CHARS = 240;

/**
 * Where a person can open a source: a web location as it is; an S3 object (`s3://bucket/key`, what a
 * Bedrock knowledge base on S3 returns in `location.s3Location.uri`) under `sourceBaseUrl` + key.
 */
export function sourceUrlOf(uri: string, sourceBaseUrl: string | undefined): string | undefined {
  if (/^https?:\/\//i.test(uri)) return uri;
  const key = /^s3:\/\/[^/]+\/(.+)$/.exec(uri)?.[1];
  if (!key || !sourceBaseUrl) return undefined;
  const base = sourceBaseUrl.endsWith('/') ? sourceBaseUrl : `${sourceBaseUrl}/`;
  return `${base}${key.split('/').map(encodeURIComponent).join('/')}`;
}

export class KnowledgeBaseRetriever implements Retriever {
  readonly knowledgeBaseId: string;
  readonly #client: BedrockAgentRuntimeClient;
  readonly #numberOfResults: number;
  readonly #sourceBaseUrl: string | undefined;

  constructor(
    client: BedrockAgentRuntimeClient,
    knowledgeBaseId: string,
    numberOfResults: number,
    sourceBaseUrl?: string,
  ) {
    this.#client = client;
    this.knowledgeBaseId = knowledgeBaseId;
    this.#numberOfResults = numberOfResults;
    this.#sourceBaseUrl = sourceBaseUrl;
  }

  async retrieve(question: string, signal: AbortSignal): Promise<Passage[]> {
    const { retrievalResults = [] } = await this.#client.send(
      new RetrieveCommand({
        knowledgeBaseId: this.knowledgeBaseId,
        retrievalQuery: { text: question },
        retrievalConfiguration: { vectorSearchConfiguration: { numberOfResults: this.#numberOfResults } },
      }),
      { abortSignal: signal },
    );
    return retrievalResults.flatMap((result, index) => {
      const text = result.content?.text;
      if (!text) return [];
      const location = result.location;
      const uri =
        location?.s3Location?.uri ??
        location?.webLocation?.url ??
        location?.confluenceLocation?.url ??
        location?.sharePointLocation?.url ??
        location?.salesforceLocation?.url ??
        '';
      const metadata = (result.metadata ?? {}) as Record<string, unknown>;
      const title =
        typeof metadata.title === 'string'
          ? metadata.title
          : (uri
              .split('/')
              .pop()
              ?.replace(/\.\w+$/, '') ?? 'source');
      const chunkId = metadata['x-amz-bedrock-kb-chunk-id'];
      const url = sourceUrlOf(uri, this.#sourceBaseUrl);
      return [
        {
          id: typeof chunkId === 'string' ? chunkId : `${uri}#${index}`,
          title,
          uri,
          score: result.score ?? 0,
          excerpt: text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text,
          ...(url ? { url } : {}),
          text,
        },
      ];
    });
  }
}
