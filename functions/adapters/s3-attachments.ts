import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { AttachmentContent, AttachmentRef } from '../core/messages.ts';
import type { AttachmentStore } from '../core/ports.ts';

/** Every key of a user starts here, so an erasure deletes one prefix (ids are URL-encoded: no `/` inside). */
const userPrefix = (userId: string) => `users/${encodeURIComponent(userId)}/`;
const sessionPrefix = (userId: string, sessionId: string) =>
  `${userPrefix(userId)}sessions/${encodeURIComponent(sessionId)}/`;

/**
 * Attachments in S3, keyed under their user and session (`users/<user>/sessions/<session>/<message>/<n>`),
 * encrypted at rest by the put itself (SSE-S3) as well as by the bucket's default.
 */
export class S3AttachmentStore implements AttachmentStore {
  readonly #s3: S3Client;
  readonly #bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.#s3 = s3;
    this.#bucket = bucket;
  }

  async put(
    owner: { userId: string; sessionId: string; messageId: string },
    index: number,
    content: AttachmentContent,
  ): Promise<AttachmentRef> {
    const key = `${sessionPrefix(owner.userId, owner.sessionId)}${owner.messageId}/${index}`;
    await this.#s3.send(
      new PutObjectCommand({
        Bucket: this.#bucket,
        Key: key,
        Body: content.bytes,
        ContentType: content.mediaType,
        ServerSideEncryption: 'AES256',
      }),
    );
    return { key, mediaType: content.mediaType, name: content.name, size: content.bytes.length };
  }

  async get(ref: AttachmentRef, signal: AbortSignal): Promise<Uint8Array> {
    const { Body } = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: ref.key }), {
      abortSignal: signal,
    });
    if (!Body) throw new Error('attachment object has no body');
    return Body.transformToByteArray();
  }

  owns(userId: string, key: string): boolean {
    return key.startsWith(userPrefix(userId)) && !key.includes('..');
  }

  /** The files of one message the consumer took back (a turn that raced a delete or an erasure). */
  async deleteRefs(refs: AttachmentRef[]): Promise<void> {
    if (refs.length === 0) return;
    const { Errors } = await this.#s3.send(
      new DeleteObjectsCommand({
        Bucket: this.#bucket,
        Delete: { Objects: refs.map((r) => ({ Key: r.key })), Quiet: true },
      }),
    );
    if (Errors?.length) throw new Error(`${Errors.length} attachment objects left undeleted`);
  }

  deleteSession(userId: string, sessionId: string): Promise<void> {
    return this.#deletePrefix(sessionPrefix(userId, sessionId));
  }

  deleteUser(userId: string): Promise<void> {
    return this.#deletePrefix(userPrefix(userId));
  }

  /** Lists and deletes a prefix page by page (1000 keys a request), until nothing is left. */
  async #deletePrefix(prefix: string): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.#s3.send(
        new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        const { Errors } = await this.#s3.send(
          new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: keys, Quiet: true } }),
        );
        if (Errors?.length) throw new Error(`${Errors.length} attachment objects left undeleted`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
}
