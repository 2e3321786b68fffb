import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { grafana, grafanaSchema } from '../agent/components/grafana.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { DASHBOARD_SCHEMA, dashboardJson, openDb } from './helpers/grafana-db.js';
import { startWriter } from './helpers/grafana-writer.js';
import { testKeys } from './helpers/test-keys.js';

const ROWS_PER_BATCH = 7;
const GRAFANA_UID = 472;

/** Every file and directory under root with type, mode, owner, mtime and content, but for the names given. */
async function tree(root: string, skip: (rel: string) => boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string) => {
    const rel = path.relative(root, p) || '.';
    if (skip(rel)) return;
    const st = await fsp.lstat(p, { bigint: true });
    const who = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[rel] = `link ${await fsp.readlink(p)} ${st.uid}:${st.gid}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${who}`;
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out[rel] = `file ${who} ${st.mtimeMs} ${(await fsp.readFile(p)).toString('base64')}`;
  };
  await walk(root);
  return out;
}

function dashboards(file: string): unknown[] {
  const db = openDb(file, { fileMustExist: true });
  try {
    return db.prepare('SELECT id, version, slug, title, data FROM dashboard ORDER BY id').all();
  } finally {
    db.close();
  }
}

/** A data dir like /var/lib/grafana: grafana.db in WAL mode, plugins, provisioned dashboards, png renders. */
async function makeDataDir(dir: string): Promise<string> {
  await fsp.mkdir(path.join(dir, 'plugins/grafana-piechart-panel'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'dashboards'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'png'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'csv'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'plugins/grafana-piechart-panel/plugin.json'), '{"id":"grafana-piechart-panel","type":"panel"}\n');
  await fsp.writeFile(path.join(dir, 'plugins/grafana-piechart-panel/module.js'), 'define([], function () { return {}; });\n');
  await fsp.symlink('grafana-piechart-panel', path.join(dir, 'plugins/piechart'));
  await fsp.writeFile(path.join(dir, 'dashboards/home.json'), dashboardJson(0, 0));
  await fsp.chmod(path.join(dir, 'dashboards/home.json'), 0o640);
  await fsp.writeFile(path.join(dir, 'png/render-1.png'), Buffer.alloc(4096, 7));
  await fsp.utimes(path.join(dir, 'plugins/grafana-piechart-panel/module.js'), 1_600_000_000.5, 1_600_000_000.5);

  const file = path.join(dir, 'grafana.db');
  const db = openDb(file);
  db.pragma('journal_mode = WAL');
  db.exec(DASHBOARD_SCHEMA);
  const insert = db.prepare('INSERT INTO dashboard (version, slug, title, data, org_id, created, updated) VALUES (1, ?, ?, ?, 1, ?, ?)');
  // Enough rows that the database spans many pages; the writer keeps changing some of them.
  db.transaction(() => {
    for (let b = 0; b < 400; b++) for (let r = 0; r < ROWS_PER_BATCH; r++) insert.run(`b${b}-r${r}`, `batch ${b} row ${r}`, dashboardJson(b, r), '2026-01-01', '2026-01-01');
  })();
  db.close();
  for (const p of ['', 'plugins', 'plugins/grafana-piechart-panel', 'plugins/grafana-piechart-panel/plugin.json', 'dashboards', 'dashboards/home.json', 'csv', 'grafana.db']) {
    await fsp.chown(path.join(dir, p), GRAFANA_UID, GRAFANA_UID);
  }
  await fsp.chmod(file, 0o640);
  await fsp.chmod(dir, 0o750);
  return file;
}

