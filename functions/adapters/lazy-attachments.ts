import type { AttachmentContent, AttachmentRef } from '../core/messages.ts';
import type { AttachmentStore } from '../core/ports.ts';
import { ownsAttachmentKey } from './attachment-keys.ts';

/**
 * An attachment store whose client is loaded and created on its first use: only turns with files and
 * deletions need it, so the S3 client's module code and construction stay out of every cold start.
 */
export class LazyAttachmentStore implements AttachmentStore {
  readonly #load: () => Promise<AttachmentStore>;
  #store: Promise<AttachmentStore> | undefined;

  constructor(load: () => Promise<AttachmentStore>) {
    this.#load = load;
  }

  #loaded(): Promise<AttachmentStore> {
    this.#store ??= this.#load();
    return this.#store;
  }

  async put(
    owner: { userId: string; sessionId: string; messageId: string },
    index: number,
    content: AttachmentContent,
  ): Promise<AttachmentRef> {
    return (await this.#loaded()).put(owner, index, content);
  }

  async get(ref: AttachmentRef, signal: AbortSignal): Promise<Uint8Array> {
    return (await this.#loaded()).get(ref, signal);
  }

  owns(userId: string, key: string): boolean {
    return ownsAttachmentKey(userId, key);
  }

  async deleteSession(userId: string, sessionId: string): Promise<void> {
    return (await this.#loaded()).deleteSession(userId, sessionId);
  }

  async deleteUser(userId: string): Promise<void> {
    return (await this.#loaded()).deleteUser(userId);
  }
}
