import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import { commitSet, partFromAnswer } from '../common/commit.js';
import { InputError, PreconditionError } from '../common/errors.js';
import { publishKey, type BackupKey } from '../common/keys.js';
import { STORE_DIR } from '../common/store.js';
import { freeBytes } from '../common/fsutil.js';
import { humanBytes } from '../common/units.js';
import { oneLine } from '../common/quote.js';
import { FORMAT, FORMAT_2, FORMAT_4, newSetId, setDir as setDirOf, type Manifest, type Part } from '../common/manifest.js';
import { parentSetOf } from './parent.js';
import { AgentPool, describeRpcError } from './agents.js';
import { readClusterConfig } from './cluster-config.js';
import { readInventory, type InventoryHost } from './inventory.js';
import { NothingToBackUpError, plan, type ComponentPlan } from './plan.js';
import { lockTarget, prepareTarget } from './target.js';

/** Reasons the coordinator's log line of a finished backup quotes; the rest are counted. */
const LOGGED_REASONS = 5;

export interface BackupDeps {
  pool: AgentPool;
  log: Logger;
  agentPort: number;
  spaceMargin: number;
  /** 3 (the default): trees go to the content store; 2: tar trees in each set (FORMAT.md). */
  setFormat?: 2 | 3;
  /** With a key, format 3 becomes format 4: encrypted to its recipients (FORMAT.md "Format 4"). */
  backupKey?: BackupKey;
  /** Without a key: back up unencrypted (true) or refuse (false, the default of the daemon's config). */
  unencrypted?: boolean;
}

export interface BackupArgs {
  buildDir: string;
  target: string;
  components: string[];
  nodes: string[];
  force: boolean;
  /** Read every file, whatever the parent set says of it. */
  rehash?: boolean;
}

/** A new set directory whose id no other set has: ids have one-second resolution. */
async function createSetDir(target: string): Promise<{ id: string; dir: string }> {
  for (;;) {
    const id = newSetId();
    const dir = setDirOf(target, id);
    try {
      await fsp.mkdir(dir, { mode: 0o700 });
      await fsp.chmod(dir, 0o700);
      return { id, dir };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    }
  }
}

function failedParts(host: InventoryHost, components: string[], reason: string, status: Part['status'] = 'failed'): Part[] {
  return components.map((component) => ({ node: host.name, component, status, reason, durationMs: 0, bytes: 0, meta: {}, artifacts: [], entryCount: 0 }));
}

/** A plan that finds nothing to back up says which inventory it read: the file may not be what the operator thinks. */
function planFrom<T>(inventoryFile: string, make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (err instanceof NothingToBackUpError) throw new InputError(`${err.message} (inventory ${inventoryFile})`);
    throw err;
  }
}

/**
 * The coordinator's backup: check the plan, the agents and the space, fan out to every node at
 * once, and commit the set only after every part has answered (or is known to have failed).
 */
