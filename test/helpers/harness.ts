/**
 * Drives one agent runtime in-process, without gRPC: back up components into a committed set and
 * restore them. Component tests use it to exercise a component against its real server; the
 * end-to-end tests go through the CLI, coordinator and agents instead, on a cluster made here too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm as rmAsync } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ProgressEvent } from '../../proto/generated/lsbackup/v1/ProgressEvent.js';
import { backupNode, restoreNode, type AgentRuntime } from '../../agent/runner.js';
import type { Component } from '../../agent/components/component.js';
import { commitSet, partFromAnswer } from '../../common/commit.js';
import { loadEntries } from '../../common/entries-file.js';
import { createLogger } from '../../common/log.js';
import { mkdirPrivate } from '../../common/fsutil.js';
import { FORMAT, FORMAT_2, FORMAT_4, newSetId, setDir, type ComponentName, type Entry, type Manifest, type Part } from '../../common/manifest.js';
import type { ComponentResult__Output as ComponentResult } from '../../proto/generated/lsbackup/v1/ComponentResult.js';
import { DemoCluster, type ClusterOptions } from '../../demo/cluster.js';
import type { AgeOpener } from '../../common/age.js';
import { publishKey, type BackupKey } from '../../common/keys.js';
import { STORE_DIR } from '../../common/store.js';

const made: string[] = [];
// Each test file runs in its own process: its sandboxes go when it ends, pass or fail.
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `lsb-${prefix}-`));
  made.push(dir);
  return dir;
}

/**
 * Scratch directories that hold secrets (password hashes, a broker's data): `removeAll` in the
 * suite's after hook removes them as soon as the suite is done, not only when the process ends.
 */
export function scratchSpace(): { dir(prefix: string): string; removeAll(): Promise<void> } {
  const dirs: string[] = [];
  return {
    dir(prefix) {
      const d = tempDir(prefix);
      dirs.push(d);
      return d;
    },
    removeAll: async () => {
      await Promise.all(dirs.splice(0).map((d) => rmAsync(d, { recursive: true, force: true })));
    },
  };
}

/** A suite's cluster: made, changed by `prepare` while nothing runs yet, then started. */
export async function startCluster(options: ClusterOptions, prepare?: (c: DemoCluster) => Promise<void>): Promise<DemoCluster> {
  const c = await DemoCluster.create(options);
  await prepare?.(c);
  await c.start();
  return c;
}

/** Stops and removes a suite's cluster, if it was made at all. */
export async function dropCluster(c: DemoCluster | undefined): Promise<void> {
  await c?.stop();
  await c?.remove();
}

export function runtimeOf(components: Component[], stateDir = tempDir('state'), node = 'node1'): AgentRuntime {
  return {
    node,
    version: 'test',
    stateDir,
    compressionLevel: 6,
    components: new Map(components.map((c) => [c.name as ComponentName, c])),
    log: createLogger('test-agent', process.env.LSBACKUP_LOG_LEVEL ?? 'warn'),
  };
}

let lastId = '';
/** Ids have one-second resolution; tests take many sets in a row. */
async function freshId(): Promise<string> {
  let id = newSetId();
  while (id <= lastId) {
    await new Promise((r) => setTimeout(r, 200));
    id = newSetId();
  }
  lastId = id;
  return id;
}

/** A part with its entries read in, whatever its format: what tests look into. */
export type PartWithEntries = Part & { entries: Entry[] };
export type ManifestWithEntries = Omit<Manifest, 'parts'> & { parts: PartWithEntries[] };

/** A copy of a committed manifest with every part's entries read from the set, for assertions only (restores read the set itself). Format 4's need `opener`; without it they are left empty. */
export async function withEntries(dir: string, m: Manifest, opener?: AgeOpener): Promise<ManifestWithEntries> {
  if (m.format === FORMAT_4 && !opener) return { ...m, parts: m.parts.map((p) => ({ ...p, entries: [] })) };
  return { ...m, parts: await Promise.all(m.parts.map(async (p) => ({ ...p, entries: await loadEntries(dir, p, undefined, opener) }))) };
}

/** Commits agent answers as the coordinator does: each part from its record on the target. */
export async function partsFromAnswers(dir: string, results: ComponentResult[]): Promise<Part[]> {
  return Promise.all(results.map((r) => partFromAnswer(dir, r)));
}

/** In-process backups write format 3 (with `parentId`, the set to compare against) unless told `format: 2`. */
export async function backupLocal(rt: AgentRuntime, target: string, components: string[] = [], opts: { format?: 2 | 3; parentId?: string; key?: BackupKey; opener?: AgeOpener } = {}): Promise<{ id: string; manifest: ManifestWithEntries; events: ProgressEvent[] }> {
  const id = await freshId();
  const dir = setDir(target, id);
  await mkdirPrivate(dir);
  const events: ProgressEvent[] = [];
  const startedAt = new Date().toISOString();
  // With a key, as the coordinator does: format 4, the key file in the store first, the MAC at the commit.
  const setFormat = opts.key ? 4 : (opts.format ?? 3);
  if (opts.key) await publishKey(path.join(target, STORE_DIR), opts.key);
  const keyed = opts.key ? { recipients: opts.key.recipients, idKey: opts.key.idKey } : {};
  const results = await backupNode(rt, { backupId: id, target, node: rt.node, components, setFormat, parentId: opts.parentId ?? '', ...keyed }, (e) => events.push(e), new AbortController().signal);
  const encryption = opts.key ? { encryption: { recipients: opts.key.recipients, keyId: opts.key.keyId } } : {};
  const format = setFormat === 4 ? FORMAT_4 : setFormat === 3 ? FORMAT : FORMAT_2;
  const manifest = await commitSet(dir, format, { id, startedAt, buildDir: '', nodes: { [rt.node]: { address: 'in-process' } }, notCovered: [], ...encryption }, await partsFromAnswers(dir, results), [], opts.key?.idKey);
  return { id, manifest: await withEntries(dir, manifest, opts.opener), events };
}

export async function restoreLocal(
  rt: AgentRuntime,
  target: string,
  id: string,
  opts: { components?: string[]; dryRun?: boolean; force?: boolean; options?: Record<string, string>; identity?: string; keyIds?: string[] } = {},
) {
  const events: ProgressEvent[] = [];
  const results = await restoreNode(
    rt,
    { backupId: id, target, node: rt.node, components: opts.components ?? [], dryRun: opts.dryRun ?? false, force: opts.force ?? false, options: opts.options ?? {}, identity: opts.identity, keyIds: opts.keyIds },
    (e) => events.push(e),
    new AbortController().signal,
  );
  return { results, events };
}
