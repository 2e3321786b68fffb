import { LsbackupError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { pollUntil } from '../../common/poll.js';
import type { Health } from './component.js';

/**
 * Waiting on an HTTP service's /-/ready (Prometheus and Alertmanager both serve it): shared by the
 * components whose server is stopped and started around a restore, so none imports another.
 */

export function fetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? messageOf(err);
}

export async function getOk(url: string, signal?: AbortSignal, timeoutMs = 5000): Promise<Response> {
  const timeout = AbortSignal.timeout(timeoutMs);
  return fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
}

/** Polls <url>/-/ready (Prometheus and Alertmanager both serve it) until it answers 200. */
export async function waitReady(url: string, timeoutS: number, what: string, signal?: AbortSignal): Promise<void> {
  let last = 'no answer';
  const ready = await pollUntil(Date.now() + timeoutS * 1000, { everyMs: 250 }, async () => {
    if (signal?.aborted) throw new LsbackupError(`cancelled while waiting for ${what} to become ready`);
    try {
      const r = await getOk(`${url}/-/ready`, signal);
      await r.body?.cancel();
      if (r.ok) return true;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = fetchError(err);
    }
    return undefined;
  });
  if (!ready) throw new UnavailableError(`${what} at ${url} is not ready after ${timeoutS}s (last answer: ${last})`);
}

/**
 * Waits until nothing answers at `url`: a stop command that "succeeded" while the server keeps
 * running (wrong unit name, a second instance) must not lead to data being swapped under it.
 */
export async function waitDown(url: string, timeoutS: number, what: string): Promise<void> {
  const down = await pollUntil(Date.now() + timeoutS * 1000, { everyMs: 250 }, async () => {
    try {
      const r = await getOk(`${url}/-/ready`, undefined, 2000);
      await r.body?.cancel();
      return undefined;
    } catch {
      return true;
    }
  });
  if (!down) throw new PreconditionError(`${what} still answers at ${url} after its stop command; nothing was replaced`);
}

export async function readyHealth(url: string, what: string): Promise<Health> {
  try {
    const r = await getOk(`${url}/-/ready`);
    const body = (await r.text()).trim();
    if (r.ok) return { status: 'ok', detail: `${what} at ${url} is ready` };
    return { status: 'degraded', detail: `${what} at ${url} answers HTTP ${r.status}: ${body.slice(0, 200)}` };
  } catch (err) {
    return { status: 'down', detail: `${what} at ${url}: ${fetchError(err)}` };
  }
}

