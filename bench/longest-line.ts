/**
 * The longest line of a process's output: item 12's limit, and what the tree clusters watch on
 * their agent's and coordinator's logs.
 */
/** The longest line (in bytes) seen on a stream, fed in chunks that may split lines anywhere. */
export class LongestLine {
  longest = 0;
  lines = 0;
  /** The first 120 characters of the longest line, to say what it was. */
  sample = '';
  private partial = '';

  feed(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop()!;
    for (const l of parts) this.take(l);
  }

  end(): this {
    if (this.partial) this.take(this.partial);
    this.partial = '';
    return this;
  }

  private take(line: string): void {
    this.lines++;
    const n = Buffer.byteLength(line);
    if (n > this.longest) {
      this.longest = n;
      this.sample = line.slice(0, 120);
    }
  }
}
