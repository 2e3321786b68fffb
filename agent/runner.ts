import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'winston';
import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import type { AgentReleaseReply__Output as AgentReleaseReply } from '../proto/generated/lsbackup/v1/AgentReleaseReply.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import { loadEntries, treeArtifactOf } from '../common/entries-file.js';
import { PartTrees, openStoreRun, type StoreRun } from './part-trees.js';
import type { Estimates } from './estimates.js';
import { openSet, partMeta, setSealing, type SetOpening } from '../common/set-keys.js';
import { writePartRecord } from '../common/part-record.js';
import { InputError, IntegrityError, PermissionError, PreconditionError, kindOf, messageOf } from '../common/errors.js';
import { FILE_MODE, fsyncPath, isInside, mkdirPrivate } from '../common/fsutil.js';
import { HashingStream } from '../common/hash.js';
import { checkArtifacts } from '../common/verify.js';
import { PROGRESS_EVERY_MS, throttle } from '../common/throttle.js';
import { acquireLock } from '../common/lock.js';
import { checkSetId, readManifest, readManifestIfAny, restorableParts, setDir as setDirOf, type Artifact, type ComponentName, type ExternalData, type Part, type PartStatus } from '../common/manifest.js';
import type { BackupContext, Component, ReleaseContext, RestoreContext } from './components/component.js';
import { restoreFileSet } from './restore-files.js';
import { journal, recoverAfterCrash } from './recovery.js';
import { restoreReport } from './restore-report.js';
import { parseRestoreOptions, restoreOptionSchemas, type OptionComponent } from '../common/restore-options.js';
import { DEFAULT_ROLLBACK_KEEP_DAYS, pruneRollbacks, renameTarget, rollbackName } from './rollbacks.js';

export interface AgentRuntime {
  node: string;
  version: string;
  stateDir: string;
  compressionLevel: number;
  /** Every component this agent can serve (index.ts createComponents). */
  components: Map<ComponentName, Component>;
  /** Those agent.yaml names; the others are served only where detect() finds them. Absent: all are configured. */
  configured?: Set<ComponentName>;
  /** Rollback copies older than this are removed, except each component's newest (agent/rollbacks.ts). */
  rollbackKeepDays?: number;
  /** Info's size estimates, handed to the backup that follows (agent/estimates.ts); absent: each backup measures. */
  estimates?: Estimates;
  log: Logger;
}

export type ComponentPlan = { component: string; optional: boolean; facts: Record<string, string> };

export interface Found {
  component: Component;
  configured: boolean;
  present: boolean;
  detail: string;
}

/** Whether this node runs `c`: a configured component always does; another one when detect() finds it. */
export async function lookFor(rt: AgentRuntime, c: Component): Promise<Found> {
  const configured = !rt.configured || rt.configured.has(c.name);
  const d = await c.detect().catch((err: unknown) => ({ present: false, detail: messageOf(err) }));
  return { component: c, configured, present: configured || d.present, detail: configured && !d.present ? `configured in agent.yaml; ${d.detail}` : d.detail };
}

export type Emit = (ev: ProgressEvent) => void;

/** Emits at most one progress event per component every PROGRESS_EVERY_MS, and every message. */
function progressReporter(emit: Emit, node: string, component: string, total: number) {
  let done = 0;
  const due = throttle(PROGRESS_EVERY_MS);
  return Object.assign((delta: number, message?: string) => {
    done += delta;
    if (due(Boolean(message))) {
      emit({ node, component, phase: 'running', bytesDone: done, bytesTotal: Math.max(total, done), message: message ?? '' });
    }
  }, { done: () => done });
}

function pickComponents(rt: AgentRuntime, wanted: string[]): Component[] {
  if (wanted.length === 0) return [...rt.components.values()];
  return wanted.map((w) => {
    const c = rt.components.get(w as ComponentName);
    if (!c) throw new InputError(`component '${w}' is not configured on node ${rt.node} (it serves: ${[...rt.components.keys()].join(', ') || 'nothing'})`);
    return c;
  });
}

