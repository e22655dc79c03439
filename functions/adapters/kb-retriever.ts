import { type BedrockAgentRuntimeClient, RetrieveCommand } from '@aws-sdk/client-bedrock-agent-runtime';
import type { Passage } from '../core/messages.ts';
import type { Retriever } from '../core/ports.ts';

const EXCERPT_CHARS = 240;

export class KnowledgeBaseRetriever implements Retriever {
  readonly knowledgeBaseId: string;
  readonly #client: BedrockAgentRuntimeClient;
  readonly #numberOfResults: number;

  constructor(client: BedrockAgentRuntimeClient, knowledgeBaseId: string, numberOfResults: number) {
    this.#client = client;
    this.knowledgeBaseId = knowledgeBaseId;
    this.#numberOfResults = numberOfResults;
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
      return [
        {
          id: typeof chunkId === 'string' ? chunkId : `${uri}#${index}`,
          title,
          uri,
          score: result.score ?? 0,
          excerpt: text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text,
          text,
        },
      ];
    });
  }
}
