/** A promise and the function that resolves it, to hold a fake or a handler at a chosen point. */
export function deferred() {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
