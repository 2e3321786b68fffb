import type { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { Artifact, ComponentName, Entry, ExternalData, Part } from '../../common/manifest.js';
import type { StagedTree } from '../staged-tree.js';
import type { RestoredFiles } from '../restore-files.js';

/** What the agent found of a component on its node (`lsbackup agents` shows it). */
export interface Detection {
  /** The component is installed here: a backup of it is expected to work. */
  present: boolean;
  /** What was found ("PostgreSQL 14 at /etc/postgresql/14/main, peer auth as postgres"), or looked for. */
  detail: string;
}

/**
 * Facts about the cluster that the node alone cannot tell, from the build directory's inventory
 * and manifest.yml (keys in docs/LAMBDASTACK.md): `es_cluster`, `replication`, `rabbitmq_plugins`, ...
 */
export type ClusterFacts = Record<string, string>;

export interface Health {
  status: 'ok' | 'degraded' | 'down' | 'unknown';
  detail: string;
}

/** What a component's backup gets: where to write, and how to record what it wrote. */
export interface BackupContext {
  backupId: string;
  node: string;
  /** Set directory on the shared location: <target>/<id>. */
  setDir: string;
  /** This component's directory in the set, created owner-only: <target>/<id>/<node>/<component>. */
  outDir: string;
  log: Logger;
  signal: AbortSignal;
  /** Agent-private scratch space (never the shared location). */
  stateDir: string;
  compressionLevel: number;
  /** Reports bytes written so far and, optionally, what is happening. */
  progress(deltaBytes: number, message?: string): void;
  /**
   * Archives files/directories as the tree `name`: format 3 lists them in `<name>.tree.jsonl.gz`
   * with their data in the store, reading only what changed since the parent set; format 2 writes
   * `<name>.tar.gz` (`.tar` at level 0) and the part's entries artifact. `linked`: a tree of hard
   * links made anew for each backup (a Prometheus snapshot), matched without ctime (FORMAT.md).
   */
  addTree(name: string, sources: string[], opts?: { exclude?: (abs: string) => boolean; level?: number; linked?: boolean }): Promise<Artifact>;
  /** Stores a stream as it is into <outDir>/<fileName>, hashed on the way. */
  addStream(fileName: string, source: Readable): Promise<Artifact>;
  /** Facts restore will need (snapshot names, node names); never secrets. */
  meta: Record<string, string>;
  /**
   * Records data this part keeps outside the set directory (a snapshot in a shared repository),
   * as soon as it exists: a part that fails afterwards still names it. Removing the set has this
   * component's release() delete it; prune and delete know nothing else of it.
   */
  declareExternal(data: ExternalData): void;
  /** What the build directory says of this component on this host; empty without one. */
  facts: ClusterFacts;
}

export interface BackupOutcome {
  status: 'ok' | 'skipped';
  reason?: string;
}

/** A directory replaced data is moved into by rename (agent/rollbacks.ts); sealed once whole. */
export interface RollbackTarget {
  dir: string;
  seal(): Promise<void>;
  discard(): Promise<void>;
}

export interface RestoreContext {
  backupId: string;
  /** The node the part was backed up on. */
  node: string;
  /** This node, restored onto: another name than `node` when a replacement host receives the parts. */
  host: string;
  setDir: string;
  part: Part;
  dryRun: boolean;
  force: boolean;
  options: Record<string, string>;
  log: Logger;
  /** Never aborted by a cancel: a component that has begun runs to its end (the runner stops between components). */
  signal: AbortSignal;
  /**
   * Says the component is about to change the node in a way other than restoreFiles (a database
   * dropped, definitions imported, a snapshot restored): from here a cancel waits for its end.
   */
  changing(): void;
  stateDir: string;
  progress(deltaBytes: number, message?: string): void;
  /** Tells the operator what was done ("created database shop", "rollback copy in ..."). */
  report(line: string): void;
  /** Absolute path of one of this part's artifacts, by file name. */
  artifactFile(fileName: string): string;
  /**
   * The stream `fileName` as the component stored it (addStream), or undefined when the part has
   * none: where to read it and its size and SHA-256. For an encrypted set (format 4) it is the
   * decrypted copy, and the size and digest are of what was decrypted.
   */
  streamArtifact(fileName: string): { file: string; size: number; sha256: string } | undefined;
  /** The set path of the part's tree artifact named `name` (as addTree had it), of either format; undefined when the part has none. */
  treeArtifact(name: string): string | undefined;
  /** The part's entries (of one archive), read from the set: a restore plans over all of them. */
  entries(archive?: string): Promise<Entry[]>;
  /** Where to move what a restore replaces, by rename, when copying it would cost too much (a TSDB). */
  rollbackTarget(near: string): Promise<RollbackTarget>;
  /** For the end-of-restore report: what was replaced, its rollback copy, and the command that puts it back. */
  keptRollback(dir: string, what: { replaced: string; howTo: string }): Promise<void>;
  /** For the end-of-restore report: a service the restore stopped and started, or restarted. */
  restarted(what: string): void;
  /**
   * Puts the part's archived files back, confined to the component's restorePaths: verifies every
   * file against the manifest first, keeps a rollback copy of what it replaces, restores modes,
   * owners, mtimes and symlinks. `validate` sees the new files (by original path -> staged path)
   * before anything is replaced and may refuse them; `tree.run` runs a check that sees all of
   * the part's new files at their original paths.
   */
  restoreFiles(opts?: {
    archive?: string;
    only?: (e: Entry) => boolean;
    validate?: (staged: Map<string, string>, tree: StagedTree) => Promise<void>;
    /** Entries archived under `from` go under `to` instead of back where they were; every `to` must lie in restorePaths. */
    roots?: { from: string; to: string }[];
  }): Promise<RestoredFiles>;
}

/** What releasing a part's outside data gets: the set, and the part's manifest meta naming that data. */
export interface ReleaseContext {
  backupId: string;
  /** The node the part came from. */
  node: string;
  setDir: string;
  meta: Record<string, string>;
  /** The datum to release, as the part declared it; absent for a set written before 1.3. */
  external?: ExternalData;
  log: Logger;
  signal: AbortSignal;
}

/** Every component has this shape: what it backs up, where it restores to, how it checks health. */
export interface Component {
  readonly name: ComponentName;
  /** The only paths restore may write to. */
  readonly restorePaths: string[];
  /**
   * Looks for the component on this node, the way LambdaStack installs it (and the way the
   * component's settings say, where agent.yaml has them). Never throws: what went wrong is the detail.
   */
  detect(): Promise<Detection>;
  estimateBytes(): Promise<number>;
  health(): Promise<Health>;
  backup(ctx: BackupContext): Promise<BackupOutcome>;
  restore(ctx: RestoreContext): Promise<void>;
  /**
   * Only for a component that keeps a part's data outside the set directory (declareExternal):
   * deletes it before the set is removed. Data already gone counts as released. Says what it did.
   */
  release?(ctx: ReleaseContext): Promise<string>;
}
