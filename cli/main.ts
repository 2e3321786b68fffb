#!/usr/bin/env node
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../common/commit.js';
import { messageOf, socketErrorOf } from '../common/errors.js';
import { oneLine, shown } from '../common/quote.js';
import type { Manifest } from '../common/manifest.js';
import { humanBytes } from '../common/units.js';
import type { PruneReply__Output as PruneReply } from '../proto/generated/lsbackup/v1/PruneReply.js';
import type { RunSummary__Output as RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import type { ShowReply__Output as ShowReply } from '../proto/generated/lsbackup/v1/ShowReply.js';
import type { SetInfo__Output as SetInfo } from '../proto/generated/lsbackup/v1/SetInfo.js';
import { certsInit, certsIssue } from './certs.js';
import { deploy, undeploy } from './deploy.js';
import { connect, streamCall, unaryCall, type GlobalOptions } from './client.js';
import { diffManifests } from './diff.js';
import { partsTable, ProgressView, table } from './output.js';

/** Exit codes: 0 done and whole; 1 partial, failed or mismatching; 2 the request itself was wrong. */
const EXIT_INPUT = 2;
const INPUT_CODES = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND]);

const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
const repeat = (v: string, prev: string[] = []) => [...prev, v];
const absTarget = (t: string) => path.resolve(t);

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

function print(json: boolean, result: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify({ result }) + '\n' : human() + '\n');
}

async function followStream(cmd: Command, start: (c: ReturnType<typeof connect>) => grpc.ClientReadableStream<never>): Promise<RunSummary> {
  const g = globals(cmd);
  const view = new ProgressView(Boolean(g.json));
  try {
    return await streamCall(start(connect(g)), (ev) => view.event(ev));
  } finally {
    view.stop();
  }
}

const program = new Command(path.basename(process.argv[1] ?? 'lsbackup').replace(/\.js$/, '') === 'lambdastack' ? 'lambdastack' : 'lsbackup')
  .description('Back up and restore a LambdaStack cluster')
  .version(VERSION)
  .option('--config <file>', 'CLI config (coordinator address and operator certificate)')
  .option('--coordinator <host:port>', 'coordinator to talk to (overrides the config)')
  .option('--insecure', 'talk to the coordinator without TLS (testing only)')
  .option('--json', 'machine-readable output: JSON lines, then one result object')
  .exitOverride()
  // commander quotes the unknown command or option as typed: escaped and cut like ours.
  .configureOutput({ outputError: (str, write) => write(oneLine(str.split('\n')[0]!, 500) + '\n') });

