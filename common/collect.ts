import type { Readable } from 'node:stream';

/**
 * Keeps the first `limit` characters of a stream's text as it flows and reads the rest without
 * keeping it, so a chatty child process or server never blocks on a full pipe.
 */
export function collectText(stream: Readable, limit = Infinity): () => string {
  let text = '';
  stream.setEncoding('utf8').on('data', (d: string) => {
    if (text.length < limit) text += d;
  });
  return () => (limit === Infinity ? text : text.slice(0, limit));
}
