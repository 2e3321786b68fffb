import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { collectText } from './collect.js';
import { CommandError } from './errors.js';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Strings to blank out of error messages (passwords given on a command line or in env). */
  secrets?: string[];
  /**
   * false: a failing command resolves with its `code` instead of rejecting, for checkers whose
   * output is the answer (the CommandError keeps only the first lines of stderr).
   */
  check?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** The exit code; null when a signal ended the command. */
  code: number | null;
}

/** Blanks every secret out of a message before it is logged or sent. */
export function redact(text: string, secrets: string[] = []): string {
  return secrets.filter((s) => s.length > 0).reduce((t, s) => t.split(s).join('***'), text);
}

/** The first lines of a command's stderr, for a one-line error. */
export function firstLines(text: string, n = 3): string {
  const lines = text.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  // Tools print banners first (haproxy's NOTICE lines); the error is what the operator needs.
  const errors = lines.filter((l) => /error|alert|fatal|failed|denied|invalid/i.test(l));
  return (errors.length ? errors : lines).slice(0, n).join(' | ');
}

/**
 * Runs a command to completion and returns its output; a non-zero exit becomes a
 * CommandError naming the command (unless `check` is false). A cancelled call kills the
 * child, so an aborted backup leaves no pg_dump behind.
 */
export function run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(cmd, { env: opts.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] }, opts.signal);
    const stdoutText = collectText(child.stdout!);
    const stderrText = collectText(child.stderr!);
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CommandError(`${cmd[0]}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'command not found' : err.message}`));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      const [stdout, stderr] = [stdoutText(), stderrText()];
      if (code === 0 || opts.check === false) return resolve({ stdout, stderr, code });
      const why = sig ? `killed by ${sig}` : `exit ${code}`;
      reject(new CommandError(redact(`${cmd.join(' ')} failed (${why}): ${firstLines(stderr || stdout)}`, opts.secrets)));
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
  });
}

export function spawnChild(cmd: string[], options: SpawnOptions, signal?: AbortSignal): ChildProcess {
  if (cmd.length === 0) throw new CommandError('empty command');
  const child = spawn(cmd[0]!, cmd.slice(1), options);
  if (signal) {
    const kill = () => child.kill('SIGTERM');
    if (signal.aborted) kill();
    else signal.addEventListener('abort', kill, { once: true });
    child.on('close', () => signal.removeEventListener('abort', kill));
  }
  return child;
}
