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
