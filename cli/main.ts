#!/usr/bin/env node
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/commit.js';
import { kindOf, messageOf, type ErrorKind } from '../common/errors.js';
import { statusCodeOf } from '../common/rpc.js';
import { oneLine } from '../common/quote.js';
import { absTarget, EXIT_INPUT, globals } from './command-support.js';
import { registerAgents } from './commands/agents.js';
import { registerBackup } from './commands/backup.js';
import { registerCerts } from './commands/certs.js';
import { registerKeys } from './commands/keys.js';
import { registerDelete } from './commands/delete.js';
import { registerDeploy } from './commands/deploy.js';
import { registerDiff } from './commands/diff.js';
import { registerList } from './commands/list.js';
import { registerPrune } from './commands/prune.js';
import { registerRestore } from './commands/restore.js';
import { registerCancel } from './commands/cancel.js';
import { registerShow } from './commands/show.js';
import { registerVerify } from './commands/verify.js';

/** The coordinator's answers that mean the request itself was wrong: exit EXIT_INPUT like a usage error. */
const INPUT_KINDS = new Set<ErrorKind>(['input', 'not_found']);

// Installed as `lambdastack` too, the seed's name; messages then say that name.
const invokedAs = path.basename(process.argv[1] ?? 'lsbackup').replace(/\.js$/, '') === 'lambdastack' ? 'lambdastack' : 'lsbackup';

const program = new Command(invokedAs)
  .description('Back up and restore a LambdaStack cluster')
  .version(VERSION)
  .option('--config <file>', 'CLI config (coordinator address and operator certificate)')
  .option('--coordinator <host:port>', 'coordinator to talk to (overrides the config)')
  .option('--insecure', 'talk to the coordinator without TLS (testing only)')
  .option('--json', 'machine-readable output: JSON lines, then one result object')
  .exitOverride()
  // commander quotes the unknown command or option as typed: escaped and cut like ours.
  .configureOutput({ outputError: (str, write) => write(oneLine(str.split('\n')[0]!, 500) + '\n') });

for (const register of [
  registerBackup,
  registerRestore,
  registerCancel,
  registerVerify,
  registerList,
  registerShow,
  registerDiff,
  registerAgents,
  registerPrune,
  registerDelete,
  registerDeploy,
  registerCerts,
  registerKeys,
]) {
  register(program);
}

/** The message for a failed call; a backup whose caller lost the coordinator says where to look for the set it started. */
function failureMessage(err: unknown): string {
  if (kindOf(err) !== 'unavailable') return messageOf(err);
  const started = program.args[0] === 'backup' ? (err as { backupId?: string })?.backupId : undefined;
  const target = (program.commands.find((c) => c.name() === program.args[0])?.opts() as { target?: string } | undefined)?.target;
  const lost = started
    ? `; backup ${started} had started: a set whose caller is gone is never committed complete, and its agents may still be finishing; ` +
      `see 'lsbackup show ${started}${target ? ` -t ${absTarget(target)}` : ' -t <target>'}'`
    : '';
  return `coordinator unreachable: ${messageOf(err)}${lost}`;
}

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
    if (err.code.startsWith('lsbackup.')) process.stderr.write(`${program.name()}: ${oneLine(err.message)}\n`);
    process.exit(EXIT_INPUT);
  }
  const code = statusCodeOf(err);
  const msg = failureMessage(err);
  if (globals(program).json) process.stdout.write(JSON.stringify({ error: msg, code }) + '\n');
  // Whatever the coordinator or a library said, it is one line without terminal controls.
  process.stderr.write(`${program.name()}: ${oneLine(msg)}\n`);
  process.exit(INPUT_KINDS.has(kindOf(err)) ? EXIT_INPUT : 1);
}
