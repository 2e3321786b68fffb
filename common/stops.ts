/**
 * Runs that can be asked to stop at their next safe point. Asking does not end a run: it goes on
 * reporting, stops where stopping leaves no component half-restored, and says what it left.
 */
export class StopRegistry<K> {
  private readonly runs = new Set<{ key: K; what: string; controller: AbortController }>();

  begin(key: K, what: string): { signal: AbortSignal; end(): void } {
    const run = { key, what, controller: new AbortController() };
    this.runs.add(run);
    return { signal: run.controller.signal, end: () => void this.runs.delete(run) };
  }

  /** Asks every matching run to stop; says which were asked. */
  cancel(matches: (key: K) => boolean): string[] {
    const asked: string[] = [];
    for (const r of this.runs) {
      if (!matches(r.key) || r.controller.signal.aborted) continue;
      r.controller.abort();
      asked.push(r.what);
    }
    return asked;
  }
}
