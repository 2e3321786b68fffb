import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { LsbackupError, messageOf } from './errors.js';

/** A user mistake at start (bad config, missing cert) is one line on stderr and exit 2. */
export function exitOnStartError(program: string, err: unknown): never {
  process.stderr.write(`${program}: ${messageOf(err)}\n`);
  process.exit(err instanceof LsbackupError ? 2 : 1);
}

export function stopOnSignals(server: grpc.Server, log: Logger): void {
  const stop = (sig: string) => {
    log.info(`${sig}: shutting down`);
    // Give running streams a moment to end with a status instead of a broken connection.
    const force = setTimeout(() => server.forceShutdown(), 5_000);
    server.tryShutdown(() => {
      clearTimeout(force);
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
