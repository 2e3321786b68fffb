/**
 * Faults that really happen: an agent killed with SIGKILL, a coordinator killed, a full disk, a
 * node cut off from the network, a second operator starting a backup. None of them may leave a
 * set that looks complete, and the next backup must work.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { DemoCluster } from '../demo/cluster.js';
import { dropCluster, startCluster } from './helpers/harness.js';
import { cliWatching } from './helpers/ops.js';

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
  parts: { node: string; component: string; status: string; reason: string }[];
}

/** Starts `lsbackup --json backup ...` and calls `onEvent` for every progress event as it arrives. */
function backupWatching(c: DemoCluster, extra: string[], onEvent: (ev: { node: string; component?: string; phase: string; bytesDone: number; backupId: string }) => void) {
  return cliWatching(c, ['backup', '-b', c.buildDir, '-t', c.target, ...extra], onEvent);
}

/** A big but cheap file (sparse) that keeps a backup busy for a few seconds. */
async function makeSlow(root: string, gib = 2): Promise<void> {
  const fh = await fsp.open(path.join(root, 'etc/haproxy/big.map'), 'w');
  await fh.truncate(gib * 1024 ** 3);
  await fh.close();
}

describe('failure safety', () => {
  let c: DemoCluster;
  before(async () => {
    c = await startCluster({ groups: [['haproxy'], ['haproxy'], ['kibana']], agentConfig: { compression_level: 1 } });
  });
  after(async () => {
    await dropCluster(c);
  });

  test('an agent killed with SIGKILL mid-backup: partial set naming the node, within a bounded time; the next backup works', async () => {
    const victim = c.nodes[0]!;
    await makeSlow(victim.root);
    let killedAt = 0;
    const r = await backupWatching(c, [], (ev) => {
      if (!killedAt && ev.node === victim.name && ev.phase === 'running' && ev.bytesDone > 0) {
        killedAt = Date.now();
        victim.process!.kill('SIGKILL');
      }
    });
    assert.ok(killedAt > 0, 'the agent was killed while it was writing');
    const noticedIn = Date.now() - killedAt;
    assert.ok(noticedIn < 20_000, `noticed after ${noticedIn} ms`);
    assert.equal(r.code, 1, r.stderr);
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'partial');
    assert.ok(s.reasons.some((x) => x.startsWith('node1/haproxy:') && /lost during backup/.test(x)), s.reasons.join('\n'));
    assert.deepEqual(s.parts.filter((p) => p.status === 'ok').map((p) => p.node), ['node2', 'node3']);

    // The killed agent's half-written archive is in the set, listed nowhere: verify names it ...
    const orphan = path.join(c.target, s.backupId, 'node1/haproxy/files.tree.jsonl.gz');
    assert.ok(await fsp.stat(orphan).catch(() => undefined), `the killed agent left its half-written archive (${await fsp.readdir(path.dirname(orphan)).catch((e) => String(e))})`);
    const v = await c.cli(['verify', s.backupId, '-t', c.target]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /node1\/haproxy\/files\.tree\.jsonl\.gz: not listed in the manifest/);

    await fsp.rm(path.join(victim.root, 'etc/haproxy/big.map'));
    await c.startAgent(victim); // its lock file names a dead pid: it must be cleared, not block
    // ... and the agent's next start removes it (its journal says which set it was writing).
    assert.equal(await fsp.stat(orphan).catch(() => 'gone'), 'gone');
    const v2 = await c.cli(['verify', s.backupId, '-t', c.target]);
    assert.equal(v2.code, 0, v2.stdout + v2.stderr);
    const again = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(again.code, 0, again.stderr + again.stdout.slice(-500));
    assert.equal(DemoCluster.result<Summary>(again.stdout).status, 'complete');
  });

  test('an agent killed during a restore: its next start removes the temp files beside the live ones and any half rollback copy', async () => {
    const victim = c.nodes[0]!;
    const live = path.join(victim.root, 'etc/haproxy');
    await makeSlow(victim.root, 2);
    const b = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, '--node', victim.name]);
    assert.equal(b.code, 0, b.stderr + b.stdout.slice(-1500));
    const id = DemoCluster.result<Summary>(b.stdout).backupId;
    let killedAt = 0;
    // Killed the moment the first temp file appears beside the live ones: a progress event reaches
    // the test through coordinator and CLI, on a loaded machine too late to catch the extraction.
    const tempAppeared = setInterval(() => {
      if (killedAt) return;
      const names = readdirSync(live);
      if (names.some((n) => n.includes('.lsbackup-restore-'))) {
        killedAt = Date.now();
        victim.process!.kill('SIGKILL');
      }
    }, 5);
    const r = await cliWatching(c, ['restore', id, '-t', c.target, '--node', victim.name], () => undefined).finally(() => clearInterval(tempAppeared));
    assert.ok(killedAt > 0, 'killed while extracting');
    assert.equal(r.code, 1);
    const p = victim.process!;
    if (p.exitCode === null && p.signalCode === null) await new Promise((res) => p.once('exit', res));
    const temps = async () => (await fsp.readdir(live)).filter((n) => n.includes('.lsbackup-restore-'));
    assert.ok((await temps()).length > 0, 'the killed restore left temp files beside the live files');
    // A rollback copy cut short, as a kill during its cp would leave it.
    const rollback = path.join(c.root, 'state', victim.name, 'rollback');
    const half = path.join(rollback, `${id}-haproxy-1.partial`);
    await fsp.mkdir(path.join(half, 'etc'), { recursive: true });

    await c.startAgent(victim);
    assert.deepEqual(await temps(), [], 'temp files removed at start');
    assert.deepEqual((await fsp.readdir(rollback)).filter((n) => n.endsWith('.partial')), [], 'half rollback copy removed at start');
    await fsp.rm(path.join(live, 'big.map'));

    // A restore that completes leaves a marked copy under its final name, and no temp file.
    const ok = await c.cli(['restore', id, '-t', c.target, '--node', victim.name]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await temps(), []);
    const copies = (await fsp.readdir(rollback)).filter((n) => !n.endsWith('.partial'));
    assert.ok(copies.length > 0);
    for (const n of copies) assert.ok((await fsp.readdir(path.join(rollback, n))).includes('.lsbackup-complete'), n);
    assert.deepEqual(await fsp.readdir(path.join(c.root, 'state', victim.name, 'journal')).then((ns) => ns.filter((x) => x.startsWith('restore-'))), []);
  });

  test('a second backup of the same target is refused naming the running one; a stale lock is cleared', async () => {
    await makeSlow(c.nodes[1]!.root, 1);
    let second: Promise<{ code: number; stderr: string }> | undefined;
    const first = backupWatching(c, [], (ev) => {
      if (!second && ev.phase === 'running') second = c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    });
    const r1 = await first;
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await second!;
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /busy: backup of .* is running \(pid \d+ on .* since .*\)/);
    await fsp.rm(path.join(c.nodes[1]!.root, 'etc/haproxy/big.map'));

    // A lock left by a process that no longer exists.
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    await fsp.writeFile(path.join(c.target, '.lsbackup.lock'), JSON.stringify({ pid: dead.pid, host: (await import('node:os')).hostname(), what: 'backup of somewhere', since: new Date().toISOString() }));
    const r3 = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r3.code, 0, r3.stderr);
  });

  test('a coordinator frozen (SIGSTOP) until the CLI gives up does not commit that set as complete once it resumes', async () => {
    let id = '';
    const r = await backupWatching(c, [], (ev) => {
      if (!id && ev.backupId) {
        id = ev.backupId;
        c.coordinator!.kill('SIGSTOP');
      }
    });
    try {
      assert.ok(id, 'the backup had started');
      assert.equal(r.code, 1, r.stderr);
      const last = r.stderr.trim().split('\n').at(-1)!;
      assert.match(last, new RegExp(`coordinator unreachable: .*backup ${id} had started: a set whose caller is gone is never committed complete.*lsbackup show ${id} -t ${c.target.replace(/[.]/g, '\\.')}`));
    } finally {
      c.coordinator!.kill('SIGCONT');
    }
    const manifest = path.join(c.target, id, 'manifest.json');
    const deadline = Date.now() + 30_000;
    while (!(await fsp.stat(manifest).catch(() => undefined)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    const show = DemoCluster.result<{ status: string; reasons: string[] }>((await c.cli(['--json', 'show', id, '-t', c.target])).stdout);
    assert.notEqual(show.status, 'complete', JSON.stringify(show));
    assert.ok(show.reasons.some((x) => /nobody was told its result|lost during backup/.test(x)), show.reasons.join('\n'));
    // The coordinator is well again: the next backup is complete.
    const again = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(again.code, 0, again.stderr);
  });

  test('a coordinator killed mid-backup leaves a set that list shows as incomplete and delete removes', async () => {
    await makeSlow(c.nodes[0]!.root);
    let id = '';
    const r = await backupWatching(c, [], (ev) => {
      if (!id && ev.phase === 'running' && ev.backupId) {
        id = ev.backupId;
        c.coordinator!.kill('SIGKILL');
      }
    });
    assert.ok(id);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /coordinator unreachable|Connection dropped|lost|UNAVAILABLE|Received RST/i);
    await fsp.rm(path.join(c.nodes[0]!.root, 'etc/haproxy/big.map'));
    await c.startCoordinator();
    const list = DemoCluster.result<{ backupId: string; status: string }[]>((await c.cli(['--json', 'list', '-t', c.target])).stdout);
    assert.equal(list.find((s) => s.backupId === id)?.status, 'incomplete');
    const restore = await c.cli(['restore', id, '-t', c.target, '--node', 'node2']);
    assert.equal(restore.code, 1);
    assert.match(restore.stderr, /incomplete/);
    const del = await c.cli(['delete', id, '-t', c.target]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(await fsp.stat(path.join(c.target, id)).catch(() => 'gone'), 'gone');
    // The agents were cancelled with the coordinator's calls; the next backup is clean.
    const again = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(again.code, 0, again.stderr + again.stdout.split('\n').at(-2));
  });
});

