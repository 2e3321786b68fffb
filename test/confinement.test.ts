/**
 * checkConfinement when entries are restored somewhere else than where they were archived
 * (Prometheus: snapshot dir -> staging dir): destinations map under `to`, and nothing may land
 * outside `to`, including a symlink back at the original `from` location.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Entry } from '../common/manifest.js';
import { checkConfinement } from '../agent/restore-files.js';
import type { Component, RestoreContext } from '../agent/components/component.js';
import { PermissionError } from '../common/errors.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';

const from = '/snap/S';
const to = '/stage/T';
const roots = [{ from, to }];

const entry = (p: string, over: Partial<Entry> = {}): Entry => ({ archive: 'a.zip', name: p.slice(1), path: p, type: 'file', size: 4, sha256: '', mode: 0o100644, uid: 0, gid: 0, mtimeNs: '0', linkTarget: '', ...over });
const link = (p: string, linkTarget: string) => entry(p, { type: 'symlink', linkTarget });
const valid = [entry(from, { type: 'dir' }), entry(`${from}/d`, { type: 'dir' }), entry(`${from}/d/f`), link(`${from}/d/l`, '../d/f')];

function assertRefused(bad: Entry, message: RegExp): void {
  assert.throws(
    () => checkConfinement([...valid, bad], roots),
    (err) => err instanceof PermissionError && message.test(err.message),
  );
}

describe('checkConfinement with from !== to', () => {
  test('a valid tree maps to the same relative places under to', () => {
    const dest = checkConfinement(valid, roots);
    assert.deepEqual(valid.map((e) => dest.get(e)), [to, `${to}/d`, `${to}/d/f`, `${to}/d/l`]);
  });

  test("'..' in a path/name is refused", () => {
    assertRefused(entry(`${from}/../evil`), /refusing entry '\/snap\/S\/\.\.\/evil': not a plain absolute path/);
  });

  test('an absolute name is refused', () => {
    assertRefused(entry(`${from}/d/g`, { name: `${from}/d/g` }), /refusing entry '\/snap\/S\/d\/g': its name does not match its path/);
  });

  test('a name that does not match its path is refused', () => {
    assertRefused(entry(`${from}/d/g`, { name: 'etc/passwd' }), /refusing entry 'etc\/passwd': its name does not match its path \/snap\/S\/d\/g/);
  });

  test('an entry outside every from is refused, including a sibling prefix', () => {
    assertRefused(entry('/etc/passwd'), /refusing entry '\/etc\/passwd': outside the component's paths \/snap\/S$/);
    assertRefused(entry('/snap/S2/f'), /refusing entry '\/snap\/S2\/f': outside the component's paths/);
  });

  test('a relative symlink pointing out of to is refused', () => {
    assertRefused(link(`${from}/d/out`, '../../x'), /refusing symlink '\/snap\/S\/d\/out' -> '\.\.\/\.\.\/x': it points outside \/stage\/T$/);
  });

  test('an absolute symlink pointing back at the original from location is refused', () => {
    assertRefused(link(`${from}/d/back`, `${from}/d/f`), /refusing symlink '\/snap\/S\/d\/back' -> '\/snap\/S\/d\/f': it points outside \/stage\/T$/);
  });
});

/** A component that archives `src` and restores it wherever `roots` says (Prometheus' staging, in small). */
function relocating(src: string, restorePaths: string[], rootsOf: () => { from: string; to: string }[]): Component {
  return {
    name: 'haproxy',
    restorePaths,
    detect: async () => ({ present: true, detail: 'test' }),
    estimateBytes: async () => 0,
    health: async () => ({ status: 'ok', detail: 'test' }),
    async backup(ctx) {
      await ctx.addTree('files', [src]);
      return { status: 'ok' };
    },
    async restore(ctx: RestoreContext) {
      await ctx.restoreFiles({ roots: rootsOf() });
    },
  };
}

describe('restoreFiles with a root mapping (RestoreContext)', () => {
  test('entries land under `to` with their content and mode; the archived place is left alone', async () => {
    const root = tempDir('relocate');
    const src = path.join(root, 'src');
    const staging = path.join(root, 'area', 'staging');
    await fsp.mkdir(path.join(src, 'd'), { recursive: true });
    await fsp.writeFile(path.join(src, 'd', 'f'), 'archived\n', { mode: 0o640 });
    const rt = runtimeOf([relocating(src, [src, path.join(root, 'area')], () => [{ from: src, to: staging }])]);
    const target = tempDir('relocate-target');
    const { id } = await backupLocal(rt, target);
    await fsp.writeFile(path.join(src, 'd', 'f'), 'changed since\n');

    const dry = await restoreLocal(rt, target, id, { dryRun: true });
    assert.deepEqual(dry.results.map((r) => r.status), ['ok'], JSON.stringify(dry.results));
    assert.ok(dry.events.some((e) => e.message === `would restore file ${path.join(staging, 'd', 'f')}`), 'a dry run names where each entry would go');
    assert.equal(existsSync(staging), false, 'a dry run writes nothing');

    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
    assert.equal(await fsp.readFile(path.join(staging, 'd', 'f'), 'utf8'), 'archived\n');
    assert.equal((await fsp.stat(path.join(staging, 'd', 'f'))).mode & 0o777, 0o640);
    assert.equal(await fsp.readFile(path.join(src, 'd', 'f'), 'utf8'), 'changed since\n', 'only the mapped place is written');
  });

  test('a `to` outside the component\'s restorePaths is refused before anything is written', async () => {
    const root = tempDir('relocate-out');
    const src = path.join(root, 'src');
    const outside = path.join(root, 'elsewhere');
    await fsp.mkdir(src, { recursive: true });
    await fsp.writeFile(path.join(src, 'f'), 'x\n');
    const rt = runtimeOf([relocating(src, [src], () => [{ from: src, to: outside }])]);
    const target = tempDir('relocate-out-target');
    const { id } = await backupLocal(rt, target);
    const r = await restoreLocal(rt, target, id);
    assert.equal(r.results[0]!.status, 'failed');
    assert.equal(r.results[0]!.reason, `refusing to restore into ${outside}: outside haproxy's paths ${src}`);
    assert.equal(existsSync(outside), false);
  });
});
