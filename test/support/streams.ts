/** Everything a response body reader still has to give, as text. */
export async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for (let r = await reader.read(); !r.done; r = await reader.read())
    text += decoder.decode(r.value, { stream: true });
  return text + decoder.decode();
}
