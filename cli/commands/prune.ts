import { Option, type Command } from 'commander';
import { shown } from '../../common/quote.js';
import type { PruneReply__Output as PruneReply } from '../../proto/generated/lsbackup/v1/PruneReply.js';
import type { PruneRequest } from '../../proto/generated/lsbackup/v1/PruneRequest.js';
import { absTarget, inputError, print, unary } from '../command-support.js';

const NO_RETENTION = { keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, incompleteGraceHours: 0, dryRun: false, removeIds: [] };

/**
 * Prune on the coordinator (by policy, or the sets `removeIds` names), print the result, and report each set that had to be
 * kept because what it holds outside (its ES snapshot) could not be deleted: one line each on stderr, exit 1.
 */
export async function pruneSets(cmd: Command, target: string, request: PruneRequest, human: (r: PruneReply) => string): Promise<void> {
  const r = await unary<PruneReply>(cmd, (c, cb) => c.Prune({ ...NO_RETENTION, ...request, target: absTarget(target) }, cb));
  print(cmd, r, () => human(r));
  const programName = cmd.parent!.name();
  for (const id of r.held) process.stderr.write(`${programName}: ${r.reasons.find((line) => line.startsWith(`${id}: `)) ?? id}\n`);
  if (r.held.length > 0) process.exitCode = 1;
}

const keepOpt = (flag: string, what: string) =>
  new Option(`${flag} <n>`, what).argParser((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw inputError('keep', `${flag} '${shown(v)}' is not a whole number`);
    return n;
  });

interface PruneOptions {
  target: string;
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  incompleteGraceHours?: number;
  dryRun?: boolean;
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('remove old sets, and their Elasticsearch snapshots, by a retention policy; never the newest complete set')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .addOption(keepOpt('--keep-last', 'keep the N newest complete sets'))
    .addOption(keepOpt('--keep-daily', 'keep the newest complete set of each of the last N days'))
    .addOption(keepOpt('--keep-weekly', 'keep the newest complete set of each of the last N weeks'))
    .addOption(keepOpt('--keep-monthly', 'keep the newest complete set of each of the last N months'))
    .addOption(keepOpt('--incomplete-grace-hours', 'remove sets without a manifest older than this (default 24)'))
    .option('--dry-run', 'list what would go (sets, their snapshots, pieces of the store and their bytes), remove nothing')
    .action(async (o: PruneOptions, cmd: Command) => {
      const policy = {
        keepLast: o.keepLast ?? 0,
        keepDaily: o.keepDaily ?? 0,
        keepWeekly: o.keepWeekly ?? 0,
        keepMonthly: o.keepMonthly ?? 0,
        incompleteGraceHours: o.incompleteGraceHours ?? 0,
        dryRun: Boolean(o.dryRun),
      };
      await pruneSets(cmd, o.target, policy, (r) => {
        const counts = `${o.dryRun ? 'would remove' : 'removed'} ${r.removed.length}, kept ${r.kept.length}${r.held.length ? `, held ${r.held.length}` : ''}`;
        return [...r.reasons, counts].join('\n');
      });
    });
}
