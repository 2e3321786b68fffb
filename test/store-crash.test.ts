/**
 * Crash safety of format 3 (issue 14, FORMAT.md "Writing a piece"): an agent or the coordinator
 * killed with SIGKILL at a random point of a backup (several seeds) never leaves a set that
 * names a piece the store does not hold: after each kill, every complete set verifies (every
 * piece read), and the next backup is complete, takes what it can from its parent, and verifies.
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