program
  .command('backup')
  .description('back up the cluster described by a build directory into a target')
  .requiredOption('-b, --build-dir <dir>', 'build directory with the Ansible inventory')
  .requiredOption('-t, --target <path>', 'shared backup location (same path on every node)')
  .option('--component <name>', 'only this component (repeat or comma-separate)', collect, [])
  .option('--node <host>', 'only this node (repeat or comma-separate)', collect, [])
  .option('--force', 'back up even when the target looks too small')
  .action(async (o: { buildDir: string; target: string; component: string[]; node: string[]; force?: boolean }, cmd: Command) => {
    const s = await followStream(cmd, (c) => c.Backup({ buildDir: path.resolve(o.buildDir), target: absTarget(o.target), components: o.component, nodes: o.node, force: Boolean(o.force) }) as never);
    print(Boolean(globals(cmd).json), s, () =>
      [partsTable(s.parts), ...(s.notCovered.length ? [`not covered by lsbackup: ${s.notCovered.join('; ')}`] : []), ...s.reasons.map((r) => `problem: ${r}`), `backup ${s.backupId} ${s.status}`, s.backupId].join('\n'),
    );
    process.exitCode = s.status === 'complete' ? 0 : 1;
  });

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
  .option('--dry-run', 'check everything and say what would be written, change nothing')
  .option('--force', 'restore even a partial set or files that fail their checksum')
  .action(async (id: string, o: { target: string; node: string; component: string[]; database?: string; option: string[]; buildDir?: string; dryRun?: boolean; force?: boolean }, cmd: Command) => {
    const options: Record<string, string> = {};
    for (const kv of o.option) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new CommanderError(EXIT_INPUT, 'lsbackup.option', `--option '${shown(kv)}' is not key=value`);
      options[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    if (o.database) options.database = o.database;
    const s = await followStream(cmd, (c) =>
      c.Restore({ target: absTarget(o.target), backupId: id, node: o.node, components: o.component, dryRun: Boolean(o.dryRun), force: Boolean(o.force), buildDir: o.buildDir ? path.resolve(o.buildDir) : '', options }) as never,
    );
    print(Boolean(globals(cmd).json), s, () => [partsTable(s.parts), ...s.reasons.map((r) => `problem: ${r}`), `restore of ${o.node} from ${s.backupId}: ${s.status}${o.dryRun ? ' (dry run, nothing written)' : ''}`].join('\n'));
    process.exitCode = s.status === 'ok' ? 0 : 1;
  });

program
  .command('verify')
  .description('recompute the checksum of every file of a set and of every file inside its archives')
  .argument('<id>', 'backup id')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .option('--quick', 'check the artifacts only, not the entries inside the archives')
  .action(async (id: string, o: { target: string; quick?: boolean }, cmd: Command) => {
    const s = await followStream(cmd, (c) => c.Verify({ target: absTarget(o.target), backupId: id, quick: Boolean(o.quick) }) as never);
    print(Boolean(globals(cmd).json), s, () => (s.status === 'ok' ? `backup ${id}: every file matches its manifest` : [`backup ${id}: ${s.reasons.length} bad file(s)`, ...s.reasons.map((r) => `  ${r}`)].join('\n')));
    process.exitCode = s.status === 'ok' ? 0 : 1;
  });

function setRow(s: SetInfo): string[] {
  return [s.backupId, s.status, humanBytes(Number(s.bytes)), String(s.files), s.nodes.join(','), s.components.join(',')];
}

program
  .command('list')
  .description('list the backup sets in a target')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .action(async (o: { target: string }, cmd: Command) => {
    const g = globals(cmd);
    const c = connect(g);
    const r = await unaryCall<{ sets: SetInfo[] }>((cb) => c.List({ target: absTarget(o.target) }, cb));
    print(Boolean(g.json), r.sets, () => (r.sets.length ? table(r.sets.map(setRow), ['ID', 'STATUS', 'SIZE', 'FILES', 'NODES', 'COMPONENTS']) : `no backups in ${o.target}`));
  });

async function fetchManifest(cmd: Command, target: string, id: string): Promise<{ set: SetInfo; manifest?: Manifest }> {
  const c = connect(globals(cmd));
  const r = await unaryCall<ShowReply>((cb) => c.Show({ target: absTarget(target), backupId: id }, cb));
  return { set: r.set!, manifest: r.manifestJson ? (JSON.parse(r.manifestJson) as Manifest) : undefined };
}

program
  .command('show')
  .description('describe one backup set')
  .argument('<id>', 'backup id')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .action(async (id: string, o: { target: string }, cmd: Command) => {
    const { set, manifest } = await fetchManifest(cmd, o.target, id);
    print(Boolean(globals(cmd).json), manifest ?? set, () => {
      const lines = [`backup ${set.backupId}: ${set.status}`, `started ${set.startedAt}${set.finishedAt ? `, finished ${set.finishedAt}` : ''}`, `${set.files} files, ${humanBytes(Number(set.bytes))}`];
      if (manifest) {
        lines.push(partsTable(manifest.parts.map((p) => ({ ...p, artifacts: [], entries: [] }))));
        if (manifest.notCovered.length) lines.push(`not covered: ${manifest.notCovered.join('; ')}`);
      }
      lines.push(...set.reasons.map((r) => `problem: ${r}`));
      return lines.join('\n');
    });
  });

program
  .command('diff')
  .description('what changed between two backup sets, by component')
  .argument('<id1>')
  .argument('<id2>')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .action(async (id1: string, id2: string, o: { target: string }, cmd: Command) => {
    const [a, b] = await Promise.all([fetchManifest(cmd, o.target, id1), fetchManifest(cmd, o.target, id2)]);
    if (!a.manifest || !b.manifest) throw new CommanderError(EXIT_INPUT, 'lsbackup.incomplete', `backup ${!a.manifest ? id1 : id2} is incomplete and has nothing to compare`);
    const d = diffManifests(a.manifest, b.manifest);
    print(Boolean(globals(cmd).json), d, () =>
      d.length ? d.map((x) => `${x.change.padEnd(8)} ${x.node}/${x.component} ${x.path}`).join('\n') : `no differences between ${id1} and ${id2}`,
    );
  });

program
  .command('agents')
  .description('ask every agent of the inventory whether it is reachable and what it serves')
  .requiredOption('-b, --build-dir <dir>', 'build directory with the Ansible inventory')
  .option('-t, --target <path>', 'report the free space each agent sees here')
  .action(async (o: { buildDir: string; target?: string }, cmd: Command) => {
    const g = globals(cmd);
    const c = connect(g);
    const r = await unaryCall<{ agents: import('../proto/generated/lsbackup/v1/AgentStatus.js').AgentStatus__Output[]; notCovered: string[] }>((cb) =>
      c.Agents({ buildDir: path.resolve(o.buildDir), target: o.target ? absTarget(o.target) : '' }, cb),
    );
    print(Boolean(g.json), r, () =>
      [
        table(
          r.agents.map((a) => [a.node, a.address, a.reachable ? 'yes' : `no: ${a.error}`, a.info?.version ?? '', (a.info?.components ?? a.expectedComponents).join(','), a.info && o.target ? humanBytes(Number(a.info.freeBytes)) : '']),
          ['NODE', 'ADDRESS', 'REACHABLE', 'VERSION', 'COMPONENTS', 'FREE AT TARGET'],
        ),
        // What each agent found on its node, for the components the inventory gives it.
        ...r.agents.flatMap((a) =>
          (a.info?.detections ?? [])
            .filter((d) => a.expectedComponents.some((e) => e.replace(/\?$/, '') === d.component) || d.configured)
            .map((d) => `${a.node} ${d.component}: ${d.present ? '' : 'NOT FOUND: '}${d.detail}`),
        ),
        ...(r.notCovered.length ? [`not covered by lsbackup: ${r.notCovered.join('; ')}`] : []),
      ].join('\n'),
    );
    process.exitCode = r.agents.every((a) => a.reachable) ? 0 : 1;
  });

/** A set prune or delete had to keep because what it holds outside could not be deleted: one line each on stderr, exit 1. */
function reportHeld(r: PruneReply): void {
  for (const id of r.held) process.stderr.write(`${program.name()}: ${r.reasons.find((line) => line.startsWith(`${id}: `)) ?? id}\n`);
  if (r.held.length > 0) process.exitCode = 1;
}

const keepOpt = (flag: string, what: string) => new Option(`${flag} <n>`, what).argParser((v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CommanderError(EXIT_INPUT, 'lsbackup.keep', `${flag} '${shown(v)}' is not a whole number`);
  return n;
});

program
  .command('prune')
  .description('remove old sets, and their Elasticsearch snapshots, by a retention policy; never the newest complete set')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .addOption(keepOpt('--keep-last', 'keep the N newest complete sets'))
  .addOption(keepOpt('--keep-daily', 'keep the newest complete set of each of the last N days'))
  .addOption(keepOpt('--keep-weekly', 'keep the newest complete set of each of the last N weeks'))
  .addOption(keepOpt('--keep-monthly', 'keep the newest complete set of each of the last N months'))
  .addOption(keepOpt('--incomplete-grace-hours', 'remove sets without a manifest older than this (default 24)'))
  .option('--dry-run', 'list what would go (sets and their snapshots), remove nothing')
  .action(async (o: { target: string; keepLast?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; incompleteGraceHours?: number; dryRun?: boolean }, cmd: Command) => {
    const g = globals(cmd);
    const c = connect(g);
    const r = await unaryCall<PruneReply>((cb) =>
      c.Prune({ target: absTarget(o.target), keepLast: o.keepLast ?? 0, keepDaily: o.keepDaily ?? 0, keepWeekly: o.keepWeekly ?? 0, keepMonthly: o.keepMonthly ?? 0, incompleteGraceHours: o.incompleteGraceHours ?? 0, dryRun: Boolean(o.dryRun), removeIds: [] }, cb),
    );
    print(Boolean(g.json), r, () => [...r.reasons, `${o.dryRun ? 'would remove' : 'removed'} ${r.removed.length}, kept ${r.kept.length}${r.held.length ? `, held ${r.held.length}` : ''}`].join('\n'));
    reportHeld(r);
  });

program
  .command('delete')
  .description('remove backup sets by id (incomplete ones included), and their Elasticsearch snapshots')
  .argument('<id...>', 'backup ids')
  .requiredOption('-t, --target <path>', 'shared backup location')
  .action(async (ids: string[], o: { target: string }, cmd: Command) => {
    const g = globals(cmd);
    const c = connect(g);
    const r = await unaryCall<PruneReply>((cb) =>
      c.Prune({ target: absTarget(o.target), keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, incompleteGraceHours: 0, dryRun: false, removeIds: ids }, cb),
    );
    print(Boolean(g.json), r, () => `removed ${r.removed.join(', ') || 'nothing'}`);
    reportHeld(r);
  });

for (const [name, what, run] of [
  ['deploy', 'install or upgrade lsbackup on every host of the inventory (agents), and the coordinator and daily timer here, with ansible-playbook', deploy],
  ['undeploy', 'take lsbackup off the hosts of the inventory and this master; backups and the CA stay', undeploy],
] as const) {
  program
    .command(name)
    .description(what)
    .requiredOption('-b, --build-dir <dir>', "the cluster's LambdaStack build directory (inventory, manifest.yml, SSH key)")
    .requiredOption('-t, --target <path>', 'shared backup location, mounted at the same path on every host')
    .option('--pki <dir>', 'the cluster CA on this master', '/etc/lsbackup/pki')
    .option('--coordinator-address <ip>', "this master's address as the agents and operators see it")
    .action(async (o: { buildDir: string; target: string; pki: string; coordinatorAddress?: string }) => {
      const r = await run({ buildDir: o.buildDir, target: absTarget(o.target), pki: path.resolve(o.pki), coordinatorAddress: o.coordinatorAddress, log: (line) => process.stdout.write(`${line}\n`) });
      if (r.code !== 0) process.stderr.write(`${program.name()}: ${name} failed: ansible-playbook exited ${r.code} (its output is above)\n`);
      process.exitCode = r.code === 0 ? 0 : 1;
    });
}

const certs = program.command('certs').description("the cluster's mTLS certificates");
certs
  .command('init')
  .description('create the CA that signs every lsbackup certificate')
  .option('--dir <dir>', 'where the CA lives', '/etc/lsbackup/pki')
  .action(async (o: { dir: string }, cmd: Command) => {
    const files = await certsInit(o.dir);
    print(Boolean(globals(cmd).json), files, () => `created ${files.join(', ')}`);
  });
certs
  .command('issue')
  .description('issue a key and certificate for an agent, the coordinator or an operator')
  .argument('<name>', 'certificate name (the node name for an agent)')
  .addOption(new Option('--role <role>', 'what the certificate may do').choices(['agent', 'coordinator', 'operator']).makeOptionMandatory())
  .option('--host <host>', 'address the holder is reached at, for the certificate (repeat)', collect, [])
  .option('--dir <dir>', 'where the CA lives and the files go', '/etc/lsbackup/pki')
  .action(async (name: string, o: { role: 'agent' | 'coordinator' | 'operator'; host: string[]; dir: string }, cmd: Command) => {
    const files = await certsIssue(o.dir, name, o.role, o.host);
    print(Boolean(globals(cmd).json), files, () => `issued ${files.join(', ')}`);
  });

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
    if (err.code.startsWith('lsbackup.')) process.stderr.write(`${program.name()}: ${oneLine(err.message)}\n`);
    process.exit(EXIT_INPUT);
  }
  const code = (err as grpc.ServiceError)?.code;
  const started = program.args[0] === 'backup' ? (err as { backupId?: string })?.backupId : undefined;
  const target = (program.commands.find((c) => c.name() === program.args[0])?.opts() as { target?: string } | undefined)?.target;
  const lost = started
    ? `; backup ${started} had started: a set whose caller is gone is never committed complete, and its agents may still be finishing; see 'lsbackup show ${started}${target ? ` -t ${absTarget(target)}` : ' -t <target>'}'`
    : '';
  const msg = code === grpc.status.UNAVAILABLE ? `coordinator unreachable: ${socketErrorOf(err)}${lost}` : messageOf(err);
  if (globals(program).json) process.stdout.write(JSON.stringify({ error: msg, code }) + '\n');
  // Whatever the coordinator or a library said, it is one line without terminal controls.
  process.stderr.write(`${program.name()}: ${oneLine(msg)}\n`);
  process.exit(typeof code === 'number' && INPUT_CODES.has(code) ? EXIT_INPUT : 1);
}
