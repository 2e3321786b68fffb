import type { Logger } from 'winston';
import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import { InputError, IntegrityError, kindOf, LsbackupError, messageOf, NotFoundError, PreconditionError } from '../common/errors.js';
import { COMPONENTS, readManifestIfAny, restorableParts, setDir } from '../common/manifest.js';
import { shown } from '../common/quote.js';
import { checkRestoreOptions } from '../common/restore-options.js';
import { AgentPool, describeRpcError } from './agents.js';
import { readInventory } from './inventory.js';
import { lockForReading } from './target.js';
import { openSet } from '../common/set-keys.js';
import type { StopRegistry } from '../common/stops.js';

export interface RestoreArgs {
  target: string;
  backupId: string;
  node: string;
  components: string[];
  dryRun: boolean;
  force: boolean;
  buildDir: string;
  options: Record<string, string>;
  /** Restore this node's parts onto `node` (a replacement host); empty or equal: `node`'s own parts. */
  fromNode?: string;
  /** Format 4: the operator's identity file's text, for this restore only (never written or logged). */
  identity?: string;
  keyIds?: string[];
}

/**
 * Restores one node: checks the request against the set, then asks that node's agent, which
 * verifies the files itself before it writes anything.
 */
/** What `lsbackup cancel` matches a running restore by. */
export interface RunKey {
  target: string;
  backupId: string;
  node: string;
}

type RestoreDeps = { pool: AgentPool; log: Logger; agentPort: number; stops?: StopRegistry<RunKey> };

export async function runRestore(deps: RestoreDeps, args: RestoreArgs, emit: (ev: ProgressEvent) => void, signal: AbortSignal): Promise<RunSummary> {
  if (!args.node) throw new InputError('restore needs --node <host>: restore runs one node at a time');
  for (const c of args.components) {
    if (!(COMPONENTS as readonly string[]).includes(c)) throw new InputError(`unknown component '${shown(c)}' (known: ${COMPONENTS.join(', ')})`);
  }
  // A wrong option is the operator's typo: said at once, before the lock and the hashing of the set.
  checkRestoreOptions(args.options);
  const read = await readManifestIfAny(args.target, args.backupId);
  if (!read) {
    throw new IntegrityError(`backup '${args.backupId}' is incomplete (never committed); ${args.force ? 'even --force cannot restore a set without a manifest' : 'refusing to restore it'}`);
  }
  // An encrypted set: a wrong identity, or a manifest without its key's MAC, is refused here, before any agent is asked.
  const { manifest: m } = await openSet(args.target, read, args.identity ?? '', args.keyIds ?? []);
  const source = args.fromNode || args.node;
  if (!m.parts.some((p) => p.node === source)) {
    throw new NotFoundError(`unknown node '${shown(source)}' in backup ${m.id} (it has: ${[...new Set(m.parts.map((p) => p.node))].join(', ')})`);
  }
  restorableParts(m, source, args.components);
  if (m.status !== 'complete' && !args.force) {
    const mine = m.parts.filter((p) => p.node === source && p.status === 'failed');
    if (mine.length) emit({ node: args.node, phase: 'info', message: `backup ${m.id} is ${m.status}; the failed parts of ${source} (${mine.map((p) => p.component).join(', ')}) are not restored` });
  }

  // A replacement host is usually not in the set: its address comes from the inventory.
  let address = source === args.node ? m.nodes[args.node]?.address : undefined;
  if (args.buildDir) {
    const inv = await readInventory(args.buildDir, deps.agentPort);
    const h = inv.hosts.get(args.node);
    if (!h) throw new InputError(`node '${args.node}' is not in the inventory of ${args.buildDir}`);
    address = h.agent;
  }
  if (!address) {
    throw new InputError(source === args.node ? `backup ${m.id} does not record where ${args.node}'s agent is; pass -b <build_dir>` : `restoring onto another node needs -b <build_dir> with ${args.node} in its inventory`);
  }
  if (source !== args.node) {
    const parts = m.parts.filter((p) => p.node === source && (!args.components.length || args.components.includes(p.component)) && p.status === 'ok');
    emit({ node: args.node, phase: 'info', message: `${args.dryRun ? 'would restore' : 'restoring'} the parts of ${source} onto ${args.node} (${address}): ${parts.map((p) => p.component).join(', ') || 'none'}` });
  }

  // One backup, restore or prune at a time on a target: prune must not remove what is being read.
  const release = args.dryRun ? async () => undefined : await lockForReading(args.target, `restore of ${args.node} from ${m.id}`, (message) => emit({ node: args.node, phase: 'info', message }));
  try {
    return await restoreThrough(deps, args, address, m.id, emit, signal);
  } finally {
    await release();
  }
}