function relOf(setDir: string, abs: string): string {
  return path.relative(setDir, abs).split(path.sep).join('/');
}

async function backupOne(rt: AgentRuntime, c: Component, plan: ComponentPlan | undefined, backupId: string, setDir: string, node: string, emit: Emit, signal: AbortSignal, storeRun: StoreRun | undefined): Promise<ComponentResult> {
  const started = Date.now();
  const found = await lookFor(rt, c);
  if (!found.present) {
    // The cluster may not run it here (optional), or it should and does not: that is loud.
    const status = plan?.optional ? 'skipped' : 'failed';
    const reason = plan?.optional ? `not installed on ${node}: ${found.detail}` : `the inventory puts ${c.name} on ${node}, but it is not there: ${found.detail}`;
    rt.log.log(plan?.optional ? 'info' : 'error', `backup ${status}: ${reason}`, { backupId, component: c.name });
    const outDir = path.join(setDir, node, c.name);
    await mkdirPrivate(outDir);
    const skippedPart = { node, component: c.name, status: status as PartStatus, reason, artifacts: [], bytes: 0, durationMs: Date.now() - started, meta: {}, entryCount: 0 };
    return { ...skippedPart, external: [], record: await writePartRecord(setDir, skippedPart) };
  }
  const outDir = path.join(setDir, node, c.name);
  const log = rt.log.child({ backupId, node, component: c.name });
  const artifacts: Artifact[] = [];
  let trees = new PartTrees(storeRun, setDir, outDir, { node, component: c.name });
  const meta: Record<string, string> = {};
  const external = new Map<string, ExternalData>();
  const total = rt.estimates ? await rt.estimates.forBackup(c) : await c.estimateBytes().catch(() => 0);
  const progress = progressReporter(emit, node, c.name, total);
  emit({ node, component: c.name, phase: 'started', bytesTotal: total, backupId });
  const ctx: BackupContext = {
    backupId,
    node,
    setDir,
    outDir,
    log,
    signal,
    stateDir: rt.stateDir,
    compressionLevel: rt.compressionLevel,
    progress,
    meta,
    declareExternal(data) {
      external.set(data.key, { ...data });
    },
    facts: { ...(plan?.facts ?? {}) },
    async addTree(name, sources, opts) {
      const level = opts?.level ?? rt.compressionLevel;
      const artifact = await trees.add(name, sources, { level, exclude: opts?.exclude, linked: opts?.linked, onBytes: (n) => progress(n), signal, report: (line) => progress(0, line) });
      artifacts.push(artifact);
      return artifact;
    },
    async addStream(fileName: string, source: Readable) {
      const sealer = storeRun?.sealing?.sealer;
      // Format 4: the stream is stored as one age file, `<fileName>.age`.
      const file = path.join(outDir, sealer ? `${fileName}.age` : fileName);
      const hashing = new HashingStream((n) => progress(n));
      try {
        const out = createWriteStream(file, { mode: FILE_MODE, highWaterMark: 1 << 20 });
        await (sealer ? pipeline(source, sealer.sealStream(), hashing, out, { signal }) : pipeline(source, hashing, out, { signal }));
        await fsyncPath(file);
      } catch (err) {
        await fsp.rm(file, { force: true });
        throw err;
      }
      const artifact: Artifact = { path: relOf(setDir, file), kind: 'stream', size: hashing.bytes, sha256: hashing.digest(), mode: 0o100600 };
      artifacts.push(artifact);
      return artifact;
    },
  };
  /** The part's record goes to the shared location, last; the answer only names it (FORMAT.md "Format 2"). */
  const result = async (status: PartStatus, reason: string): Promise<ComponentResult> => {
    let entryCount = 0;
    let newBytes = 0;
    if (status !== 'failed') {
      const t = await trees.finish();
      artifacts.push(...t.artifacts);
      entryCount = t.entryCount;
      newBytes = t.newBytes;
    }
    await mkdirPrivate(outDir);
    const sealer = storeRun?.sealing?.sealer;
    // Format 4: the meta says what the part holds (database names, paths): encrypted, never in the clear record.
    if (sealer && status !== 'failed') artifacts.push(await writeSealed(setDir, path.join(outDir, META_ARTIFACT), sealer.seal(Buffer.from(JSON.stringify(meta))), 'meta'));
    const inSet = artifacts.reduce((s, a) => s + a.size, 0);
    const part = { node, component: c.name, status, reason, artifacts, bytes: inSet + trees.dataBytes, durationMs: Date.now() - started, meta: sealer ? {} : meta, external: [...external.values()], entryCount, ...(storeRun ? { newBytes: newBytes + inSet } : {}) };
    const record = await writePartRecord(setDir, part);
    return { ...part, artifacts: artifacts.map((a) => ({ ...a })), record };
  };
  try {
    await mkdirPrivate(outDir);
    const outcome = await c.backup(ctx);
    const r = await result(outcome.status, outcome.reason ?? '');
    log.info(`backup ${outcome.status}${outcome.reason ? `: ${outcome.reason}` : ''}`, { bytes: Number(r.bytes), entries: entryCountOf(r) });
    return r;
  } catch (err) {
    const reason = messageOf(err);
    log.error(`backup failed: ${reason}`);
    // A failed component leaves nothing behind that could pass for its backup: only its record, which says it failed.
    await trees.abort();
    await fsp.rm(outDir, { recursive: true, force: true }).catch(() => undefined);
    artifacts.length = 0;
    trees = new PartTrees(storeRun, setDir, outDir, { node, component: c.name });
    try {
      return await result('failed', reason);
    } catch (recordErr) {
      return { node, component: c.name, status: 'failed', reason: `${reason}; its record could not be written: ${messageOf(recordErr)}`, artifacts: [], bytes: 0, durationMs: Date.now() - started, meta: storeRun?.sealing ? {} : meta, external: [...external.values()], entryCount: 0, record: null };
    }
  }
}

