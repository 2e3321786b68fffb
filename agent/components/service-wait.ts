import { LsbackupError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { pollUntil } from '../../common/poll.js';
import { httpText, isOk, type NetworkFailure } from '../http.js';
import type { Health } from './component.js';

/**
 * Waiting on an HTTP service's /-/ready (Prometheus and Alertmanager both serve it): shared by the
 * components whose server is stopped and started around a restore, so none imports another.
 */

/** A GET of a local service's page; a network failure is an UnavailableError saying only its code. */
export async function getLocal(url: string, signal?: AbortSignal, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  return httpText({ method: 'GET', url: new URL(url), signal, timeoutMs, networkError: networkCode });
}

export function networkCode(f: NetworkFailure): Error {
  return new UnavailableError(f.code || f.message);
}

/** Polls <url>/-/ready (Prometheus and Alertmanager both serve it) until it answers 200. */
export async function waitReady(url: string, timeoutS: number, what: string, signal?: AbortSignal): Promise<void> {
  let last = 'no answer';
  const ready = await pollUntil(Date.now() + timeoutS * 1000, { everyMs: 250 }, async () => {
    if (signal?.aborted) throw new LsbackupError(`cancelled while waiting for ${what} to become ready`);
    try {
      const r = await getLocal(`${url}/-/ready`, signal);
      if (isOk(r.status)) return true;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = messageOf(err);
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
      await getLocal(`${url}/-/ready`, undefined, 2000);
      return undefined;
    } catch {
      return true;
    }
  });
  if (!down) throw new PreconditionError(`${what} still answers at ${url} after its stop command; nothing was replaced`);
}

export async function readyHealth(url: string, what: string): Promise<Health> {
  try {
    const r = await getLocal(`${url}/-/ready`);
    const body = r.text.trim();
    if (isOk(r.status)) return { status: 'ok', detail: `${what} at ${url} is ready` };
    return { status: 'degraded', detail: `${what} at ${url} answers HTTP ${r.status}: ${body.slice(0, 200)}` };
  } catch (err) {
    return { status: 'down', detail: `${what} at ${url}: ${messageOf(err)}` };
  }
}

