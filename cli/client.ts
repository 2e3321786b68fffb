import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { loadConfig } from '../common/config.js';
import { InputError } from '../common/errors.js';
import { channelOptionsFor, proto, DEFAULT_COORDINATOR_PORT, type CoordinatorClient } from '../common/proto.js';
import { callUnary, followStream } from '../common/rpc.js';
import { clientCredentials, tlsSchema } from '../common/tls.js';
import type { ProgressEvent__Output as ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary__Output as RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';

export const cliConfigSchema = z
  .object({
    coordinator: z.string().default(`127.0.0.1:${DEFAULT_COORDINATOR_PORT}`),
    /** The name on the coordinator's certificate, checked when it is reached by IP. */
    coordinator_name: z.string().default('coordinator'),
    tls: tlsSchema.optional(),
    insecure: z.boolean().default(false),
  })
  .strict();

/**
 * Largest reply the CLI takes from its coordinator. Some grow with the cluster, whatever the
 * number of files: Show carries the manifest (about 1 KiB per part: 8,000 parts is 8 MiB), a
 * backup's summary one line per part. grpc-js refuses more than 4 MiB by default.
 */
const MAX_REPLY_BYTES = 256 * 1024 * 1024;

export interface GlobalOptions {
  config?: string;
  coordinator?: string;
  insecure?: boolean;
  json?: boolean;
}

/** The CLI's own config: --config, then $LSBACKUP_CONFIG, then ~/.config/lsbackup/cli.yaml, then /etc/lsbackup/cli.yaml. */
function configFile(opts: GlobalOptions): string | undefined {
  if (opts.config) return opts.config;
  if (process.env.LSBACKUP_CONFIG) return process.env.LSBACKUP_CONFIG;
  return [path.join(os.homedir(), '.config/lsbackup/cli.yaml'), '/etc/lsbackup/cli.yaml'].find((f) => existsSync(f));
}

export function connect(opts: GlobalOptions): CoordinatorClient {
  const file = configFile(opts);
  const cfg = file ? loadConfig(file, cliConfigSchema) : cliConfigSchema.parse({});
  const insecure = Boolean(opts.insecure || cfg.insecure);
  if (!insecure && !cfg.tls) {
    throw new InputError(`no operator certificate configured: write ${file ?? '/etc/lsbackup/cli.yaml'} with coordinator and tls (ca, cert, key), see 'lsbackup certs --help'`);
  }
  const address = opts.coordinator ?? process.env.LSBACKUP_COORDINATOR ?? cfg.coordinator;
  return new proto.Coordinator(address, clientCredentials(cfg.tls, insecure), { ...channelOptionsFor(address, cfg.coordinator_name), 'grpc.max_receive_message_length': MAX_REPLY_BYTES });
}

export const unaryCall = callUnary;

/**
 * Follows a streaming call to its end; the summary comes in the last event. Ctrl-C cuts the call,
 * unless `askToStop` is given (a restore): then the first Ctrl-C asks the run to stop at its next
 * safe point and the call is followed to its summary, which says what each component was left
 * with; a second Ctrl-C stops waiting.
 */
export async function streamCall(stream: grpc.ClientReadableStream<ProgressEvent>, onEvent: (ev: ProgressEvent) => void, askToStop?: (backupId: string) => Promise<void>): Promise<RunSummary> {
  let summary: RunSummary | undefined;
  let backupId = '';
  const interrupted = new AbortController();
  let asked = false;
  const cancel = () => {
    if (!askToStop || asked) return interrupted.abort();
    asked = true;
    process.stderr.write('cancelling: the restore stops at its next safe point and says what each component has (Ctrl-C again to stop waiting)\n');
    askToStop(backupId).catch((err: unknown) => {
      process.stderr.write(`could not ask the coordinator to stop the run: ${(err as Error).message}\n`);
      interrupted.abort();
    });
  };
  process.on('SIGINT', cancel);
  try {
    await followStream(
      stream,
      (ev) => {
        if (ev.backupId) backupId = ev.backupId;
        if (ev.summary) summary = ev.summary;
        else onEvent(ev);
      },
      interrupted.signal,
    );
  } catch (err) {
    // The run the call was about, for a message that says where to look once the link is lost.
    throw Object.assign(err as Error, { backupId });
  } finally {
    process.off('SIGINT', cancel);
  }
  if (!summary) throw new Error('the coordinator ended the call without a result');
  return summary;
}
