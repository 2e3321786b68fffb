import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { asLsbackupError, errorOfKind, messageOf, LsbackupError, type ErrorKind } from './errors.js';
import { serverOptions } from './proto.js';
import { authorize, type Role } from './tls.js';

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

/** A call as a handler receives it, unary or streaming. */
type IncomingCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** What a handler is told about its call besides the request. */
export interface CallContext {
  /** Aborts when the caller goes away. */
  signal: AbortSignal;
  /** Whether the caller still answers (an HTTP/2 ping): a gone caller is noticed only on the next write otherwise. */
  callerAnswers(): Promise<boolean>;
}

export interface ServeOptions {
  /** The certificate roles allowed to call. */
  roles: Role[];
  insecure: boolean;
  /** Told of every streaming call that fails, with the handler's name. */
  onStreamFailure?: (name: string, message: string) => void;
}

/** The HTTP/2 session a call came in on; grpc-js keeps it a few objects deep. */
function sessionOf(call: object): Http2Session | undefined {
  let o: unknown = call;
  for (let depth = 0; depth < 4 && o && typeof o === 'object'; depth++) {
    const rec = o as { stream?: { session?: Http2Session }; call?: unknown; nextCall?: unknown };
    if (rec.stream?.session && typeof rec.stream.session.ping === 'function') return rec.stream.session;
    o = rec.call ?? rec.nextCall;
  }
  return undefined;
}

/**
 * Whether the caller is still there, asked with an HTTP/2 ping. A CLI that gave up on a frozen
 * coordinator has closed its connection, but the server learns that only when it next writes to
 * it or its keepalive runs out, which may be after it has committed a set.
 */
function callerAnswers(call: IncomingCall, signal: AbortSignal, timeoutMs = 5_000): Promise<boolean> {
  if (signal.aborted || call.cancelled) return Promise.resolve(false);
  const session = sessionOf(call);
  if (!session) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    try {
      const sent = session.ping((err) => {
        clearTimeout(timer);
        resolve(!err && !signal.aborted);
      });
      if (!sent) {
        clearTimeout(timer);
        resolve(false);
      }
    } catch {
      clearTimeout(timer);
      resolve(false);
    }
  });
}

/** Runs a handler's work for an allowed caller only, with a context whose signal aborts when the caller goes away. */
function forCaller<T>(call: IncomingCall, opts: ServeOptions, work: (ctx: CallContext) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  call.on('cancelled', () => abort.abort());
  return (async () => {
    authorize(call, opts.roles, opts.insecure);
    return work({ signal: abort.signal, callerAnswers: () => callerAnswers(call, abort.signal) });
  })();
}

/** A server-streaming handler from a plain async function: its events, then the end of the stream or its error status. */
/**
 * A server-streaming handler from a plain async function. `write` gives a promise when the
 * call's buffer is full: a producer of many messages awaits it (memory stays flat), progress does not.
 */
export function serveStream<Req, Ev>(opts: ServeOptions, name: string, work: (req: Req, write: (ev: Ev) => Promise<void> | undefined, ctx: CallContext) => Promise<void>): grpc.handleServerStreamingCall<Req, Ev> {
  return (call) => {
    // One promise per full buffer, shared by every write until it drains: progress that does not
    // wait for it (thousands of agents' events) must not pile up a 'drain' listener per event.
    let drained: Promise<void> | undefined;
    const waitForDrain = () => new Promise<void>((r) => call.once('drain', () => ((drained = undefined), r())));
    const write = (ev: Ev) => (call.write(ev) ? undefined : (drained ??= waitForDrain()));
    forCaller(call, opts, (ctx) => work(call.request, write, ctx)).then(
      () => call.end(),
      (err) => {
        opts.onStreamFailure?.(name, messageOf(err));
        call.emit('error', toStatus(err));
      },
    );
  };
}

/** A unary handler from a plain async function: its result, or its error status. */
export function serveUnary<Req, Res>(opts: ServeOptions, work: (req: Req, ctx: CallContext) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    forCaller(call, opts, (ctx) => work(call.request, ctx)).then(
      (reply) => callback(null, reply),
      (err) => callback(toStatus(err)),
    );
  };
}

/** Binds a service's handlers to `listen`; resolves with the port bound (0 asks for a free one). */
export async function startServer<H extends grpc.UntypedServiceImplementation>(
  service: grpc.ServiceDefinition,
  handlers: H,
  listen: string,
  creds: grpc.ServerCredentials,
): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(serverOptions);
  server.addService(service, handlers);
  // grpc-js wraps the socket errors of a failed bind in a list; the socket error is what helps.
  const bound = (err: Error) => new Error(/errors: \[(.*)\]$/.exec(err.message)?.[1] ?? err.message, { cause: err });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, creds, (err, p) => (err ? reject(bound(err)) : resolve(p))));
  return { server, port };
}