/** Streams one agent's restore of its node and sums up what it reports. */
/**
 * Streams one agent's restore of its node and sums up what it reports. Neither a cancel nor a
 * caller that goes away cuts the agent's stream: the agent is asked to stop at its next safe point
 * (between components, or before a component's first file is replaced) and its stream is followed
 * to the end, so every component ends either restored or untouched, and the summary says which.
 */
async function restoreThrough(deps: RestoreDeps, args: RestoreArgs, address: string, id: string, emit: (ev: ProgressEvent) => void, signal: AbortSignal): Promise<RunSummary> {
  const results: ComponentResult[] = [];
  const source = args.fromNode || args.node;
  const whose = source === args.node ? '' : ` with the parts of ${source}`;
  emit({ node: args.node, phase: 'started', backupId: id, message: `${args.dryRun ? 'dry run: ' : ''}restoring ${args.node}${whose} from ${setDir(args.target, id)}` });
  deps.log.info(`restore of ${args.node} from ${id} started`, { backupId: id, node: args.node });
  const req = { backupId: id, target: args.target, node: source, components: args.components, dryRun: args.dryRun, force: args.force, options: args.options, identity: args.identity ?? '', keyIds: args.keyIds ?? [] };
  const run = deps.stops?.begin({ target: args.target, backupId: id, node: args.node }, `restore of ${args.node} from ${id}`);
  let asked = false;
  const askToStop = () => {
    if (asked) return;
    asked = true;
    emit({ node: args.node, phase: 'info', backupId: id, message: `cancel: asking the agent of ${args.node} to stop at its next safe point` });
    deps.pool.cancel(address, args.node, id).catch((err: unknown) => deps.log.warn(`could not ask ${args.node} to stop: ${messageOf(err)}`));
  };
  for (const s of [signal, run?.signal]) s?.addEventListener('abort', askToStop, { once: true });
  if (signal.aborted) askToStop();
  try {
    await deps.pool.restore(
      address,
      args.node,
      req,
      (ev) => {
        if (ev.result) results.push(ev.result);
        emit({ ...ev, backupId: id });
      },
      new AbortController().signal,
    );
  } catch (err) {
    // What the agent refused is the coordinator's failure to restore (exit 1), whatever its kind there.
    if (kindOf(err) !== 'unavailable') throw new LsbackupError(messageOf(err), { cause: err });
    throw new PreconditionError(`agent of ${args.node} (${address}): ${describeRpcError(err)}; nothing was restored there unless its progress said so`);
  } finally {
    for (const s of [signal, run?.signal]) s?.removeEventListener('abort', askToStop);
    run?.end();
  }
  const failed = results.filter((r) => r.status === 'failed');
  const cancelled = results.filter((r) => r.status === 'cancelled');
  // A restore that restored nothing is never "ok", whatever the agent said.
  const nothing = results.length === 0 ? [`${args.node}: the agent restored nothing`] : [];
  return {
    backupId: id,
    status: failed.length || nothing.length ? 'failed' : cancelled.length ? 'cancelled' : 'ok',
    reasons: [...failed.map((r) => `${r.node}/${r.component}: ${r.reason}`), ...cancelled.map((r) => `${r.node}/${r.component}: ${r.reason}`), ...nothing],
    parts: results,
    notCovered: [],
    setDir: setDir(args.target, id),
  };
}
