import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  /** The wait after the first try. */
  everyMs: number;
  /** Waits grow by half after each try, up to this; by default they stay at everyMs. */
  maxMs?: number;
  /** Cuts a wait short (the sleep rejects with an AbortError). */
  signal?: AbortSignal;
}

/**
 * Runs `step` until it gives a value, and returns that value; undefined when a try ends past the
 * deadline without one. The last try is never skipped to save a wait: nothing gives up early.
 */
export async function pollUntil<T>(deadlineMs: number, opts: PollOptions, step: () => Promise<T | undefined>): Promise<T | undefined> {
  let wait = opts.everyMs;
  for (;;) {
    const v = await step();
    if (v !== undefined) return v;
    if (Date.now() >= deadlineMs) return undefined;
    await sleep(wait, undefined, { signal: opts.signal });
    wait = Math.min(opts.maxMs ?? opts.everyMs, Math.round(wait * 1.5));
  }
}
