/** Every key of a user starts here, so an erasure deletes one prefix (ids are URL-encoded: no `/` inside). */
export const userPrefix = (userId: string) => `users/${encodeURIComponent(userId)}/`;

export const sessionPrefix = (userId: string, sessionId: string) =>
  `${userPrefix(userId)}sessions/${encodeURIComponent(sessionId)}/`;

/** `true` when the key is one of this user's (a key from a request is never trusted as is). */
export const ownsAttachmentKey = (userId: string, key: string) =>
  key.startsWith(userPrefix(userId)) && !key.includes('..');
