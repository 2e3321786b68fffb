import * as grpc from '@grpc/grpc-js';
import { asLsbackupError, errorOfKind, LsbackupError, type ErrorKind } from './errors.js';

/**
 * The one place that speaks gRPC's language of failure: a kind goes out as a status code (and
 * its exact name in the trailers), and a failed call comes back as the typed error of its kind.
 */
const STATUS_OF: Record<ErrorKind, grpc.status> = {
  input: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  busy: grpc.status.ABORTED,
  precondition: grpc.status.FAILED_PRECONDITION,
  integrity: grpc.status.DATA_LOSS,
  unavailable: grpc.status.UNAVAILABLE,
  permission: grpc.status.PERMISSION_DENIED,
  command: grpc.status.INTERNAL,
  internal: grpc.status.INTERNAL,
  no_space: grpc.status.RESOURCE_EXHAUSTED,
  deadline: grpc.status.DEADLINE_EXCEEDED,
  cancelled: grpc.status.CANCELLED,
};
const KIND_OF = new Map<grpc.status, ErrorKind>(
  (Object.entries(STATUS_OF) as [ErrorKind, grpc.status][]).filter(([k]) => k !== 'command').map(([k, s]) => [s, k]),
);
const KIND_KEY = 'lsbackup-kind';

function isKind(k: unknown): k is ErrorKind {
  return typeof k === 'string' && k in STATUS_OF;
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as grpc.ServiceError).code === 'number' && 'details' in err;
}

/** A failure as the status a handler answers with. */
export function toStatus(err: unknown): Partial<grpc.ServiceError> {
  const e = asLsbackupError(err);
  const metadata = new grpc.Metadata();
  metadata.set(KIND_KEY, e.kind);
  return { code: STATUS_OF[e.kind], details: e.message, message: e.message, metadata };
}

/**
 * A failed call as the typed error its peer raised. A status that grpc-js made itself (the peer
 * was never reached) carries no kind; its long sentence is cut to the socket error inside it.
 */
export function fromServiceError(err: unknown): LsbackupError {
  if (err instanceof LsbackupError || !isServiceError(err)) return asLsbackupError(err);
  const sent = err.metadata?.get(KIND_KEY)[0];
  const kind = isKind(sent) ? sent : (KIND_OF.get(err.code) ?? 'internal');
  const details = err.details || err.message;
  const message = kind === 'unavailable' && !isKind(sent) ? (/Last error: (?:Error: )?(.*?)(?:\. Resolution note.*)?$/.exec(details)?.[1] ?? details) : details;
  return errorOfKind(kind, message, err);
}

/** The gRPC status code a failure travelled as, or would travel as: what `--json` reports. */
export function statusCodeOf(err: unknown): number | string | undefined {
  if (err instanceof LsbackupError) return isServiceError(err.cause) ? err.cause.code : STATUS_OF[err.kind];
  return (err as { code?: number | string })?.code;
}

/** A unary call as a promise that rejects with the typed error. */
export function callUnary<Res>(call: (done: (err: grpc.ServiceError | null, res?: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => call((err, res) => (err ? reject(fromServiceError(err)) : resolve(res!))));
}

/**
 * Follows a server stream to its end, handing each event on; resolves when it ends with OK and
 * rejects with the typed error otherwise (a killed peer, a cut link after keepalive fails).
 */
export function followStream<Ev>(stream: grpc.ClientReadableStream<Ev>, onEvent: (ev: Ev) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cancel = () => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    stream.on('data', (ev: Ev) => onEvent(ev));
    stream.on('error', (err) => {
      signal?.removeEventListener('abort', cancel);
      reject(fromServiceError(err));
    });
    stream.on('end', () => {
      signal?.removeEventListener('abort', cancel);
      resolve();
    });
  });
}