describe('a full disk', () => {
  let c: DemoCluster;
  let mnt = '';
  before(async () => {
    mnt = await fsp.mkdtemp('/tmp/lsb-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt]);
    c = await startCluster({ nodes: 2, groups: [['haproxy'], ['kibana']], target: path.join(mnt, 'backups') }, async (made) => {
      // Random bytes do not compress: 8 MiB cannot fit into 4 MiB.
      await fsp.writeFile(path.join(made.nodes[0]!.root, 'etc/haproxy/random.bin'), (await import('node:crypto')).randomBytes(8 * 1024 * 1024));
    });
  });
  after(async () => {
    await dropCluster(c);
    if (mnt) execFileSync('umount', [mnt]);
    await fsp.rm(mnt, { recursive: true, force: true });
  });

  test('a backup that does not fit is refused with both numbers, as an input error (exit 2, one line, no set)', async () => {
    const before = await fsp.readdir(c.target).catch(() => []);
    const r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').filter((l) => !l.startsWith('{')).length, 1, r.stderr);
    assert.deepEqual(await fsp.readdir(c.target), before, 'nothing written');
    assert.match(r.stderr, /backup needs about [\d.]+ MiB but .* has [\d.]+ (KiB|MiB) free; free space or pass --force/);
  });

  test('ENOSPC mid-write fails the component cleanly, removes its partial files, and the set is not complete', async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, '--force']);
    assert.equal(r.code, 1, r.stderr);
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.notEqual(s.status, 'complete');
    const hap = s.parts.find((p) => p.node === 'node1' && p.component === 'haproxy')!;
    assert.equal(hap.status, 'failed');
    assert.match(hap.reason, /ENOSPC|no space/i);
    // Only the part's record stays, saying it failed (FORMAT.md "Format 2"): no partial artifact.
    assert.deepEqual(await fsp.readdir(path.join(c.target, s.backupId, 'node1/haproxy')), ['part.json'], 'partial files are removed');
  });
});

