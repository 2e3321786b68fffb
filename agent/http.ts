import { promises as fsp } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError, LsbackupError, NotFoundError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../common/errors.js';

/**
 * The one HTTP(S) client the components use to talk to their servers. node:http(s) rather than
 * fetch: Node 20's fetch cannot take a CA or a client certificate per request without undici.
 */

/** Why a request got no answer, for a component that words its own message. */
export interface NetworkFailure {
  /** `METHOD /path`. */
  what: string;
  url: URL;
  /** The socket or TLS error code (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT), or ''. */
  code: string;
  message: string;
  refused: boolean;
  /** The server's certificate was not accepted: never retried without verification. */
  tls: boolean;
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string | number>;
  /** A JSON or other small body, or a stream made afresh for the request. */
  body?: Buffer | (() => Readable);
  /** Length of a streamed body, when known. */
  bodyBytes?: number;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** `user:password`; never put in any message. */
  basicAuth?: { user: string; password: string };
  /** How long the server may send nothing; no limit when unset. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Names the server in messages ("the management API at host"); default its host. */
  server?: string;
  /** Words a network failure the component's way; default: describeNetworkFailure. */
  networkError?: (f: NetworkFailure) => Error;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS/;

/** Sends one request and resolves with the response whatever its status; the caller reads the body. */
export async function httpRequest(req: HttpRequest): Promise<IncomingMessage> {
  const what = `${req.method} ${req.url.pathname}`;
  const headers: Record<string, string | number> = { ...req.headers };
  if (req.basicAuth) headers.authorization = basicAuthorization(req.basicAuth.user, req.basicAuth.password);
  if (Buffer.isBuffer(req.body)) headers['content-length'] = req.body.length;
  else if (req.body && req.bodyBytes !== undefined) headers['content-length'] = req.bodyBytes;
  const send = req.url.protocol === 'https:' ? https.request : http.request;
  const toError = (err: unknown) => networkErrorOf(err, what, req);
  return new Promise<IncomingMessage>((resolve, reject) => {
    // A fresh connection when a client certificate is presented: the one read just now is the one used.
    const r = send(req.url, { method: req.method, headers, ca: req.ca, cert: req.cert, key: req.key, agent: req.cert ? false : undefined, signal: req.signal, timeout: req.timeoutMs }, resolve);
    r.on('timeout', () => r.destroy(new UnavailableError(`${req.server ?? req.url.host} sent nothing for ${req.timeoutMs! / 1000}s (${what})`)));
    r.on('error', (err) => reject(toError(err)));
    if (typeof req.body === 'function') pipeline(req.body(), r).catch((err) => reject(toError(err)));
    else r.end(req.body);
  });
}

/** Sends one request and reads its whole answer as text. */
export async function httpText(req: HttpRequest): Promise<{ status: number; text: string }> {
  const res = await httpRequest(req);
  try {
    return { status: res.statusCode ?? 0, text: await readText(res) };
  } catch (err) {
    throw networkErrorOf(err, `${req.method} ${req.url.pathname}`, req);
  }
}

/** Reads a response body as UTF-8, keeping at most `limit` characters (the rest is drained). */
export async function readText(res: IncomingMessage, limit = Infinity): Promise<string> {
  const chunks: Buffer[] = [];
  let kept = 0;
  for await (const c of res) {
    if (kept >= limit) continue;
    chunks.push(c as Buffer);
    kept += (c as Buffer).length;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return limit === Infinity ? text : text.slice(0, limit);
}

export function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}

/** The typed error an HTTP status stands for: 401/403 permission, 404 not found, 5xx unavailable, else a refused precondition. */
export function errorForStatus(status: number, message: string): LsbackupError {
  if (status === 401 || status === 403) return new PermissionError(message);
  if (status === 404) return new NotFoundError(message);
  if (status >= 500) return new UnavailableError(message);
  return new PreconditionError(message);
}

export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Reads a CA, certificate or key named by a setting; a missing file is a one-line error naming both. */
export async function readSettingFile(file: string, setting: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    throw new InputError(`${setting} ${file}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
  }
}

export function describeNetworkFailure(f: NetworkFailure): Error {
  if (f.tls) return new UnavailableError(`TLS certificate check of ${f.url.host} failed (${f.code}: ${f.message})`);
  if (f.refused) return new UnavailableError(`nothing answers at ${f.url.origin} (connection refused; ${f.what})`);
  return new UnavailableError(`${f.what} on ${f.url.host}: ${f.code ? `${f.code}: ` : ''}${f.message}`);
}

function networkErrorOf(err: unknown, what: string, req: HttpRequest): Error {
  if (err instanceof LsbackupError) return err;
  const e = err as NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] };
  if (e?.name === 'AbortError') return new LsbackupError(`${what} cancelled`);
  // A host with several addresses fails with an AggregateError whose first error says why.
  const code = e?.code ?? e?.errors?.[0]?.code ?? '';
  const failure: NetworkFailure = { what, url: req.url, code, message: e?.message ?? String(err), refused: code === 'ECONNREFUSED', tls: TLS_CODES.test(code) };
  return (req.networkError ?? describeNetworkFailure)(failure);
}
