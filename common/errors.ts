import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';

/**
 * Errors carry the gRPC status they travel as, so a user mistake made on the
 * coordinator reaches the CLI as a one-line message with the right exit code.
 */
export class LsbackupError extends Error {
  readonly code: GrpcStatus = GrpcStatus.INTERNAL;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The operator asked for something that cannot be: a missing build dir, an unknown node. */
export class InputError extends LsbackupError {
  override readonly code = GrpcStatus.INVALID_ARGUMENT;
}

export class NotFoundError extends LsbackupError {
  override readonly code = GrpcStatus.NOT_FOUND;
}

/** Another backup or restore holds the lock. */
export class BusyError extends LsbackupError {
  override readonly code = GrpcStatus.ABORTED;
}

/** The backup would not fit, or a component's server is not in a state to be backed up. */
export class PreconditionError extends LsbackupError {
  override readonly code = GrpcStatus.FAILED_PRECONDITION;
}

/** A file does not match its manifest entry, or an archive entry tries to leave its paths. */
export class IntegrityError extends LsbackupError {
  override readonly code = GrpcStatus.DATA_LOSS;
}

export class UnavailableError extends LsbackupError {
  override readonly code = GrpcStatus.UNAVAILABLE;
}

export class PermissionError extends LsbackupError {
  override readonly code = GrpcStatus.PERMISSION_DENIED;
}

/** The operator cancelled (Ctrl-C, a dropped call): stopped at a safe point, which the message names. */
export class CancelledError extends LsbackupError {
  override readonly code = GrpcStatus.CANCELLED;
}

/** A command we ran (pg_dump, haproxy -c, ...) failed. */
export class CommandError extends LsbackupError {
  override readonly code = GrpcStatus.INTERNAL;
}

export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof LsbackupError) return { code: err.code, details: err.message, message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: `no space left: ${e.message}` };
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return { code: GrpcStatus.PERMISSION_DENIED, details: e.message };
  if (e?.code === 'ENOENT') return { code: GrpcStatus.NOT_FOUND, details: e.message };
  return { code: GrpcStatus.INTERNAL, details: e?.message ?? String(err) };
}

export function messageOf(err: unknown): string {
  if (err && typeof err === 'object' && 'details' in err && typeof (err as ServiceError).details === 'string' && (err as ServiceError).details) {
    return (err as ServiceError).details;
  }
  return err instanceof Error ? err.message : String(err);
}

/** grpc-js wraps a connection failure in a long sentence; the socket error inside is what helps. */
export function socketErrorOf(err: unknown): string {
  const msg = messageOf(err);
  return /Last error: (?:Error: )?(.*?)(?:\. Resolution note.*)?$/.exec(msg)?.[1] ?? msg;
}
