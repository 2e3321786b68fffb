import path from 'node:path';
import type { Command } from 'commander';
import { shown } from '../../common/quote.js';
import { absTarget, collect, followStream, inputError, print, repeat } from '../command-support.js';
import { partsTable, restoreOutcome } from '../output.js';
import { unaryCall } from '../client.js';
import { identityHelp, readIdentityOption } from '../identity.js';
import type { CancelReply__Output as CancelReply } from '../../proto/generated/lsbackup/v1/CancelReply.js';

interface RestoreOptions {
  target: string;
  node: string;
  component: string[];
  database?: string;
  option: string[];
  buildDir?: string;
  dryRun?: boolean;
  force?: boolean;
  fromNode?: string;
  identity?: string;
  keyId: string[];
}

/** --option key=value pairs, and --database, as the component options of the request. */
function componentOptions(o: RestoreOptions): Record<string, string> {
  const options: Record<string, string> = {};
  for (const kv of o.option) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw inputError('option', `--option '${shown(kv)}' is not key=value`);
    options[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (o.database) options.database = o.database;
  return options;
}

export function registerRestore(program: Command): void {
  program
    .command('restore')
    .alias('recovery')
    .description('restore one node from a backup set')
    .argument('<id>', 'backup id')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .requiredOption('--node <host>', 'node to restore')
    .option('--component <name>', 'only this component (repeat or comma-separate)', collect, [])
    .option('--database <name>', 'PostgreSQL: restore only this database')
    .option('--option <key=value>', 'component option (repeat), e.g. --option indices=logs-*,metrics-* --option close_existing=true', repeat, [])
    .option('-b, --build-dir <dir>', 'find the node in this inventory instead of the address recorded in the set')
    .option('--from-node <host>', "restore this node's parts onto --node (a replacement host; needs -b)")
    .option('--dry-run', 'check everything and say what would be written, change nothing')
    .option('--force', 'restore even a partial set or files that fail their checksum')
    .option('--identity <file>', identityHelp)
    .option('--key-id <hex>', 'believe this backup key id too (one the identity file does not name; see show)', repeat, [])
    .action(async (id: string, o: RestoreOptions, cmd: Command) => {
      const request = {
        target: absTarget(o.target),
        backupId: id,
        node: o.node,
        components: o.component,
        dryRun: Boolean(o.dryRun),
        force: Boolean(o.force),
        buildDir: o.buildDir ? path.resolve(o.buildDir) : '',
        options: componentOptions(o),
        fromNode: o.fromNode ?? '',
        identity: await readIdentityOption(o.identity),
        keyIds: o.keyId,
      };
      const s = await followStream(
        cmd,
        (c) => c.Restore(request) as never,
        async (c, runId) => void (await unaryCall<CancelReply>((cb) => c.Cancel({ target: request.target, backupId: runId || id, node: o.node }, cb))),
      );
      const outcome = `restore of ${o.node}${o.fromNode && o.fromNode !== o.node ? ` with the parts of ${o.fromNode}` : ''} from ${s.backupId}: ${s.status}${o.dryRun ? ' (dry run, nothing written)' : ''}`;
      print(cmd, s, () => [partsTable(s.parts), ...restoreOutcome(s.parts), ...s.reasons.map((r) => `problem: ${r}`), outcome].join('\n'));
      process.exitCode = s.status === 'ok' ? 0 : 1;
    });
}
