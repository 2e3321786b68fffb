/**
 * Exact metadata end to end (issue 16, FORMAT.md 1.4): a tree with owners, modes, symlinks, a
 * hard-link group, a sparse file, xattrs and an ACL, and nanosecond mtimes is backed up by a real
 * agent through the coordinator and CLI, wiped, restored through the CLI, and compared entry by
 * entry: content, mode, owner, mtime to the nanosecond, symlink target, inode groups, allocated
 * blocks and every extended attribute.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { DemoCluster } from '../demo/cluster.js';

const MiB = 1024 * 1024;
const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/** Every entry of the tree as one comparable line, and the tree's attributes as getfattr dumps them. */
async function describeTree(root: string): Promise<{ entries: Map<string, string>; xattrs: string[] }> {
  const entries = new Map<string, string>();
  const inodeGroup = new Map<bigint, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    // The first path seen with an inode names its group: a split hard link shows up as two names.
    if (!inodeGroup.has(st.ino)) inodeGroup.set(st.ino, rel);
    const meta = `mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} mtimeNs=${st.mtimeNs}`;
    if (st.isSymbolicLink()) entries.set(rel, `link -> ${await fsp.readlink(p)} ${meta}`);
    else if (st.isDirectory()) {
      entries.set(rel, `dir ${meta}`);
      for (const n of (await fsp.readdir(p)).sort()) await walk(path.join(p, n));
    } else {
      const sha = createHash('sha256').update(await fsp.readFile(p)).digest('hex');
      entries.set(rel, `file ${meta} size=${st.size} blocks=${st.blocks} inode-of=${inodeGroup.get(st.ino)} nlink=${st.nlink} sha256=${sha}`);
    }
  };
  await walk(root);
  // getfattr walks in directory order, which a re-created tree need not keep: compare its blocks sorted.
  const dump = sh('getfattr', '-R', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '-h', '-P', root);
  return { entries, xattrs: dump.split('\n\n').map((b) => b.trim()).filter(Boolean).sort() };
}