describe('a node cut off from the network', () => {
  const ns = `lsb${process.pid % 10000}`;
  const hostIf = `lsbh${process.pid % 10000}`;
  const nsIf = `lsbn${process.pid % 10000}`;
  let c: DemoCluster;
  const ip = (args: string[]) => execFileSync('ip', args);
  before(async () => {
    ip(['netns', 'add', ns]);
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    ip(['link', 'set', nsIf, 'netns', ns]);
    ip(['addr', 'add', '10.213.7.1/24', 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['netns', 'exec', ns, 'ip', 'addr', 'add', '10.213.7.2/24', 'dev', nsIf]);
    ip(['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
    ip(['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    c = await startCluster({ nodes: 2, groups: [['haproxy'], ['kibana']], nodeOverrides: [{ ip: '10.213.7.2', wrap: ['ip', 'netns', 'exec', ns] }], agentConfig: { compression_level: 1 } });
  });
  after(async () => {
    await dropCluster(c);
    try {
      ip(['link', 'del', hostIf]);
    } catch {
      /* gone with the namespace */
    }
    ip(['netns', 'del', ns]);
  });

  test('link down mid-backup: the coordinator notices within a bounded time, the set is partial naming the node', async () => {
    await makeSlow(c.nodes[0]!.root, 4);
    let cutAt = 0;
    const r = await backupWatching(c, [], (ev) => {
      if (!cutAt && ev.node === 'node1' && ev.phase === 'running' && ev.bytesDone > 0) {
        cutAt = Date.now();
        ip(['link', 'set', hostIf, 'down']);
      }
    });
    assert.ok(cutAt > 0, 'the link went down while node1 was writing');
    const noticedIn = Date.now() - cutAt;
    assert.ok(noticedIn < 30_000, `noticed after ${noticedIn} ms`);
    assert.equal(r.code, 1, r.stderr);
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'partial');
    assert.ok(s.reasons.some((x) => x.startsWith('node1/haproxy:')), s.reasons.join('\n'));
    assert.equal(s.parts.find((p) => p.node === 'node2')?.status, 'ok');
    ip(['link', 'set', hostIf, 'up']);
    await fsp.rm(path.join(c.nodes[0]!.root, 'etc/haproxy/big.map'));
  });
});