export async function runBackup(
  deps: BackupDeps,
  args: BackupArgs,
  emit: (ev: ProgressEvent) => void,
  signal: AbortSignal,
  callerStillThere: () => Promise<boolean> = async () => !signal.aborted,
): Promise<RunSummary> {
  if (!deps.backupKey && deps.unencrypted === false) throw new PreconditionError("the coordinator has no backup_key_file: make one with 'lsbackup keys init --dir <dir>' and set backup_key_file in its config, or set unencrypted: true to back up in the clear");
  const inv = await readInventory(args.buildDir, deps.agentPort);
  const cluster = await readClusterConfig(args.buildDir, inv.file);
  const { hosts: chosen, notes } = planFrom(inv.file, () => plan(inv.hosts, args.nodes, args.components, cluster));
  await prepareTarget(args.target);
  const release = await lockTarget(args.target, `backup of ${args.buildDir}`);
  try {
    emit({ phase: 'info', message: `inventory ${inv.file}: ${chosen.size} node(s) to back up${cluster ? `; cluster configuration ${cluster.file}` : '; no manifest.yml beside it, so what is optional is looked for on the nodes'}` });
    for (const n of notes) emit({ phase: 'info', message: n });
    for (const nc of inv.notCovered) emit({ phase: 'info', message: `not covered by lsbackup: ${nc}` });

    const reachable = new Map<InventoryHost, ComponentPlan[]>();
    const parts: Part[] = [];
    let estimate = 0;
    await Promise.all(
      [...chosen].map(async ([host, plans]) => {
        const comps = plans.map((p) => p.component);
        try {
          const info = await deps.pool.info(host.agent, host.name, args.target, comps);
          for (const p of plans.filter((x) => !info.components.includes(x.component))) {
            const found = info.detections.find((d) => d.component === p.component);
            const why = found ? found.detail : `the agent does not serve it (it serves: ${info.components.join(', ') || 'nothing'})`;
            if (p.optional) parts.push(...failedParts(host, [p.component], `not installed on ${host.name}: ${why}`, 'skipped'));
            else parts.push(...failedParts(host, [p.component], `the inventory puts ${p.component} on ${host.name}, but it is not there: ${why}`));
          }
          const served = plans.filter((p) => info.components.includes(p.component));
          if (served.length) reachable.set(host, served);
          estimate += info.estimates.reduce((s, e) => s + Number(e.bytes), 0);
        } catch (err) {
          const reason = `${host.name} (${host.agent}): ${describeRpcError(err)}`;
          emit({ node: host.name, phase: 'failed', message: reason });
          parts.push(...failedParts(host, comps, reason));
        }
      }),
    );

    const free = await freeBytes(args.target);
    const needed = Math.ceil(estimate * (1 + deps.spaceMargin));
    if (needed > free) {
      const msg = `backup needs about ${humanBytes(needed)} but ${args.target} has ${humanBytes(free)} free`;
      // Refused before anything is written: the request does not fit, an input error (exit 2).
      if (!args.force) throw new InputError(`${msg}; free space or pass --force to try anyway`);
      emit({ phase: 'info', message: `${msg}; going on because of --force` });
    }

    const { id, dir } = await createSetDir(args.target);
    const key = deps.backupKey;
    const setFormat = key && (deps.setFormat ?? 3) === 3 ? 4 : (deps.setFormat ?? 3);
    // Before any agent writes a piece under this key: a restore finds the key's idKey through it.
    if (key) await publishKey(path.join(args.target, STORE_DIR), key);
    const parentId = setFormat === 3 && !args.rehash ? await parentSetOf(args.target, id) : '';
    const startedAt = new Date().toISOString();
    const log = deps.log.child({ backupId: id });
    log.info(`backup started: ${reachable.size} reachable node(s), estimate ${humanBytes(estimate)}`);
    emit({ phase: 'started', backupId: id, message: `backup ${id} started`, bytesTotal: estimate });

    // When the last agent's call ended: the log says how long the commit took after it.
    let lastAnswer = Date.now();
    await Promise.all(
      [...reachable].map(async ([host, plans]) => {
        const comps = plans.map((p) => p.component);
        const results = new Map<string, ComponentResult>();
        try {
          await deps.pool.backup(
            host.agent,
            host.name,
            { backupId: id, target: args.target, node: host.name, components: comps, plans, setFormat, parentId, ...(key ? { recipients: key.recipients, idKey: key.idKey } : {}) },
            (ev) => {
              if (ev.result) results.set(ev.result.component, ev.result);
              emit({ ...ev, node: host.name, backupId: id });
            },
            signal,
          );
        } catch (err) {
          const reason = `${host.name}: lost during backup: ${describeRpcError(err)}`;
          log.error(reason);
          emit({ node: host.name, phase: 'failed', message: reason, backupId: id });
          parts.push(...failedParts(host, comps.filter((c) => !results.has(c)), reason));
        }
        lastAnswer = Date.now();
        for (const r of results.values()) parts.push(await checkedPart(dir, await partFromAnswer(dir, r)));
      }),
    );

    const nodes: Manifest['nodes'] = {};
    for (const h of chosen.keys()) nodes[h.name] = { address: h.agent };
    parts.sort((a, b) => a.node.localeCompare(b.node) || a.component.localeCompare(b.component));
    // The CLI that asked is gone (stopped, its link lost, or it gave up on a frozen coordinator): it
    // told its operator the backup failed, so the set must not turn up complete behind their back.
    const callerGone = !(await callerStillThere()) ? [`the call that started backup ${id} ended before the backup did (the CLI stopped or lost the coordinator): nobody was told its result, so it is not complete`] : [];
    const format = setFormat === 4 ? FORMAT_4 : setFormat === 3 ? FORMAT : FORMAT_2;
    const encryption = key ? { encryption: { recipients: key.recipients, keyId: key.keyId } } : {};
    const manifest = await commitSet(dir, format, { id, startedAt, buildDir: path.resolve(args.buildDir), nodes, notCovered: inv.notCovered, ...encryption }, parts, callerGone, key?.idKey);
    // One line of bounded size, however many nodes failed: the summary and the manifest have every reason.
    log.info(`backup ${manifest.status}: ${manifest.parts.length} part(s), ${manifest.reasons.length} problem(s)`, {
      reasons: manifest.reasons.slice(0, LOGGED_REASONS).map((r) => oneLine(r, 300)),
      committedMsAfterLastAgent: Date.now() - lastAnswer,
    });
    return { backupId: id, status: manifest.status, reasons: manifest.reasons, parts: manifest.parts.map(summaryPart), notCovered: inv.notCovered, setDir: dir };
  } finally {
    await release();
  }
}

/** An agent's report is only believed when its files are where it says: the target must be shared. */
async function checkedPart(dir: string, part: Part): Promise<Part> {
  for (const a of part.artifacts) {
    const st = await fsp.stat(path.join(dir, a.path)).catch(() => undefined);
    if (!st || st.size !== a.size) {
      return { ...part, status: 'failed', reason: `${a.path} is ${st ? `${st.size} bytes, agent reported ${a.size}` : 'not visible to the coordinator'}: is the target the same shared location on every node?` };
    }
  }
  return part;
}

export function summaryPart(p: Part): ComponentResult {
  return { node: p.node, component: p.component, status: p.status, reason: p.reason, artifacts: [], bytes: p.bytes, durationMs: p.durationMs, meta: {}, external: [], entryCount: p.entryCount, record: null };
}