describe('exact restore of owners, modes, links, holes, xattrs and nanosecond mtimes', { skip: !has('getfattr') || !has('setfacl') ? 'needs getfattr/setfacl: apt-get install attr acl' : false }, () => {
  let c: DemoCluster;
  let tree = '';
  let id = '';
  let before1: Awaited<ReturnType<typeof describeTree>>;

  before(async () => {
    // On / (not a tmpfs that may lack user xattrs or ACLs): what a node's /etc is on.
    tree = mkdtempSync('/var/tmp/lsbackup-exact-');
    const p = (rel: string) => path.join(tree, rel);
    await fsp.mkdir(p('conf.d/deep'), { recursive: true });
    await fsp.writeFile(p('plain.cfg'), 'plain\n', { mode: 0o644 });
    await fsp.writeFile(p('secret.key'), 'not a key\n', { mode: 0o600 });
    await fsp.chown(p('secret.key'), 1001, 1002);
    await fsp.writeFile(p('conf.d/tool'), '#!/bin/sh\n', { mode: 0o750 });
    await fsp.chmod(p('conf.d/tool'), 0o4750); // setuid survives only if chmod follows chown
    await fsp.chown(p('conf.d/tool'), 1003, 1004);
    await fsp.chmod(p('conf.d/tool'), 0o4750);
    await fsp.chown(p('conf.d/deep'), 1005, 1005);
    await fsp.chmod(p('conf.d/deep'), 0o2770);
    await fsp.symlink('../plain.cfg', p('conf.d/current'));
    await fsp.lchown(p('conf.d/current'), 1001, 1001);
    // A hard-link group of 3, in different directories.
    await fsp.writeFile(p('linked-a'), 'one file, three names\n');
    await fsp.link(p('linked-a'), p('conf.d/linked-b'));
    await fsp.link(p('linked-a'), p('conf.d/deep/linked-c'));
    // 64 MiB with 8 KiB of data: 4 KiB at the start, 4 KiB in the middle.
    const fh = await fsp.open(p('sparse.img'), 'w');
    await fh.write(Buffer.alloc(4096, 0xab), 0, 4096, 0);
    await fh.write(Buffer.alloc(4096, 0xcd), 0, 4096, 32 * MiB);
    await fh.truncate(64 * MiB);
    await fh.close();
    // A name getfattr has to quote (a backslash is left out: archiver turns it into '/', a separate, older limitation).
    await fsp.writeFile(p('odd name\nwith newline'), 'odd\n');
    sh('setfattr', '-n', 'user.comment', '-v', 'kept with the file', p('plain.cfg'));
    sh('setfattr', '-n', 'user.empty', p('secret.key'));
    sh('setfattr', '-n', 'user.bin', '-v', '0sAAECA/8=', p('odd name\nwith newline'));
    sh('setfattr', '-n', 'user.dir', '-v', 'on a directory', p('conf.d'));
    sh('setfattr', '-h', '-n', 'trusted.link', '-v', 'on the symlink itself', p('conf.d/current'));
    sh('setfacl', '-m', 'u:1234:r,g:2345:rw', p('secret.key'));
    sh('setfacl', '-d', '-m', 'u:1234:rx', p('conf.d/deep'));
    // Nanosecond mtimes, each different, directories last (writing into one changes its mtime).
    const times: [string, string][] = [
      ['plain.cfg', '1700000000.123456789'],
      ['secret.key', '1700000001.000000001'],
      ['conf.d/tool', '1700000002.999999999'],
      ['conf.d/current', '1700000003.5'],
      ['linked-a', '1700000004.424242424'],
      ['sparse.img', '1700000005.000000123'],
      ['odd name\nwith newline', '1700000006.7'],
      ['conf.d/deep', '1700000007.111111111'],
      ['conf.d', '1700000008.222222222'],
      ['.', '1700000009.333333333'],
    ];
    for (const [rel, t] of times) sh('touch', '-h', '-d', `@${t}`, p(rel));

    c = await DemoCluster.create({ nodes: 1, groups: [['kibana']], agentConfig: { components: { kibana: { config_paths: [tree] } } } });
    await c.start();
    before1 = await describeTree(tree);
  });

  after(async () => {
    await c?.stop();
    await c?.remove();
    if (tree) await fsp.rm(tree, { recursive: true, force: true });
  });

  test('the tree is what the test means to back up', () => {
    const e = before1.entries;
    assert.match(e.get('plain.cfg')!, /mtimeNs=1700000000123456789 /);
    assert.match(e.get('conf.d/tool')!, /mode=104750 owner=1003:1004/);
    assert.match(e.get('conf.d/deep/linked-c')!, /inode-of=conf.d\/deep\/linked-c nlink=3/, 'first name seen of the group');
    assert.match(e.get('linked-a')!, /inode-of=conf.d\/deep\/linked-c nlink=3/);
    const blocks = Number(/blocks=(\d+)/.exec(e.get('sparse.img')!)![1]);
    assert.ok(blocks * 512 <= 64 * 1024, `the source sparse file has ${blocks} blocks allocated`);
    assert.ok(before1.xattrs.some((b) => b.includes('system.posix_acl_access')), before1.xattrs.join('\n'));
  });

  test('backup records links once, extents of the sparse file, xattrs and ns mtimes', async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    id = DemoCluster.result<{ backupId: string }>(r.stdout).backupId;
    // What the set recorded, as the operator lists it: `show --files`, one JSON line per entry.
    const files = await c.cli(['--json', 'show', id, '-t', c.target, '--files', '--node', 'node1', '--component', 'kibana']);
    assert.equal(files.code, 0, files.stderr);
    const entries = files.stdout.trim().split('\n').map((l) => JSON.parse(l)) as { path: string; linkOf?: string; dataExtents?: [number, number][]; xattrs?: Record<string, string>; mtimeNs: string }[];
    const of = (rel: string) => entries.find((x) => x.path === path.join(tree, rel))!;
    assert.deepEqual(
      entries.filter((x) => x.linkOf).map((x) => [path.relative(tree, x.path), path.relative(tree, x.linkOf!)]),
      [['conf.d/linked-b', 'conf.d/deep/linked-c'], ['linked-a', 'conf.d/deep/linked-c']],
    );
    assert.deepEqual(of('sparse.img').dataExtents, [[0, 4096], [32 * MiB, 4096]]);
    assert.equal(of('plain.cfg').dataExtents, undefined, 'dense files carry no extents');
    assert.equal(Buffer.from(of('plain.cfg').xattrs!['user.comment']!, 'base64').toString(), 'kept with the file');
    assert.equal(of('conf.d/tool').mtimeNs, '1700000002999999999');
    const linked = (entries as { path: string; linkOf?: string; pieces?: string[] }[]).filter((x) => /linked-[abc]$/.test(x.path));
    assert.equal(linked.filter((x) => x.pieces).length, 1, 'a hard-linked file is stored once: only one of its names has pieces');
  });

  test('wiped and restored through the CLI, every entry comes back exactly', async () => {
    await fsp.rm(tree, { recursive: true });
    const r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    assert.doesNotMatch(r.stdout, /not found/, 'getfattr, setfattr and python3 are installed here');
    const after1 = await describeTree(tree);
    assert.deepEqual(after1.entries, before1.entries);
    assert.deepEqual(after1.xattrs, before1.xattrs);
    // Said again plainly, for the failure message when the comparison above breaks.
    assert.match(after1.entries.get('conf.d/current')!, /mtimeNs=1700000003500000000/);
    const blocks = Number(/blocks=(\d+)/.exec(after1.entries.get('sparse.img')!)![1]);
    assert.ok(blocks * 512 <= 64 * 1024, `the restored sparse file has ${blocks * 512} bytes allocated, not 64 MiB`);
    assert.match(sh('getfacl', '-c', path.join(tree, 'secret.key')), /user:1234:r--/);
  });

  test('restored over the tree as it is (not wiped), it is still exact', async () => {
    await fsp.writeFile(path.join(tree, 'conf.d/linked-b'), 'changed (under all three names: they are one file)\n');
    sh('setfattr', '-x', 'user.comment', path.join(tree, 'plain.cfg'));
    const r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const again = await describeTree(tree);
    assert.deepEqual(again.entries, before1.entries);
    assert.deepEqual(again.xattrs, before1.xattrs);
  });

  test("a directory that was there keeps a default ACL the set does not record; the files restored into it do not inherit it", async () => {
    sh('setfacl', '-d', '-m', 'u:4321:r', path.join(tree, 'conf.d'));
    const r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    assert.match(sh('getfacl', '-c', '-d', path.join(tree, 'conf.d')), /user:4321:r--/, "the operator's default ACL stays");
    const restored = await describeTree(tree);
    assert.deepEqual(restored.entries, before1.entries);
    const dirBlock = (x: string[]) => x.filter((b) => !b.startsWith(`# file: ${path.join(tree, 'conf.d')}\n`));
    assert.deepEqual(dirBlock(restored.xattrs), dirBlock(before1.xattrs), 'no file took the default ACL of conf.d');
  });
});