const entryCountOf = (r: ComponentResult): number => Number(r.entryCount);

/** A format-4 part's meta artifact (FORMAT.md "Format 4"). */
const META_ARTIFACT = 'meta.json.age';

/** Writes one small sealed file of a part, durably, and gives its artifact. */
async function writeSealed(setDir: string, file: string, sealed: Buffer, kind: Artifact['kind']): Promise<Artifact> {
  await fsp.writeFile(file, sealed, { mode: FILE_MODE });
  await fsyncPath(file);
  return { path: relOf(setDir, file), kind, size: sealed.length, sha256: createHash('sha256').update(sealed).digest('hex'), mode: 0o100600 };
}

/** Backs up this node's components in parallel, straight into the set directory on the shared location. */
export async function backupNode(
  rt: AgentRuntime,
  req: { backupId: string; target: string; node: string; components: string[]; plans?: ComponentPlan[]; setFormat?: number; parentId?: string; recipients?: string[]; idKey?: Buffer },
  emit: Emit,
  signal: AbortSignal,
): Promise<ComponentResult[]> {
  const backupId = checkSetId(req.backupId);
  const node = req.node || rt.node;
  const chosen = pickComponents(rt, req.components);
  const setDir = setDirOf(req.target, backupId);
  const release = await acquireLock(path.join(rt.stateDir, 'agent.lock'), `backup ${backupId} of node ${node}`);
  try {
    await recoverAfterCrash(rt.stateDir, rt.log, { rollbacks: true });
    // Kept until the set is committed: then the next recovery removes what the manifest does not
    // list (a half-written artifact of this run, should the agent be killed or lost).
    await journal(rt.stateDir, `backup-${backupId}-${node}`, { kind: 'backup', backupId, setDir, node });
    await mkdirPrivate(path.join(setDir, node));
    const plans = new Map((req.plans ?? []).map((p) => [p.component, p]));
    // Format 3 when the coordinator asks for it (FORMAT.md "Format 3"); an older coordinator sends no format.
    // Format 4: format 3 sealed to the recipients the coordinator sends; the agent keeps no key (FORMAT.md "Format 4").
    if (req.setFormat === 4 && (!req.recipients?.length || req.idKey?.length !== 32)) throw new InputError('an encrypted backup (format 4) was asked for without recipients and a 32-byte key');
    const sealing = req.setFormat === 4 ? setSealing(req.recipients!, req.idKey!) : undefined;
    const storeRun = req.setFormat === 3 || sealing ? await openStoreRun(req.target, setDir, req.parentId ?? '', (line) => emit({ node, phase: 'info', message: line, backupId }), sealing) : undefined;
    const results = await Promise.all(chosen.map((c) => backupOne(rt, c, plans.get(c.name), backupId, setDir, node, emit, signal, storeRun)));
    for (const r of results) {
      emit({ node, component: r.component, phase: r.status === 'ok' ? 'done' : r.status, message: r.reason, bytesDone: r.bytes, bytesTotal: r.bytes, result: r, backupId });
    }
    return results;
  } finally {
    await release();
  }
}

