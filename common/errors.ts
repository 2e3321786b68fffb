/**
 * Errors say what kind of failure they are, in the project's own words; only common/rpc.ts turns
 * a kind into a gRPC status and back, so a user mistake made on the coordinator reaches the CLI as
 * a one-line message with the right exit code, and no code reads a message to learn what happened.
 */
export type ErrorKind =
  | 'input'
  | 'not_found'
  | 'busy'
  | 'precondition'
  | 'integrity'
  | 'unavailable'
  | 'permission'
  | 'command'
  | 'internal'
  | 'no_space'
  | 'deadline'
  | 'cancelled';

export class LsbackupError extends Error {
  readonly kind: ErrorKind = 'internal';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The base of the error classes of one kind: each names its kind once. */
function ofKind<K extends ErrorKind>(kind: K) {
  return class extends LsbackupError {
    override readonly kind: K = kind;
  };
}

/** The operator asked for something that cannot be: a missing build dir, an unknown node. */
export class InputError extends ofKind('input') {}
export class NotFoundError extends ofKind('not_found') {}

/** Another backup or restore holds the lock. */
export class BusyError extends ofKind('busy') {}

/** The backup would not fit, or a component's server is not in a state to be backed up. */
export class PreconditionError extends ofKind('precondition') {}

/** A file does not match its manifest entry, or an archive entry tries to leave its paths. */
export class IntegrityError extends ofKind('integrity') {}
export class UnavailableError extends ofKind('unavailable') {}
export class PermissionError extends ofKind('permission') {}

/** A command we ran (pg_dump, haproxy -c, ...) failed. */
export class CommandError extends ofKind('command') {}

/** The disk the work writes to is full. */
export class NoSpaceError extends ofKind('no_space') {}

/** A remote call got no answer in time. */
export class DeadlineError extends ofKind('deadline') {}

/** The caller went away, or the operator cancelled (Ctrl-C): stopped at a safe point, which the message names. */
export class CancelledError extends ofKind('cancelled') {}

const byKind: Record<ErrorKind, new (message: string, options?: { cause?: unknown }) => LsbackupError> = {
  input: InputError,
  not_found: NotFoundError,
  busy: BusyError,
  precondition: PreconditionError,
  integrity: IntegrityError,
  unavailable: UnavailableError,
  permission: PermissionError,
  command: CommandError,
  internal: LsbackupError,
  no_space: NoSpaceError,
  deadline: DeadlineError,
  cancelled: CancelledError,
};

/** The typed error for `kind`: how a failure that crossed the wire becomes one of ours again. */
export function errorOfKind(kind: ErrorKind, message: string, cause?: unknown): LsbackupError {
  return new byKind[kind](message, { cause });
}

/** The kind of a failure; one that is not ours is internal. */
export function kindOf(err: unknown): ErrorKind {
  return err instanceof LsbackupError ? err.kind : 'internal';
}

/**
 * A failure as one of ours, for sending it on: a system error keeps what its errno says (a full
 * disk, a refused file, a missing one), anything else is internal.
 */
export function asLsbackupError(err: unknown): LsbackupError {
  if (err instanceof LsbackupError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return new NoSpaceError(`no space left: ${e.message}`, { cause: err });
  if (e?.code === 'EACCES' || e?.code === 'EPERM') return new PermissionError(e.message, { cause: err });
  if (e?.code === 'ENOENT') return new NotFoundError(e.message, { cause: err });
  return new LsbackupError(e?.message ?? String(err), { cause: err });
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
