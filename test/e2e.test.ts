/**
 * The walking system, end to end: a coordinator and three agents on 127.0.0.2-4, driven only
 * through the CLI, with mTLS, as an operator would.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DemoCluster, bin } from '../demo/cluster.js';
import { lockTarget } from '../coordinator/target.js';
import { backupWithAgentDown } from './helpers/ops.js';
import { dropCluster, startCluster } from './helpers/harness.js';

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
  parts: { node: string; component: string; status: string; reason: string }[];
  notCovered: string[];
}

async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    const meta = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.set(rel, `link ${await fsp.readlink(p)} ${meta}`);
    else if (st.isDirectory()) {
      out.set(rel, `dir ${meta}`);
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out.set(rel, `file ${meta} ${st.mtimeMs} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`);
  };
  await walk(root);
  return out;
}

describe('three nodes through the CLI', () => {
  let c: DemoCluster;
  let id = '';

  before(async () => {
    c = await startCluster(
      {
        groups: [['haproxy', 'kibana'], ['kibana', 'load_balancer'], ['haproxy', 'opensearch_dashboards']],
        extraInventory: '[kafka]\nnode9 ansible_host=127.0.0.9\n\n[kubernetes_node]\nnode9 ansible_host=127.0.0.9\n',
      },
      async (made) => {
        // Owners and odd modes that must come back exactly.
        const n1 = made.nodes[0]!.root;
        await fsp.chown(path.join(n1, 'etc/ssl/haproxy/cluster.pem'), 999, 998);
        await fsp.chmod(path.join(n1, 'etc/haproxy/errors'), 0o750);
      },
    );
  });

  after(async () => {
    await dropCluster(c);
  });

  test('backup of every node is complete, owner-only, and lists what is not covered', async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'complete');
    id = s.backupId;
    assert.match(id, /^\d{8}T\d{6}Z$/);
    assert.deepEqual(
      s.parts.map((p) => `${p.node}/${p.component}:${p.status}`),
      ['node1/haproxy:ok', 'node1/kibana:ok', 'node2/haproxy:ok', 'node2/kibana:ok', 'node3/haproxy:ok', 'node3/kibana:ok'],
    );
    assert.deepEqual(s.notCovered, ['kafka: node9 (holds Kafka topics and offsets, which lsbackup does not back up)', 'nothing to back up in kubernetes_node']);
    const setDir = path.join(c.target, id);
    const modes: string[] = [];
    const walk = async (p: string) => {
      const st = await fsp.lstat(p);
      modes.push(`${st.isDirectory() ? 'd' : 'f'}${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    };
    await walk(setDir);
    assert.deepEqual([...new Set(modes)].sort(), ['d700', 'f600']);
    const manifest = JSON.parse(await fsp.readFile(path.join(setDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.status, 'complete');
    assert.doesNotMatch(JSON.stringify(manifest), /not a real key/, 'file contents never go into the manifest');
  });

  test('the seed form `lambdastack backup -b -t` works and prints the id last', async () => {
    const link = path.join(c.root, 'lambdastack');
    await fsp.symlink(bin.cli, link);
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(process.execPath, [link, 'backup', '-b', c.buildDir, '-t', c.target], { env: { ...process.env, LSBACKUP_CONFIG: c.cliConfig } }, (err, out) => resolve({ code: err ? Number(err.code) : 0, out })),
      );
    });
    assert.equal(r.code, 0, r.out);
    const last = r.out.trim().split('\n').at(-1)!;
    assert.match(last, /^\d{8}T\d{6}Z$/);
    assert.ok((await fsp.stat(path.join(c.target, last, 'manifest.json'))).isFile());
  });

  test('list, show and verify describe the set', async () => {
    let r = await c.cli(['--json', 'list', '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    const sets = DemoCluster.result<{ backupId: string; status: string }[]>(r.stdout);
    assert.ok(sets.some((s) => s.backupId === id && s.status === 'complete'));
    r = await c.cli(['show', id, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`backup ${id}: complete`));
    assert.match(r.stdout, /node2\s+kibana\s+ok/);
    r = await c.cli(['verify', id, '-t', c.target]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /every file matches/);
  });

  test('restore of one node brings back bytes, modes, owners, mtimes and symlinks, and leaves the others alone', async () => {
    const n1 = c.nodes[0]!;
    const n3 = c.nodes[2]!;
    const before1 = await snapshot(path.join(n1.root, 'etc'));
    await fsp.writeFile(path.join(n3.root, 'etc/haproxy/haproxy.cfg'), '# node3 changed after the backup\n');
    const before3 = await snapshot(path.join(n3.root, 'etc'));

    await fsp.rm(path.join(n1.root, 'etc/ssl/haproxy'), { recursive: true });
    await fsp.appendFile(path.join(n1.root, 'etc/haproxy/haproxy.cfg'), '# edited\n');
    await fsp.chmod(path.join(n1.root, 'etc/kibana/kibana.yml'), 0o666);
    await fsp.chown(path.join(n1.root, 'etc/haproxy/errors/503.http'), 1, 1);

    let r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node1', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.stat(path.join(n1.root, 'etc/ssl/haproxy')).catch(() => 'absent'), 'absent', 'a dry run writes nothing');
    assert.match(r.stdout, /would restore file .*cluster\.pem/);

    r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    assert.deepEqual(await snapshot(path.join(n1.root, 'etc')), before1);
    assert.deepEqual(await snapshot(path.join(n3.root, 'etc')), before3);
    assert.match(r.stdout, /node1\/haproxy|haproxy: replaced \d+ entries in .*; the replaced data is in .*\/rollback\/.*; to roll back, as root: rm -rf /);
  });

  test('`recovery` (the seed-era name) restores one component', async () => {
    const kib = path.join(c.nodes[2]!.root, 'etc/kibana/kibana.yml');
    const original = await fsp.readFile(kib, 'utf8');
    await fsp.writeFile(kib, 'garbage');
    const r = await c.cli(['recovery', id, '-t', c.target, '--node', 'node3', '--component', 'kibana']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(await fsp.readFile(kib, 'utf8'), original);
    assert.notEqual(await fsp.readFile(path.join(c.nodes[2]!.root, 'etc/haproxy/haproxy.cfg'), 'utf8'), original, 'haproxy was not part of this restore');
  });

  test('a flipped byte makes verify exit 1 naming the file, and restore refuse it', async () => {
    const r0 = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, '--node', 'node2']);
    assert.equal(r0.code, 0, r0.stderr);
    const bad = DemoCluster.result<Summary>(r0.stdout).backupId;
    const listing = path.join(c.target, bad, 'node2/haproxy/files.tree.jsonl.gz');
    const flip = async (file: string, at: number) => {
      const fh = await fsp.open(file, 'r+');
      const buf = Buffer.alloc(1);
      await fh.read(buf, 0, 1, at);
      buf[0]! ^= 0xff;
      await fh.write(buf, 0, 1, at);
      await fh.close();
    };
    await flip(listing, 40);

    let r = await c.cli(['verify', bad, '-t', c.target]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /node2\/haproxy\/files\.tree\.jsonl\.gz: sha256 mismatch/);
    const cfg = path.join(c.nodes[1]!.root, 'etc/haproxy/haproxy.cfg');
    await fsp.writeFile(cfg, 'changed\n');
    r = await c.cli(['restore', bad, '-t', c.target, '--node', 'node2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing to restore: 1 file\(s\) fail their checksum: node2\/haproxy\/files\.tree\.jsonl\.gz/);
    assert.equal(r.stderr.trim().split('\n').filter((l) => !l.startsWith('{')).length, 1, 'one line of error');
    assert.equal(await fsp.readFile(cfg, 'utf8'), 'changed\n', 'nothing was written');

    // The listing mended, a flipped byte in the stored data itself: verify names the piece and the file, restore refuses.
    await flip(listing, 40);
    const files = await c.cli(['--json', 'show', bad, '-t', c.target, '--files', '--node', 'node2', '--component', 'haproxy']);
    const line = files.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; pieces?: string[]; pack?: string; packAt?: number }).find((e) => e.path.endsWith('etc/haproxy/haproxy.cfg'))!;
    // A small file is in a pack (FORMAT.md "Packs"): its first byte there is flipped.
    assert.ok(line.pack, 'haproxy.cfg is packed');
    const piece = path.join(c.target, 'store/data', line.pack.slice(0, 2), `${line.pack}.pack`);
    const packed = gunzipSync(await fsp.readFile(piece));
    packed[line.packAt!]! ^= 0x01;
    await fsp.writeFile(piece, gzipSync(packed));
    r = await c.cli(['verify', bad, '-t', c.target]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`haproxy\\.cfg: piece ${line.pieces![0]} is damaged`));
    r = await c.cli(['restore', bad, '-t', c.target, '--node', 'node2']);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /haproxy\.cfg: piece [0-9a-f]{64} is damaged/);
    assert.equal(await fsp.readFile(cfg, 'utf8'), 'changed\n', 'nothing was written');
    packed[line.packAt!]! ^= 0x01;
    await fsp.writeFile(piece, gzipSync(packed));
  });

  test('an unreachable agent makes the set partial, naming the host; the others land', async () => {
    await backupWithAgentDown<Summary>(c, c.nodes[1]!, async (s) => {
      assert.deepEqual(s.parts.filter((p) => p.status === 'ok').map((p) => p.node).sort(), ['node1', 'node1', 'node3', 'node3']);
      const l = DemoCluster.result<{ backupId: string; status: string }[]>((await c.cli(['--json', 'list', '-t', c.target])).stdout);
      assert.equal(l.find((x) => x.backupId === s.backupId)?.status, 'partial');
    });
  });

  test('a manifest.yml beside the inventory that is broken stops the backup in one line naming it; nothing is written', async () => {
    const manifest = path.join(c.buildDir, 'manifest.yml');
    const sets = async () => (await fsp.readdir(c.target)).filter((n) => /^\d{8}T/.test(n)).sort();
    const before = await sets();
    try {
      for (const [body, expected] of [
        ['kind: lambdastack-cluster\nspecification: [unclosed\n', /^lsbackup: .*manifest\.yml document 1: not valid YAML: /],
        ['kind: lambdastack-cluster\nspecification:\n  components:\n    postgress: {count: 1}\n', /^lsbackup: .*manifest\.yml document 1 \(kind: lambdastack-cluster\): unknown component 'postgress'/],
      ] as const) {
        await fsp.writeFile(manifest, body);
        const r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, expected);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
      assert.deepEqual(await sets(), before);
    } finally {
      await fsp.rm(manifest, { force: true });
    }
  });

  test('a set without a manifest is listed as incomplete and not restored', async () => {
    const fake = '20200101T000000Z';
    await fsp.mkdir(path.join(c.target, fake, 'node1/haproxy'), { recursive: true });
    const l = DemoCluster.result<{ backupId: string; status: string }[]>((await c.cli(['--json', 'list', '-t', c.target])).stdout);
    assert.equal(l.find((x) => x.backupId === fake)?.status, 'incomplete');
    const r = await c.cli(['restore', fake, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /incomplete.*refusing/);
    const d = await c.cli(['delete', fake, '-t', c.target]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(await fsp.stat(path.join(c.target, fake)).catch(() => 'gone'), 'gone');
  });

  describe('bad input: one line, exit 2, nothing written', () => {
    const cases: [string, () => string[], RegExp][] = [
      ['missing build dir', () => ['backup', '-b', '/nonexistent/build', '-t', c.target], /build directory '\/nonexistent\/build' does not exist/],
      ['inventory without hosts', () => ['backup', '-b', path.join(c.root, 'empty-build'), '-t', c.target], /inventory .* lists no hosts/],
      ['unwritable target', () => ['backup', '-b', c.buildDir, '-t', path.join(c.root, 'a-file', 'sub')], /target '.*a-file\/sub' is not writable/],
      ['unknown backup id', () => ['restore', '20991231T235959Z', '-t', c.target, '--node', 'node1'], /backup '20991231T235959Z' not found/],
      ['malformed backup id', () => ['verify', '../../etc', '-t', c.target], /backup id '\.\.\/\.\.\/etc' is not an id/],
      ['unknown node (backup)', () => ['backup', '-b', c.buildDir, '-t', c.target, '--node', 'nodeX'], /unknown node 'nodeX'/],
      ['unknown node (restore)', () => ['restore', id, '-t', c.target, '--node', 'nodeX'], /unknown node 'nodeX'/],
      ['unknown component', () => ['backup', '-b', c.buildDir, '-t', c.target, '--component', 'mysql'], /unknown component 'mysql'/],
      ['missing option', () => ['backup', '-t', c.target], /required option '-b, --build-dir <dir>'/],
      ['unknown command', () => ['bakup'], /unknown command 'bakup'/],
    ];
    before(async () => {
      await fsp.mkdir(path.join(c.root, 'empty-build'), { recursive: true });
      await fsp.writeFile(path.join(c.root, 'empty-build/inventory'), '[all:vars]\nansible_user=x\n');
      await fsp.writeFile(path.join(c.root, 'a-file'), 'x');
    });
    test('a wrong --option is refused before the lock is taken: exit 2, one line, at once', async () => {
      // Another run holds the target: a check made after taking the lock would answer "busy" instead.
      const unlock = await lockTarget(c.target, 'a test holding the target');
      try {
        for (const [option, msg] of [
          ['colour=red', /unknown option 'colour' \(known: database, .*\)/],
          ['messages=yes', /option messages=yes: expected true or false/],
          ['rename_suffix=UPPER', /option rename_suffix=UPPER: use lowercase letters/],
        ] as const) {
          const started = Date.now();
          const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--option', option]);
          assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
          const lines = r.stderr.trim().split('\n');
          assert.equal(lines.length, 1, r.stderr);
          assert.match(lines[0]!, msg);
          // The CLI's own start takes most of this; hashing the set or waiting on the lock would add to it.
          assert.ok(Date.now() - started < 10_000, `answered in ${Date.now() - started} ms`);
        }
      } finally {
        await unlock();
      }
    });
    for (const [name, args, msg] of cases) {
      test(name, async () => {
        const setsBefore = (await fsp.readdir(c.target)).sort();
        const r = await c.cli(args());
        assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0]!, msg);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
        assert.deepEqual((await fsp.readdir(c.target)).sort(), setsBefore);
      });
    }
  });
});