/**
 * Restores one node's parts of a set onto this node, one component after another. `stop` is a
 * request to stop at the next safe point: before a component starts, or before the first file of
 * a component that has changed nothing yet is replaced. A component that has begun is never cut
 * short (a pg_restore killed half-way leaves a database dropped): it gets a signal that does not
 * abort, and runs to its end. Every component ends restored, failed, or cancelled with its old state.
 */
export async function restoreNode(
  rt: AgentRuntime,
  req: { backupId: string; target: string; node: string; components: string[]; dryRun: boolean; force: boolean; options: Record<string, string>; identity?: string; keyIds?: string[] },
  emit: Emit,
  stop: AbortSignal,
): Promise<ComponentResult[]> {
  const runsToItsEnd = new AbortController().signal;
  const backupId = checkSetId(req.backupId);
  // The parts of `source` are restored here; on a replacement host it is another node's name.
  const source = req.node || rt.node;
  const node = rt.node;
  const setDir = setDirOf(req.target, backupId);
  const read = req.force ? await readManifestIfAny(req.target, backupId) : await readManifest(req.target, backupId);
  if (!read) throw new IntegrityError(`backup '${backupId}' has no manifest; a forced restore still needs the manifest to know what to write`);
  // An encrypted set is believed only through the identity: its key file, then its manifest's MAC.
  const { manifest, opening } = await openSet(req.target, read, req.identity ?? '', req.keyIds ?? []);
  const parts = restorableParts(manifest, source, req.components);
  const components = parts.map((p) => {
    const c = rt.components.get(p.component as ComponentName);
    if (!c) throw new InputError(`component '${p.component}' is not configured on this agent (${rt.node}); configure it to restore here`);
    return c;
  });
  // Each component gets only its own options, checked against its schema (common/restore-options.ts) before anything is locked.
  const optionsOf = new Map(components.map((c) => [c, c.name in restoreOptionSchemas ? (parseRestoreOptions(c.name as OptionComponent, req.options) as Record<string, string>) : {}]));

  const release = await acquireLock(path.join(rt.stateDir, 'agent.lock'), `restore ${backupId} of node ${source}${source === node ? '' : ` onto ${node}`}`);
  try {
    await recoverAfterCrash(rt.stateDir, rt.log, { rollbacks: true });
    emit({ node, phase: 'running', message: `checking ${parts.reduce((s, p) => s + p.artifacts.length, 0)} artifacts against the manifest`, backupId });
    const bad = await checkArtifacts(setDir, parts);
    if (bad.length > 0) {
      if (!req.force) throw new IntegrityError(`refusing to restore: ${bad.length} file(s) fail their checksum: ${bad.join('; ')}`);
      emit({ node, phase: 'info', message: `--force: restoring despite ${bad.join('; ')}`, backupId });
    }
    const results: ComponentResult[] = [];
    // Every part's meta and streams are opened before anything is changed: a bad one stops the restore here.
    const opened = await openParts(rt.stateDir, setDir, parts, opening);
    try {
      for (let i = 0; i < parts.length; i++) {
        const part = opened.parts[i]!;
        const c = components[i]!;
        if (stop.aborted) {
          const r: ComponentResult = { node, component: c.name, status: 'cancelled', reason: 'cancelled before it started: it has its old state', artifacts: [], bytes: 0, durationMs: 0, meta: {}, external: [], entryCount: 0, record: null };
          results.push(r);
          emit({ node, component: c.name, phase: 'failed', message: r.reason, result: r, backupId });
          continue;
        }
        const started = Date.now();
        // Until the component changes something, a cancel may still stop it with its old state.
        let changed = false;
        const log = rt.log.child({ backupId, node, component: c.name });
        const total = part.artifacts.reduce((s, a) => s + a.size, 0);
        const progress = progressReporter(emit, node, c.name, total);
        const report = (line: string) => emit({ node, component: c.name, phase: 'info', message: line, backupId });
        const done = restoreReport();
        const ctx: RestoreContext = {
          backupId,
          node: source,
          host: node,
          setDir,
          part,
          dryRun: req.dryRun,
          force: req.force,
          options: optionsOf.get(c)!,
          log,
          signal: runsToItsEnd,
          changing: () => void (changed = true),
          stateDir: rt.stateDir,
          progress,
          report,
          artifactFile: (fileName) => opened.streamFile(part, fileName),
        streamArtifact: (fileName) => opened.stream(part, fileName),
          treeArtifact: (name) => treeArtifactOf(part, name),
          entries: (archive) => loadEntries(setDir, part, archive, opening?.opener),
          rollbackTarget: (near) => renameTarget(rt.stateDir, near, rollbackName(backupId, c.name)),
          keptRollback: done.keptRollback,
          restarted: done.restarted,
          restoreFiles: async (o) => {
            const outside = o?.roots?.find((r) => !c.restorePaths.some((p) => isInside(path.resolve(p), path.resolve(r.to))));
            if (outside) throw new PermissionError(`refusing to restore into ${outside.to}: outside ${c.name}'s paths ${c.restorePaths.join(', ')}`);
            const args = { setDir, opening, part, backupId, restorePaths: c.restorePaths, roots: o?.roots, stateDir: rt.stateDir, dryRun: req.dryRun, archive: o?.archive, only: o?.only, validate: o?.validate };
            const r = await restoreFileSet({ ...args, onBytes: (n) => progress(n), report, signal: changed ? undefined : stop });
            changed = true;
            if (r.rollbackDir) await done.keptRollback(r.rollbackDir, { replaced: `${r.restored} entries in ${r.roots.join(', ')}`, howTo: r.howTo });
            return r;
          },
        };
        emit({ node, component: c.name, phase: 'started', bytesTotal: total, backupId, message: req.dryRun ? 'dry run' : '' });
        let status = 'ok';
        let reason = '';
        try {
          await c.restore(ctx);
          log.info(req.dryRun ? 'restore dry run done' : 'restored');
        } catch (err) {
          status = kindOf(err) === 'cancelled' ? 'cancelled' : 'failed';
          reason = messageOf(err);
          log.error(`restore ${status}: ${reason}`);
        }
        // What the component restored (one database of --database), not the whole part, when it said.
        const bytes = progress.done() > 0 && !req.dryRun ? progress.done() : total;
        const r: ComponentResult = { node, component: c.name, status, reason, artifacts: [], bytes, durationMs: Date.now() - started, meta: done.meta(), external: [], entryCount: 0, record: null };
        for (const line of done.lines(`${part.node === rt.node ? '' : `${part.node}'s `}${c.name}`)) report(line);
        results.push(r);
        emit({ node, component: c.name, phase: status === 'ok' ? 'done' : 'failed', message: reason, bytesDone: total, bytesTotal: total, result: r, backupId });
      }
    } finally {
      await opened.close();
    }
    if (!req.dryRun) await pruneRollbacks(rt.stateDir, rt.rollbackKeepDays ?? DEFAULT_ROLLBACK_KEEP_DAYS, rt.log);
    return results;
  } finally {
    await release();
  }
}

/**
 * The parts of a restore with their meta, and where their streams are: in the set, or for an
 * encrypted set decrypted into a private directory of the agent's state dir, removed at close()
 * (components read dumps by path: pg_restore, sqlite, import_definitions).
 */
async function openParts(stateDir: string, setDir: string, parts: Part[], opening: SetOpening | undefined) {
  const inSet = (part: Part, fileName: string) => path.join(setDir, part.node, part.component, fileName);
  const stored = (part: Part, fileName: string) => {
    const a = part.artifacts.find((x) => x.path === `${part.node}/${part.component}/${fileName}`);
    return a ? { file: inSet(part, fileName), size: a.size, sha256: a.sha256 } : undefined;
  };
  if (!opening) return { parts, streamFile: inSet, stream: stored, close: async () => undefined };
  const dir = await fsp.mkdtemp(path.join(stateDir, 'opened-'));
  await fsp.chmod(dir, 0o700);
  const files = new Map<string, { file: string; size: number; sha256: string }>();
  try {
    const withMeta: Part[] = [];
    for (const part of parts) {
      withMeta.push({ ...part, meta: await partMeta(setDir, part, opening) });
      for (const a of part.artifacts.filter((x) => x.kind === 'stream')) {
        const plain = path.join(dir, `${files.size}`);
        const hashing = new HashingStream();
        await pipeline(createReadStream(path.join(setDir, a.path), { highWaterMark: 1 << 20 }), opening.opener.openStream(a.path), hashing, createWriteStream(plain, { mode: FILE_MODE, highWaterMark: 1 << 20 }));
        files.set(a.path.replace(/\.age$/, ''), { file: plain, size: hashing.bytes, sha256: hashing.digest() });
      }
    }
    return {
      parts: withMeta,
      streamFile: (part: Part, fileName: string) => files.get(`${part.node}/${part.component}/${fileName}`)?.file ?? inSet(part, `${fileName}.age`),
      stream: (part: Part, fileName: string) => files.get(`${part.node}/${part.component}/${fileName}`),
      close: () => fsp.rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Deletes what one part of a set keeps outside the set directory, before the coordinator removes
 * the set. The component's failure is the answer, so the caller can tell it from a lost agent.
 */
export async function releasePart(
  rt: AgentRuntime,
  req: { backupId: string; target: string; node: string; component: string; meta: Record<string, string>; external?: ExternalData | null },
  signal: AbortSignal,
): Promise<AgentReleaseReply> {
  const backupId = checkSetId(req.backupId);
  const c = pickComponents(rt, [req.component])[0]!;
  if (!c.release) throw new PreconditionError(`component '${c.name}' keeps nothing outside the set to release`);
  const node = req.node || rt.node;
  const log = rt.log.child({ backupId, node, component: c.name });
  const ctx: ReleaseContext = { backupId, node, setDir: setDirOf(req.target, backupId), meta: req.meta, external: req.external ?? undefined, log, signal };
  try {
    const message = await c.release(ctx);
    log.info(message);
    return { released: true, message };
  } catch (err) {
    const message = messageOf(err);
    log.error(`release failed: ${message}`);
    return { released: false, message };
  }
}
