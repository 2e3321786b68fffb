import { oneLine } from './quote.js';

/**
 * Says whether enough time has passed since it last said yes: progress is reported for every
 * chunk read, and a stream of thousands of events a second would only load the CLI and the gRPC link.
 */
export function throttle(everyMs: number): (force?: boolean) => boolean {
  let last = 0;
  return (force = false) => {
    const now = Date.now();
    if (!force && now - last < everyMs) return false;
    last = now;
    return true;
  };
}

/** How often progress is reported while bytes move. */
export const PROGRESS_EVERY_MS = 250;

/** Longest message a progress event carries: a journal line stays readable, whatever went wrong. */
export const MAX_EVENT_MESSAGE = 1000;

/** An event cut to size before it goes out: its message is one line of at most MAX_EVENT_MESSAGE characters. */
export function boundedEvent<E extends { message?: string | null }>(ev: E): E {
  return ev.message && ev.message.length > MAX_EVENT_MESSAGE ? { ...ev, message: oneLine(ev.message, MAX_EVENT_MESSAGE) } : ev;
}