test('grafana.db is copied consistently while another process writes; restore puts back files, modes and the database', async () => {
  const base = tempDir('grafana');
  const dataDir = path.join(base, 'var/lib/grafana');
  const dbFile = await makeDataDir(dataDir);
  const log = path.join(base, 'service.log');
  const comp = grafana(
    grafanaSchema.parse({
      data_dir: dataDir,
      stop_command: ['sh', '-c', `echo stop >> '${log}'`],
      start_command: ['sh', '-c', `echo start >> '${log}'`],
    }),
  );
  const rt = runtimeOf([comp]);
  const target = tempDir('target');

  const writer = await startWriter(dbFile, ROWS_PER_BATCH, 400);
  let copy: string;
  let id: string;
  let atStart: number;
  let atEnd: number;
  try {
    await writer.waitFor(20);
    atStart = writer.committed();
    const r = await backupLocal(rt, target);
    atEnd = writer.committed();
    await writer.waitFor(5);
    id = r.id;
    assert.equal(r.manifest.status, 'complete', r.manifest.reasons.join('; '));
    const part = r.manifest.parts[0]!;
    assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['files.tree.jsonl.gz', 'grafana.db']);
    assert.deepEqual([part.meta.db_uid, part.meta.db_gid, part.meta.db_mode, part.meta.db_integrity], [String(GRAFANA_UID), String(GRAFANA_UID), '640', 'ok']);
    const names = part.entries.map((e) => path.relative(dataDir, e.path));
    assert.ok(!names.some((n) => n === 'png' || n.startsWith('png/')), 'png/ is not backed up');
    assert.ok(!names.some((n) => n.startsWith('grafana.db')), 'the live database files are not in the zip');
    assert.ok(names.includes('plugins/grafana-piechart-panel/module.js'));

    // Read the artifact from a copy: opening a WAL database writes beside it.
    copy = path.join(base, 'copy.db');
    await fsp.copyFile(path.join(target, id, 'node1/grafana/grafana.db'), copy);
  } finally {
    await writer.stop();
  }
  assert.ok(atEnd > atStart, 'the writer kept committing while the backup ran');

  const db = openDb(copy, { fileMustExist: true });
  try {
    assert.deepEqual(db.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
    const batches = db.prepare("SELECT json_extract(data, '$.batch') AS batch, COUNT(*) AS n FROM dashboard GROUP BY batch").all() as { batch: number; n: number }[];
    const torn = batches.filter((b) => b.n !== ROWS_PER_BATCH);
    assert.deepEqual(torn, [], 'every transaction is in the copy whole or not at all');
    const newest = Math.max(...batches.map((b) => b.batch));
    assert.ok(newest >= atStart, `the copy is from during the backup (newest batch ${newest}, writer at ${atStart} when it started)`);
    const ids = db.prepare('SELECT COUNT(*) AS n, MAX(id) AS m FROM dashboard').get() as { n: number; m: number };
    assert.equal(ids.n, ids.m, 'no row is missing in the middle');
  } finally {
    db.close();
  }

  // What the zip holds, as it is now; the database is compared by content instead.
  const skip = (rel: string) => rel === '.' || rel === 'png' || rel.startsWith('grafana.db');
  const before = await tree(dataDir, skip);
  const dirMode = (await fsp.stat(dataDir)).mode & 0o7777;
  await fsp.rm(dataDir, { recursive: true });
  // A -wal of some other database must not be replayed into the restored one.
  await fsp.mkdir(dataDir, { recursive: true });
  await fsp.writeFile(`${dbFile}-wal`, Buffer.alloc(8192, 1));

  const dry = await restoreLocal(rt, target, id!, { dryRun: true });
  assert.deepEqual(dry.results.map((x) => x.status), ['ok'], JSON.stringify(dry.results));
  assert.ok(!existsSync(log), 'a dry run neither stops nor starts Grafana');
  assert.deepEqual(await fsp.readdir(dataDir), ['grafana.db-wal'], 'a dry run writes nothing');

  const r = await restoreLocal(rt, target, id!);
  assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
  assert.equal(await fsp.readFile(log, 'utf8'), 'stop\nstart\n');
  assert.deepEqual(await tree(dataDir, skip), before);
  assert.equal((await fsp.stat(dataDir)).mode & 0o7777, dirMode);
  assert.ok(!existsSync(path.join(dataDir, 'png')), 'png/ was not backed up, so it does not come back');
  assert.ok(!existsSync(`${dbFile}-wal`), 'the stale -wal is gone');
  const st = await fsp.stat(dbFile);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [GRAFANA_UID, GRAFANA_UID, 0o640]);
  assert.deepEqual(dashboards(dbFile), dashboards(copy));
  assert.deepEqual(openDb(dbFile).pragma('integrity_check'), [{ integrity_check: 'ok' }]);
});

test('a grafana.db that fails PRAGMA integrity_check fails the part; a missing one is named', async () => {
  const dataDir = path.join(tempDir('grafana-bad'), 'grafana');
  await fsp.mkdir(dataDir, { recursive: true });
  const dbFile = path.join(dataDir, 'grafana.db');
  const db = openDb(dbFile);
  db.exec(DASHBOARD_SCHEMA);
  const insert = db.prepare('INSERT INTO dashboard (version, slug, title, data, org_id, created, updated) VALUES (1, ?, ?, ?, 1, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < 300; i++) insert.run(`s${i}`, `t${i}`, dashboardJson(i, 0), 'x', 'x');
  })();
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  // Scribble over the middle of a few table pages, as a bad disk would.
  const fh = await fsp.open(dbFile, 'r+');
  for (const page of [3, 5, 8]) await fh.write(Buffer.alloc(64, 0xff), 0, 64, page * pageSize + 40);
  await fh.close();

  const rt = runtimeOf([grafana(grafanaSchema.parse({ data_dir: dataDir }))]);
  const target = tempDir('target');
  let { manifest } = await backupLocal(rt, target);
  assert.equal(manifest.parts[0]!.status, 'failed');
  assert.match(manifest.parts[0]!.reason, /fails PRAGMA integrity_check/);
  assert.deepEqual(manifest.parts[0]!.artifacts, []);

  await fsp.rm(dbFile);
  ({ manifest } = await backupLocal(rt, target));
  assert.match(manifest.parts[0]!.reason, new RegExp(`${dbFile}: not found`));
});

test('grafana, encrypted (format 4): the database stream and its owner and mode (meta) come back with the identity', async () => {
  const { key, identity } = await testKeys();
  const base = tempDir('grafana-enc');
  const dataDir = path.join(base, 'var/lib/grafana');
  const dbFile = await makeDataDir(dataDir);
  const rt = runtimeOf([grafana(grafanaSchema.parse({ data_dir: dataDir, stop_command: ['true'], start_command: ['true'] }))]);
  const target = tempDir('target');
  const { id, manifest } = await backupLocal(rt, target, [], { key });
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.deepEqual(manifest.parts[0]!.artifacts.map((a) => path.basename(a.path)).sort(), ['files.pieces.gz', 'files.tree.jsonl.gz.age', 'grafana.db.age', 'meta.json.age']);
  const skip = (rel: string) => rel === '.' || rel === 'png' || rel.startsWith('grafana.db');
  const before = await tree(dataDir, skip);
  const rows = dashboards(dbFile);
  await fsp.rm(dataDir, { recursive: true });
  await fsp.mkdir(dataDir, { recursive: true });
  const r = await restoreLocal(rt, target, id, { identity });
  assert.deepEqual(r.results.map((x) => [x.status, x.reason]), [['ok', '']]);
  assert.deepEqual(await tree(dataDir, skip), before);
  const st = await fsp.stat(dbFile);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [GRAFANA_UID, GRAFANA_UID, 0o640]);
  assert.deepEqual(dashboards(dbFile), rows);
});
