import { z } from 'zod';
import type { ComponentName } from '../../common/manifest.js';
import { duBytes, exists } from '../../common/fsutil.js';
import { absolutePath, command } from '../../common/config.js';
import { run } from '../../common/exec.js';
import type { Component, Detection, Health, RestoreContext } from './component.js';
import type { StagedTree } from '../staged-tree.js';

/** Config keys every file-based part shares: which paths, and what to run after a restore. */
export const filesSchema = {
  /** Commands run after files are back (e.g. reload the service); never run on a dry run. */
  after_restore_command: command.optional(),
};

export const filesArtifact = 'files';

export interface FilesOptions {
  /** Files only this component's install leaves (its main config); default: the paths themselves. */
  markers?: string[];
  exclude?: (abs: string) => boolean;
  validate?: (staged: Map<string, string>, ctx: RestoreContext, tree: StagedTree) => Promise<void>;
  afterRestore?: string[];
}

/**
 * A component that is nothing but files (HAProxy, the config part of the others). It is also
 * the building block the data components call for their config files.
 */
export function filesComponent(name: ComponentName, paths: string[], opts: FilesOptions = {}): Component {
  return {
    name,
    restorePaths: paths,
    detect: () => detectPaths(name, opts.markers ?? paths),
    estimateBytes: () => duBytes(paths, opts.exclude),
    health: () => filesHealth(paths),
    async backup(ctx) {
      await ctx.addTree(filesArtifact, paths, { exclude: opts.exclude });
      return { status: 'ok' };
    },
    async restore(ctx) {
      await restoreFilesThenRun(ctx, opts);
    },
  };
}

export async function restoreFilesThenRun(ctx: RestoreContext, opts: FilesOptions, archive = filesArtifact): Promise<void> {
  const arch = ctx.treeArtifact(archive);
  if (!arch) return;
  await ctx.restoreFiles({ archive: arch, validate: opts.validate ? (staged, tree) => opts.validate!(staged, ctx, tree) : undefined });
  if (opts.afterRestore && !ctx.dryRun) {
    await run(opts.afterRestore, { signal: ctx.signal });
    ctx.restarted(`'${opts.afterRestore.join(' ')}' (after_restore_command)`);
  }
}

export async function filesHealth(paths: string[]): Promise<Health> {
  const present: string[] = [];
  for (const p of paths) if (await exists(p)) present.push(p);
  if (present.length === 0) return { status: 'down', detail: `none of ${paths.join(', ')} exists` };
  return { status: 'ok', detail: `${present.length}/${paths.length} paths present` };
}

export const pathList = z.array(absolutePath);

/** Present when any of `markers` exists: what a package or a LambdaStack role leaves on a node. */
export async function detectPaths(what: string, markers: string[]): Promise<Detection> {
  const found: string[] = [];
  for (const p of markers) if (await exists(p)) found.push(p);
  if (found.length === 0) return { present: false, detail: `no ${what} here (looked for ${markers.join(', ')})` };
  return { present: true, detail: `${what}: ${found.join(', ')}` };
}
