import type * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { VERSION } from './commit.js';
import type { Logger } from 'winston';
import { LsbackupError, messageOf } from './errors.js';
import { oneLine } from './quote.js';

/** A user mistake at start (bad config, missing cert) is one line on stderr and exit 2. */
export function exitOnStartError(program: string, err: unknown): never {
  process.stderr.write(`${program}: ${oneLine(messageOf(err))}\n`);
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

/** The daemons' shared command line: a config file and the explicit, warned-about --insecure. */
export function daemonOptions(name: string, description: string): { config: string; insecure?: boolean } {
  return new Command(name)
    .description(description)
    .requiredOption('-c, --config <file>', 'config file (YAML)')
    .option('--insecure', 'no TLS (testing only; logs a warning at every start)')
    .version(VERSION)
    // A usage mistake is an input error like a bad config: exit 2, which systemd does not restart.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .parse()
    .opts<{ config: string; insecure?: boolean }>();
}

/** A bind failure names the address and where it was configured. */
export function listenError(err: unknown, listen: string, configFile: string): Error {
  return new Error(`cannot listen on ${listen} (key 'listen' in ${configFile}): ${messageOf(err)}`, { cause: err });
}
