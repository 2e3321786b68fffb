/**
 * Crash safety of format 3 (issue 14, FORMAT.md "Writing a piece"): an agent or the coordinator
 * killed with SIGKILL at a random point of a backup (several seeds) never leaves a set that
 * names a piece the store does not hold: after each kill, every complete set verifies (every
 * piece read), and the next backup is complete, takes what it can from its parent, and verifies.
 * The same for the coordinator killed in the middle of a prune.
 */
import { after, before, describe, test } from 'node:test';
import { rng } from '../bench/data.js';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DemoCluster } from '../demo/cluster.js';
import { DemoCluster as Cluster } from '../demo/cluster.js';
import { dropCluster, startCluster } from './helpers/harness.js';
import { waitFor } from './helpers/ops.js';
import { lockFileOf } from '../coordinator/target.js';
import YAML from 'yaml';
import { performance } from 'node:perf_hooks';

type Summary = { backupId: string; status: string; reasons: string[] };


describe('format 3 under SIGKILL', () => {
  let c: DemoCluster;
  before(async () => {
    c = await startCluster({ groups: [['haproxy'], ['haproxy']], agentConfig: { compression_level: 1 } }, async (cl) => {
      for (const n of cl.nodes) {
        const dir = path.join(n.root, 'etc/haproxy/maps');
        await fsp.mkdir(dir, { recursive: true });
        for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(dir, `m${i}.map`), `${n.name} map ${i} ${randomBytes(600).toString('hex')}\n`);
        await fsp.writeFile(path.join(dir, 'geo.bin'), randomBytes(18 << 20));
      }
    });
  });
  after(async () => {
    await dropCluster(c);
  });

  const completeSets = async (): Promise<string[]> => {
    const r = await c.cli(['--json', 'list', '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    return Cluster.result<{ backupId: string; status: string }[]>(r.stdout).filter((s) => s.status === 'complete').map((s) => s.backupId);
  };

  /** A backup that may find an agent still finishing the killed run (its lock): asked again until it starts. */
  const backupUntilComplete = async (): Promise<Summary> =>
    waitFor('a complete backup after the kill', async () => {
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      const s = Cluster.result<Summary>(r.stdout);
      return s.status === 'complete' ? s : undefined;
    }, 60_000, 1_000);

  for (const seed of [11, 23, 37, 51]) {
    test(`seed ${seed}: a random kill of an agent or the coordinator mid-backup leaves every complete set whole`, async () => {
      const rand = rng(seed);
      const n = c.nodes[Math.floor(rand() * 2)]!;
      // Something new to write every round: new pieces are in flight when the kill comes.
      await fsp.writeFile(path.join(n.root, 'etc/haproxy/maps', `new-${seed}.bin`), randomBytes(9 << 20));
      await fsp.appendFile(path.join(n.root, 'etc/haproxy/maps/m7.map'), `round ${seed}\n`);
      const victim = rand() < 0.5 ? 'coordinator' : 'agent';
      const delay = 150 + Math.floor(rand() * 1500);
      const running = c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      await new Promise((r) => setTimeout(r, delay));
      if (victim === 'agent') await c.killAgent(n);
      else c.coordinator!.kill('SIGKILL');
      await running;
      if (victim === 'agent') await c.startAgent(n);
      else await c.startCoordinator();

      for (const id of await completeSets()) {
        const v = await c.cli(['verify', id, '-t', c.target]);
        assert.equal(v.code, 0, `seed ${seed}, ${victim} killed after ${delay} ms: set ${id}: ${v.stdout}${v.stderr}`);
      }
      const s = await backupUntilComplete();
      const v = await c.cli(['verify', s.backupId, '-t', c.target]);
      assert.equal(v.code, 0, `seed ${seed}: the backup after the kill: ${v.stdout}${v.stderr}`);
    });
  }
});

/*
 * A prune killed at a random point (issue 14): the coordinator is SIGKILLed while it holds the
 * target's lock, somewhere in removing sets (manifest first), the mark or the sweep. After each
 * kill every set that still reads as complete verifies piece by piece, the stale lock is cleared by
 * the next run, a new backup is complete and verifies, and the next prune finishes the job.
 */
describe('prune under SIGKILL', () => {
  let c: DemoCluster;
  const lock = () => lockFileOf(c.target);
  before(async () => {
    c = await startCluster({ groups: [['haproxy'], ['haproxy']], agentConfig: { compression_level: 1 } }, async (cl) => {
      for (const n of cl.nodes) {
        const dir = path.join(n.root, 'etc/haproxy/maps');
        await fsp.mkdir(dir, { recursive: true });
        for (let i = 0; i < 600; i++) await fsp.writeFile(path.join(dir, `m${i}.map`), `${n.name} map ${i} ${randomBytes(400).toString('hex')}\n`);
      }
    });
    // A grace of a second: the trash a prune leaves is swept by the next one, so kills land in
    // the sweep as well as in the mark.
    const config = YAML.parse(await fsp.readFile(c.coordinatorConfigFile, 'utf8')) as Record<string, unknown>;
    await fsp.writeFile(c.coordinatorConfigFile, YAML.stringify({ ...config, store_grace_s: 1 }));
    c.coordinator!.kill('SIGKILL');
    await c.startCoordinator();
  });
  after(async () => {
    await dropCluster(c);
  });

  /** `rounds` backups, each after a tenth of every node's maps changed: the prune has pieces to free. */
  const changedSets = async (rand: () => number, rounds: number) => {
    for (let round = 0; round < rounds; round++) {
      for (const n of c.nodes) {
        for (let k = 0; k < 60; k++) {
          const f = path.join(n.root, 'etc/haproxy/maps', `m${Math.floor(rand() * 600)}.map`);
          await fsp.writeFile(f, `${n.name} changed ${randomBytes(400).toString('hex')}\n`);
        }
      }
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      assert.equal(Cluster.result<Summary>(r.stdout).status, 'complete', r.stdout + r.stderr);
    }
  };
  const pruneCommand = () => c.cli(['prune', '--keep-last', '2', '-t', c.target]);
  const exists = (p: string) => fsp.access(p).then(() => true, () => false);
  /** Resolves when the lock file has appeared: the prune is under way in the coordinator. */
  const lockTaken = async () => {
    for (let i = 0; i < 20_000 && !(await exists(lock())); i++) await new Promise((r) => setTimeout(r, 1));
  };

  /** verify of every set in one run: complete sets piece by piece; incomplete ones are reported, not failed. */
  const everyCompleteSetVerifies = async (why: string) => {
    const r = await c.cli(['--json', 'list', '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    const complete = Cluster.result<{ backupId: string; status: string }[]>(r.stdout).filter((s) => s.status === 'complete');
    assert.ok(complete.length >= 1, `${why}: a complete set is left`);
    const v = await c.cli(['verify', '-t', c.target]);
    assert.equal(v.code, 0, `${why}: ${v.stdout}${v.stderr}`);
    assert.match(v.stdout, /every file matches/, `${why}: ${v.stdout}`);
  };

  test('a prune the coordinator is killed in, at several random points, loses nothing a complete set names; the next prune completes it', async (t) => {
    // How long a prune holds the lock, measured on one that is not killed and removes one set
    // of three, as each killed one does.
    await changedSets(rng(5), 2);
    assert.equal((await pruneCommand()).code, 0);
    await new Promise((r) => setTimeout(r, 1100));
    await changedSets(rng(6), 1);
    const started = performance.now();
    const timed = pruneCommand();
    await lockTaken();
    const lockedAt = performance.now();
    while (await exists(lock())) await new Promise((r) => setTimeout(r, 1));
    const ms = Math.max(5, performance.now() - lockedAt);
    const full = await timed;
    assert.equal(full.code, 0, full.stdout + full.stderr);
    t.diagnostic(`a prune holds the lock for ~${Math.round(ms)} ms (${Math.round(lockedAt - started)} ms before it)`);

    const seeds = [3, 17, 29, 41, 53];
    let cutShort = 0;
    for (const [i, seed] of seeds.entries()) {
      const rand = rng(seed);
      await changedSets(rand, 1);
      // Each seed kills in its own fifth of the prune: early ones among the sets, late ones in the sweep.
      const killAfter = ((i + rand()) / seeds.length) * ms * 0.75;
      const running = pruneCommand();
      await lockTaken();
      await new Promise((r) => setTimeout(r, killAfter));
      c.coordinator!.kill('SIGKILL');
      const r = await running;
      if (r.code !== 0) cutShort++;
      t.diagnostic(`seed ${seed}: killed ${Math.round(killAfter)} ms into the prune, ${r.code === 0 ? 'after it finished' : 'in the middle'}`);
      await c.startCoordinator();
      const why = `seed ${seed}, killed ${Math.round(killAfter)} ms into the prune`;
      await everyCompleteSetVerifies(why);
      const b = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      const s = Cluster.result<Summary>(b.stdout);
      assert.equal(s.status, 'complete', `${why}: the backup after it: ${b.stdout}${b.stderr}`);
      const v = await c.cli(['verify', s.backupId, '-t', c.target]);
      assert.equal(v.code, 0, `${why}: the backup after it: ${v.stdout}${v.stderr}`);
      await new Promise((r) => setTimeout(r, 1100)); // past the grace: the next prune sweeps what the killed one trashed
      const again = await pruneCommand();
      assert.equal(again.code, 0, `${why}: the next prune: ${again.stdout}${again.stderr}`);
      await everyCompleteSetVerifies(`${why}, after the next prune`);
    }
    assert.ok(cutShort >= 3, `the kills land in the middle of the prune (${cutShort} of ${seeds.length} did; it holds the lock ~${Math.round(ms)} ms)`);
  });
});
