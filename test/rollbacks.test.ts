/**
 * The rule that removes rollback copies (agent/rollbacks.ts): older than rollback_keep_days goes,
 * each component's newest stays whatever its age, a copy kept beside its data (another file
 * system) goes with its pointer, and copies still being made are not this rule's business.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createLogger } from '../common/log.js';
import { POINTER_SUFFIX, pruneRollbacks, renameTarget, rollbackName, rollbackRoot } from '../agent/rollbacks.js';
import { tempDir } from './helpers/harness.js';

const DAY = 86_400_000;
const log = createLogger('test', 'error');

async function copyAt(stateDir: string, component: string, at: number): Promise<string> {
  const dir = path.join(rollbackRoot(stateDir), rollbackName('20261201T000000Z', component, at));
  await fsp.mkdir(path.join(dir, 'etc'), { recursive: true });
  await fsp.writeFile(path.join(dir, '.lsbackup-complete'), 'x');
  return dir;
}

test('copies older than keep days go; the newest of each component stays, however old', async () => {
  const state = tempDir('rollbacks');
  const now = Date.now();
  const oldHaproxy = await copyAt(state, 'haproxy', now - 20 * DAY);
  const newestHaproxy = await copyAt(state, 'haproxy', now - 10 * DAY);
  const recentGrafana = await copyAt(state, 'grafana', now - 2 * DAY);
  const olderGrafana = await copyAt(state, 'grafana', now - 3 * DAY);
  const onlyPostgres = await copyAt(state, 'postgresql', now - 400 * DAY);
  const partial = path.join(rollbackRoot(state), `${rollbackName('20261201T000000Z', 'kibana', now - 30 * DAY)}.partial`);
  await fsp.mkdir(partial);

  const removed = await pruneRollbacks(state, 7, log, now);
  assert.deepEqual(removed.sort(), [oldHaproxy].sort());
  const left = (await fsp.readdir(rollbackRoot(state))).sort();
  assert.deepEqual(left, [newestHaproxy, recentGrafana, olderGrafana, onlyPostgres, partial].map((d) => path.basename(d)).sort());

  // keep 0 days: only each component's newest is left.
  await pruneRollbacks(state, 0, log, now);
  assert.deepEqual((await fsp.readdir(rollbackRoot(state))).sort(), [newestHaproxy, recentGrafana, onlyPostgres, partial].map((d) => path.basename(d)).sort());
});

test('a copy kept beside its data goes with its pointer; an unsealed one is discarded whole', async () => {
  const state = tempDir('rollbacks');
  const data = tempDir('tsdb');
  const now = Date.now();
  // Same file system here, so the copy lands under state_dir; a pointer is what another file system gives.
  const under = await renameTarget(state, data, rollbackName('20261201T000000Z', 'prometheus', now - 30 * DAY));
  assert.equal(path.dirname(under.dir), rollbackRoot(state));
  await under.seal();
  assert.ok((await fsp.readdir(under.dir)).includes('.lsbackup-complete'));

  const beside = path.join(data, '.lsbackup-rollback-old');
  await fsp.mkdir(beside);
  await fsp.writeFile(path.join(beside, 'block'), 'old data');
  const pointer = path.join(rollbackRoot(state), rollbackName('20261201T000000Z', 'prometheus', now - 20 * DAY) + POINTER_SUFFIX);
  await fsp.writeFile(pointer, `${beside}\n`);
  await copyAt(state, 'prometheus', now - DAY);

  const removed = await pruneRollbacks(state, 7, log, now);
  assert.deepEqual(removed.sort(), [under.dir, beside].sort());
  assert.equal(await fsp.stat(beside).catch(() => 'gone'), 'gone');
  assert.equal(await fsp.stat(pointer).catch(() => 'gone'), 'gone');

  const discarded = await renameTarget(state, data, rollbackName('20261201T000000Z', 'prometheus'));
  await discarded.discard();
  assert.equal(await fsp.stat(discarded.dir).catch(() => 'gone'), 'gone');
});
