import { after, before, test } from 'node:test';
import { FORMAT } from '../common/manifest.js';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { clientOsUser, dumpArtifact, pickCluster, planGlobals, postgresql, postgresqlSchema } from '../agent/components/postgresql.js';
import { backupNode, restoreNode } from '../agent/runner.js';
import { commitSet } from '../common/commit.js';
import type { Component } from '../agent/components/component.js';
import { run } from '../common/exec.js';
import { backupLocal, partsFromAnswers, restoreLocal, runtimeOf as runtimeIn, tempDir, type ManifestWithEntries } from './helpers/harness.js';
import { PG_BIN, PgCluster, quoteIdent, requirePostgres } from './helpers/postgres.js';

const SUPER_PW = 'initdb-superuser-pw';
const ADMIN = 'lsb_admin';
const ADMIN_PW = `adm'n "pa55" ü 42`;
const APP_PW = 'rw-secret-1';
const WEIRD = `metrics/2024 ü"q'`;

let primary: PgCluster | undefined;
let standby: PgCluster | undefined;
/** A cluster set up the way LambdaStack's postgresql role does (peer auth, no password). */
let lambdaStack: PgCluster | undefined;
let work: string;
let confDir: string;
let pgpass: string;
let pwFile: string;

const configPaths = () => [confDir, pgpass];

function component(port: number, opts: { passwordFile?: string; binDir?: string; backupFrom?: 'primary' | 'standby' } = {}) {
  return postgresql(
    postgresqlSchema.parse({
      host: '127.0.0.1',
      port,
      user: ADMIN,
      password_file: opts.passwordFile ?? pwFile,
      bin_dir: opts.binDir ?? PG_BIN,
      config_paths: configPaths(),
      ...(opts.backupFrom ? { backup_from: opts.backupFrom } : {}),
    }),
  );
}

async function files(paths: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) return;
    const head = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isDirectory()) {
      out[p] = `dir ${head}`;
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out[p] = `file ${head} ${await fsp.readFile(p, 'utf8')}`;
  };
  for (const p of paths) await walk(p);
  return out;
}

/** Scratch directories live under `work`, so the after() hook removes every one of them. */
const scratch = (name: string) => mkdtempSync(path.join(work, `${name}-`));
const runtimeOf = (components: Component[], node = 'node1') => runtimeIn(components, scratch('state'), node);

const messages = (events: { message?: string }[]) => events.map((e) => e.message ?? '').filter(Boolean);
/** What a failed part leaves in its directory: only its record (FORMAT.md "Format 2"), nothing that could pass for a backup. */
const onlyRecord = (dir: string) => fsp.readdir(dir);

const partOf = (m: ManifestWithEntries) => m.parts.find((p) => p.component === 'postgresql')!;

before(async () => {
  requirePostgres();
  work = tempDir('pg-work');
  confDir = path.join(work, 'etc/postgresql/15/main');
  pgpass = path.join(work, 'var/lib/postgresql/.pgpass');
  await fsp.mkdir(path.join(confDir, 'conf.d'), { recursive: true });
  await fsp.mkdir(path.dirname(pgpass), { recursive: true });
  await fsp.writeFile(path.join(confDir, 'postgresql.conf'), "listen_addresses = '*'\nmax_connections = 200\n", { mode: 0o644 });
  await fsp.writeFile(path.join(confDir, 'pg_hba.conf'), 'host all all 10.0.0.0/8 scram-sha-256\n', { mode: 0o640 });
  await fsp.writeFile(path.join(confDir, 'conf.d/tuning.conf'), 'shared_buffers = 1GB\n', { mode: 0o644 });
  await fsp.writeFile(pgpass, '*:5432:*:replication:repl-secret\n', { mode: 0o600 });
  await fsp.chown(pgpass, 1234, 4321);
  pwFile = path.join(work, 'admin.pw');
  await fsp.writeFile(pwFile, `${ADMIN_PW}\n`, { mode: 0o600 });

  primary = await PgCluster.primary(SUPER_PW);
  await primary.sql(
    'postgres',
    `CREATE ROLE ${ADMIN} LOGIN SUPERUSER PASSWORD '${ADMIN_PW.replace(/'/g, "''")}';
     CREATE ROLE reporting NOLOGIN;
     CREATE ROLE app_rw LOGIN PASSWORD '${APP_PW}';
     GRANT reporting TO app_rw;
     ALTER ROLE app_rw SET search_path = public, shop;
     CREATE DATABASE shop OWNER app_rw;
     REVOKE CONNECT ON DATABASE shop FROM PUBLIC;
     GRANT CONNECT ON DATABASE shop TO reporting;
     CREATE DATABASE ${quoteIdent(WEIRD)};
     CREATE TABLE notes (id int PRIMARY KEY, body text);
     INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 100) i;`,
  );
  await primary.sql(
    'shop',
    `SET ROLE app_rw;
     CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, payload bytea, price numeric(12,2), tags text[]);
     INSERT INTO items SELECT i, 'ürün ' || i || ' 日本語 🎉 ' || repeat('ß', i % 7), decode(md5(i::text), 'hex') || '\\x00ff00'::bytea, i * 1.25, ARRAY['a' || i, 'ç']
       FROM generate_series(1, 5000) i;
     CREATE TABLE orders (id bigserial PRIMARY KEY, item_id int REFERENCES items, note text);
     INSERT INTO orders (item_id, note) SELECT 1 + i % 5000, E'line\\n' || i || ' «quoted» ''x''' FROM generate_series(1, 3000) i;
     GRANT SELECT ON items TO reporting;
     GRANT SELECT, INSERT ON orders TO reporting;`,
  );
  await primary.sql(
    WEIRD,
    `CREATE TABLE samples (id bigint PRIMARY KEY, label text, v double precision, raw bytea);
     INSERT INTO samples SELECT i, 'Δ' || i || E'\\t\\\\ "q" ' || chr(1000 + i % 5000), i / 7.0, gen_random_uuid()::text::bytea
       FROM generate_series(1, 4000) i;
     GRANT SELECT ON samples TO reporting;`,
  );
});

after(async () => {
  await lambdaStack?.destroy();
  await standby?.destroy();
  await primary?.destroy();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

test('postgresql: backup on the primary, full restore, then one database alone', async () => {
  const pg = primary!;
  const comp = component(pg.port);
  assert.equal((await comp.health()).status, 'ok');
  assert.ok((await comp.estimateBytes()) > 1_000_000);

  const sums = await pg.tableSums();
  const globals = await pg.globalsSnapshot();
  const conf = await files(configPaths());
  assert.ok(Object.keys(sums).length >= 4, JSON.stringify(sums));
  assert.match(globals, /role app_rw SCRAM-SHA-256\$/);

  const rt = runtimeOf([comp]);
  const target = scratch('target');
  const { id, manifest } = await backupLocal(rt, target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = partOf(manifest);
  assert.equal(part.status, 'ok');
  assert.deepEqual(JSON.parse(part.meta.databases!), [WEIRD, 'postgres', 'shop']);
  const names = part.artifacts.map((a) => path.basename(a.path)).sort();
  assert.deepEqual(names, ['db-metrics%2F2024%20%C3%BC%22q%27.dump', 'db-postgres.dump', 'db-shop.dump', 'files.tree.jsonl.gz', 'globals.sql.gz']);
  for (const a of part.artifacts) {
    const st = await fsp.stat(path.join(target, id, a.path));
    assert.equal(st.mode & 0o777, 0o600, a.path);
    assert.equal(st.size, a.size);
  }
  assert.equal((await fsp.stat(path.join(target, id, 'node1/postgresql'))).mode & 0o777, 0o700);
  const outDir = path.join(target, id, 'node1/postgresql');
  assert.equal((await fsp.readFile(path.join(outDir, dumpArtifact(WEIRD)))).subarray(0, 5).toString(), 'PGDMP');
  assert.match(gunzipSync(await fsp.readFile(path.join(outDir, 'globals.sql.gz'))).toString(), /CREATE ROLE app_rw;/);
  assert.ok(part.entries.some((e) => e.path === pgpass && (e.mode & 0o777) === 0o600 && e.uid === 1234));
  const manifestText = await fsp.readFile(path.join(target, id, 'manifest.json'), 'utf8');
  for (const secret of [ADMIN_PW, APP_PW, 'repl-secret']) assert.ok(!manifestText.includes(secret), `manifest holds ${secret}`);

  // Damage: a database and the role owning it gone, rows lost elsewhere, config edited and removed.
  await pg.sql('postgres', 'DROP DATABASE shop; DROP ROLE app_rw;');
  await pg.sql(WEIRD, 'DELETE FROM samples WHERE id % 3 = 0;');
  await pg.sql('postgres', 'DELETE FROM notes WHERE id > 50;');
  await fsp.writeFile(path.join(confDir, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\n');
  await fsp.rm(pgpass);

  const dryWhole = await restoreLocal(rt, target, id, { dryRun: true });
  assert.deepEqual(dryWhole.results.map((r) => r.status), ['ok'], JSON.stringify(dryWhole.results));
  const plan = messages(dryWhole.events);
  assert.ok(plan.some((m) => /would restore globals: create role\(s\) 'app_rw'/.test(m)), plan.join('\n'));
  assert.ok(plan.some((m) => m.startsWith(`would create database 'shop'`)), plan.join('\n'));
  assert.ok(plan.some((m) => m.startsWith(`would drop and recreate database '${WEIRD}'`)), plan.join('\n'));
  assert.ok(plan.includes(`would restore file ${pgpass}`), plan.join('\n'));
  assert.equal(await pg.sql('postgres', "SELECT count(*) FROM pg_roles WHERE rolname = 'app_rw'"), '0');
  assert.ok(!existsSync(pgpass));

  const whole = await restoreLocal(rt, target, id);
  assert.deepEqual(whole.results.map((r) => r.status), ['ok'], JSON.stringify(whole.results));
  const said = messages(whole.events);
  assert.ok(said.some((m) => /restored globals: created role\(s\) 'app_rw'/.test(m)), said.join('\n'));
  assert.ok(said.includes(`created database 'shop'`), said.join('\n'));
  assert.ok(said.includes(`recreated database '${WEIRD}'`), said.join('\n'));
  assert.ok(said.includes(`recreated database 'postgres'`), said.join('\n'));
  assert.deepEqual(await pg.tableSums(), sums);
  assert.equal(await pg.globalsSnapshot(), globals);
  assert.deepEqual(await files(configPaths()), conf);

  // One database alone: nothing else (rows, roles, config) is touched.
  await pg.sql('shop', "INSERT INTO items VALUES (9999, 'after the backup', NULL, 1, NULL);");
  await pg.sql('postgres', `DROP DATABASE ${quoteIdent(WEIRD)}; ALTER ROLE app_rw PASSWORD 'changed-later';`);
  await fsp.writeFile(path.join(confDir, 'postgresql.conf'), 'max_connections = 50\n');
  const afterEdits = await files(configPaths());
  const globalsNow = await pg.globalsSnapshot();

  const dry = await restoreLocal(rt, target, id, { dryRun: true, options: { database: WEIRD } });
  assert.deepEqual(dry.results.map((r) => r.status), ['ok'], JSON.stringify(dry.results));
  assert.ok(messages(dry.events).some((m) => m.startsWith(`would create database '${WEIRD}'`)), messages(dry.events).join('\n'));
  assert.equal(await pg.sql('postgres', `SELECT count(*) FROM pg_database WHERE datname = '${WEIRD.replace(/'/g, "''")}'`), '0');

  const missing = await restoreLocal(rt, target, id, { options: { database: 'nope' } });
  assert.equal(missing.results[0]!.status, 'failed');
  assert.match(missing.results[0]!.reason, /no database 'nope'/);

  const single = await restoreLocal(rt, target, id, { options: { database: WEIRD } });
  assert.deepEqual(single.results.map((r) => r.status), ['ok'], JSON.stringify(single.results));
  assert.ok(messages(single.events).includes(`created database '${WEIRD}'`), messages(single.events).join('\n'));
  const now = await pg.tableSums();
  for (const [k, v] of Object.entries(sums)) {
    if (k.startsWith(`${WEIRD} `)) assert.equal(now[k], v, k);
  }
  assert.equal(await pg.sql('shop', 'SELECT count(*) FROM items'), '5001');
  const lines = (s: string) => s.split('\n').sort();
  const weirdLine = lines(globals).filter((l) => l.startsWith(`db ${WEIRD} `));
  assert.deepEqual(lines(await pg.globalsSnapshot()), [...lines(globalsNow), ...weirdLine].sort());
  assert.deepEqual(await files(configPaths()), afterEdits);
});

test('postgresql: a standby is skipped with its reason, a restore on it is refused, and a restore on the primary says what each standby needs', async () => {
  standby = await PgCluster.standbyOf(primary!, 'db2');
  const onStandby = component(standby.port);
  const health = await onStandby.health();
  assert.equal(health.status, 'ok');
  assert.match(health.detail, /standby/);

  // Primary and standby as two nodes of one set, the way the coordinator commits them, with what
  // the build directory says of a replicated cluster (manifest.yml extensions.replication.enabled).
  const target = scratch('target');
  const id = '20000101T000001Z';
  const dir = path.join(target, id);
  await fsp.mkdir(dir, { mode: 0o700 });
  const signal = new AbortController().signal;
  const plans = [{ component: 'postgresql', optional: false, facts: { replication: 'true', primary: 'db1' } }];
  const sums = await primary!.tableSums();
  const results = [
    ...(await backupNode(runtimeOf([component(primary!.port)], 'db1'), { backupId: id, target, setFormat: 3, node: 'db1', components: [], plans }, () => undefined, signal)),
    ...(await backupNode(runtimeOf([onStandby], 'db2'), { backupId: id, target, setFormat: 3, node: 'db2', components: [], plans }, () => undefined, signal)),
  ];
  const manifest = await commitSet(dir, FORMAT, { id, startedAt: new Date().toISOString(), buildDir: '', nodes: {}, notCovered: [] }, await partsFromAnswers(dir, results));
  const [onPrimary, skipped] = manifest.parts;
  assert.equal(onPrimary!.status, 'ok', onPrimary!.reason);
  assert.equal(skipped!.status, 'skipped');
  assert.equal(
    skipped!.reason,
    `standby (in recovery) at 127.0.0.1:${standby.port}, streaming from ${primary!.sockDir}:${primary!.port}; the primary is backed up instead (backup_from: standby backs up here)`,
  );
  assert.equal(skipped!.artifacts.length, 0);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.deepEqual(manifest.reasons, []);
  const meta = onPrimary!.meta;
  assert.deepEqual(
    { replication: meta.replication, primary: meta.primary, standbys: meta.standbys, backedUpFrom: meta.backed_up_from, priv: meta.privileged_user, db: meta.repmgr_database },
    { replication: 'true', primary: 'db1', standbys: JSON.stringify([{ name: 'db2', address: null }]), backedUpFrom: 'primary', priv: 'ls_repmgr_admin', db: 'ls_repmgr' },
  );

  // A standby is read-only: a restore aimed at it is refused before anything is attempted.
  const refused = await restoreNode(
    runtimeOf([onStandby], 'db1'),
    { backupId: id, target, node: 'db1', components: [], dryRun: false, force: false, options: {} },
    () => undefined,
    signal,
  );
  assert.equal(refused[0]!.status, 'failed');
  assert.match(refused[0]!.reason, /standby \(in recovery, streaming from .*\); restore onto the primary/);

  // On the primary, with the standby streaming: it receives the restore through WAL.
  await primary!.sql('shop', 'DELETE FROM orders WHERE id > 10;');
  const restoreOnPrimary = async (dryRun: boolean) => {
    const events: { message?: string }[] = [];
    const r = await restoreNode(
      runtimeOf([component(primary!.port)], 'db1'),
      { backupId: id, target, node: 'db1', components: [], dryRun, force: false, options: {} },
      (e) => events.push(e),
      signal,
    );
    assert.deepEqual(r.map((x) => x.status), ['ok'], JSON.stringify(r));
    return messages(events);
  };
  const register = `then on db1, as root, so repmgr's records match the restored cluster: runuser -u postgres -- repmgr --superuser=ls_repmgr_admin primary register --force && systemctl start repmgrd`;
  const said = await restoreOnPrimary(false);
  assert.ok(said.includes('replication: standby(s) db2 stream from this primary and received the restore through WAL'), said.join('\n'));
  assert.ok(said.includes(register), said.join('\n'));
  assert.ok(!said.some((m) => m.startsWith('re-clone')), said.join('\n'));
  assert.deepEqual(await primary!.tableSums(), sums);
  let onStandbyNow: Record<string, string> = {};
  for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    onStandbyNow = await standby.tableSums();
    if (JSON.stringify(onStandbyNow) === JSON.stringify(sums)) break;
  }
  assert.deepEqual(onStandbyNow, sums, 'the standby has the restored rows');

  // backup_from: standby turns it round: the standby is dumped, the primary (with a standby streaming) skipped.
  const fromStandby = scratch('target');
  const { manifest: m2 } = await backupLocal(runtimeOf([component(standby.port, { backupFrom: 'standby' })]), fromStandby);
  assert.equal(partOf(m2).status, 'ok', partOf(m2).reason);
  assert.equal(partOf(m2).meta.backed_up_from, 'standby');
  assert.equal(partOf(m2).meta.primary, primary!.sockDir, 'without build directory facts, the primary is what the standby streams from');
  assert.deepEqual(JSON.parse(partOf(m2).meta.databases!), JSON.parse(meta.databases!));
  const { manifest: m3 } = await backupLocal(runtimeOf([component(primary!.port, { backupFrom: 'standby' })]), scratch('target'));
  assert.equal(partOf(m3).status, 'skipped');
  assert.equal(partOf(m3).reason, 'primary with standby(s) db2 and backup_from: standby; a standby is backed up instead');

  // A standby that does not stream now must be cloned again: the exact commands, as LambdaStack's recovery role runs them.
  await standby.stop();
  const plan = await restoreOnPrimary(true);
  assert.ok(plan.includes('replication: no standby streams from this primary now'), plan.join('\n'));
  const clone = [
    'systemctl stop repmgrd',
    'systemctl stop postgresql',
    `runuser -u postgres -- repmgr -h db1 -U ls_repmgr_admin -d ls_repmgr -p ${primary!.port} standby clone --force`,
    'systemctl start postgresql',
    'runuser -u postgres -- repmgr standby register --force',
    'systemctl start repmgrd',
    'runuser -u postgres -- repmgr standby follow',
  ].join(' && ');
  assert.ok(plan.includes(`re-clone standby db2 from db1, as root on it: ${clone}`), plan.join('\n'));
  assert.ok(plan.includes(register), plan.join('\n'));
});

test('postgresql: a wrong password fails with one clear line and leaves nothing behind', async () => {
  const bad = path.join(work, 'wrong.pw');
  await fsp.writeFile(bad, 'Wr0ng-PW-xyz\n', { mode: 0o600 });
  const comp = component(primary!.port, { passwordFile: bad });
  const health = await comp.health();
  assert.equal(health.status, 'down');
  assert.match(health.detail, /authentication failed/);

  const target = scratch('target');
  const { id, manifest } = await backupLocal(runtimeOf([comp]), target);
  const part = partOf(manifest);
  assert.equal(part.status, 'failed');
  assert.match(part.reason, /password authentication failed for user "lsb_admin"/);
  assert.ok(!part.reason.includes('\n'), part.reason);
  assert.ok(!part.reason.includes('Wr0ng-PW-xyz'));
  assert.equal(manifest.status, 'failed');
  assert.deepEqual(await onlyRecord(path.join(target, id, 'node1/postgresql')), ['part.json']);
});

/** A bin_dir where psql and pg_dumpall are real and pg_dump is the given script. */
async function fakeBinDir(pgDumpScript: string): Promise<string> {
  const dir = scratch('bin');
  for (const b of ['psql', 'pg_dumpall']) await fsp.symlink(path.join(PG_BIN, b), path.join(dir, b));
  await fsp.writeFile(path.join(dir, 'pg_dump'), `#!/bin/sh\n${pgDumpScript}\n`, { mode: 0o755 });
  return dir;
}

test('postgresql: a pg_dump that dies mid-stream fails the part; a cancel kills pg_dump', async () => {
  const dying = await fakeBinDir(`printf 'PGDMP partial'\necho "pg_dump: error: query failed: simulated crash" >&2\nexit 1`);
  const target = scratch('target');
  const { id, manifest } = await backupLocal(runtimeOf([component(primary!.port, { binDir: dying })]), target);
  const part = partOf(manifest);
  assert.equal(part.status, 'failed');
  assert.match(part.reason, /pg_dump of database '.*' failed \(exit 1\): pg_dump: error: query failed: simulated crash/);
  assert.deepEqual(await onlyRecord(path.join(target, id, 'node1/postgresql')), ['part.json']);

  const pidFile = path.join(scratch('pid'), 'pid');
  const hanging = await fakeBinDir(`echo $$ > ${pidFile}\nprintf 'PGDMP'\nexec sleep 60`);
  const ac = new AbortController();
  const started = Date.now();
  const watcher = (async () => {
    while (!existsSync(pidFile) && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
    ac.abort();
  })();
  const cancelTarget = scratch('target');
  const setId = '20000101T000000Z';
  await fsp.mkdir(path.join(cancelTarget, setId), { mode: 0o700 });
  const [result] = await backupNode(runtimeOf([component(primary!.port, { binDir: hanging })]), { backupId: setId, target: cancelTarget, node: 'node1', components: [] }, () => undefined, ac.signal);
  await watcher;
  assert.equal(result!.status, 'failed');
  assert.match(result!.reason, /cancel/);
  assert.ok(Date.now() - started < 20_000);
  const pid = Number(await fsp.readFile(pidFile, 'utf8'));
  // The kill is sent when the cancel lands; the process is gone once the kernel and our reaper are done with it.
  const gone = async () => {
    for (const until = Date.now() + 5_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      try {
        process.kill(pid, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
      }
    }
    return false;
  };
  assert.ok(await gone(), `pg_dump stand-in (pid ${pid}) still runs 5 s after the cancel`);
  assert.deepEqual(await onlyRecord(path.join(cancelTarget, setId, 'node1/postgresql')), ['part.json']);
});

test('postgresql: globals replay skips only the CREATE of what exists, whatever the names hold', () => {
  const odd = 'odd; "name"\nCREATE ROLE x;';
  const dump = [
    'SET standard_conforming_strings = on;',
    '',
    '--',
    '-- Roles',
    '--',
    '',
    'CREATE ROLE app_rw;',
    "ALTER ROLE app_rw WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:app';",
    `CREATE ROLE ${quoteIdent(odd)};`,
    `ALTER ROLE ${quoteIdent(odd)} WITH NOLOGIN;`,
    "COMMENT ON ROLE app_rw IS 'line1",
    'CREATE ROLE postgres;',
    "it''s';",
    'CREATE ROLE postgres;',
    "ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:old';",
    "CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';",
    "CREATE TABLESPACE slow OWNER postgres LOCATION '/srv/slow';",
    '',
  ].join('\n');
  const plan = planGlobals(dump, new Set(['postgres', odd]), new Set(['fast']), 'postgres');
  assert.deepEqual(plan.created, ['app_rw']);
  assert.deepEqual(plan.updated, [odd, 'postgres']);
  assert.deepEqual(plan.keptTablespaces, ['fast']);
  assert.match(plan.sql, /^CREATE ROLE app_rw;$/m);
  assert.ok(!plan.sql.includes(`CREATE ROLE "odd`));
  assert.ok(plan.sql.includes(`ALTER ROLE ${quoteIdent(odd)} WITH NOLOGIN;`));
  // The only CREATE ROLE postgres left is the one inside the comment's text.
  assert.ok(plan.sql.includes("IS 'line1\nCREATE ROLE postgres;\nit''s';"));
  assert.equal(plan.sql.split('CREATE ROLE postgres;').length, 2);
  // The connecting role keeps its password; others get theirs back.
  assert.match(plan.sql, /^ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN;$/m);
  assert.ok(plan.sql.includes("PASSWORD 'SCRAM-SHA-256$4096:app'"));
  assert.ok(!plan.sql.includes('/srv/fast'));
  assert.ok(plan.sql.includes('/srv/slow'));
});

test('postgresql: detection finds the one <root>/<version>/main (LambdaStack 14, Epiphany 13), picks by port among several, and says how it connects', async () => {
  const root = scratch('layout');
  const etc = path.join(root, 'etc/postgresql');
  const lib = path.join(root, 'usr/lib/postgresql');
  const passwd = path.join(root, 'passwd');
  await fsp.writeFile(passwd, 'root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n');
  const host = { libRoot: lib, passwd, pgpass: path.join(root, 'no/.pgpass') };
  const cluster = async (version: string, conf: string) => {
    await fsp.mkdir(path.join(etc, version, 'main'), { recursive: true });
    await fsp.writeFile(path.join(etc, version, 'main/postgresql.conf'), conf);
  };
  const settings = (extra: Record<string, unknown> = {}) => postgresqlSchema.parse({ config_root: etc, ...extra });
  const detect = (extra: Record<string, unknown> = {}) => postgresql(settings(extra), host).detect();
  const peer = `peer auth as OS user postgres on /var/run/postgresql port 5432`;

  assert.deepEqual(await detect(), {
    present: false,
    detail: `no PostgreSQL here: no PostgreSQL cluster under ${etc} (looked for ${etc}/*/main/postgresql.conf); set config_dir`,
  });

  // Epiphany: 13; the template's postgresql.conf names the data directory and sets no port.
  await cluster('13', "data_directory = '/var/lib/postgresql/13/main'\t\t# use data in another directory\n#port = 5432\n");
  assert.deepEqual(await detect(), { present: true, detail: `PostgreSQL 13 at ${etc}/13/main, data /var/lib/postgresql/13/main; ${peer}` });
  await fsp.rm(path.join(etc, '13'), { recursive: true });

  // LambdaStack: 14, with its client programs where postgresql-client-14 puts them.
  await cluster('14', "data_directory = '/var/lib/postgresql/14/main'\nport 5432 # the 'name value' form\n");
  await fsp.mkdir(path.join(lib, '14/bin'), { recursive: true });
  await fsp.writeFile(path.join(lib, '14/bin/psql'), '');
  assert.deepEqual(await detect(), { present: true, detail: `PostgreSQL 14 at ${etc}/14/main, data /var/lib/postgresql/14/main; ${peer}` });
  assert.deepEqual(await pickCluster(settings(), lib), {
    version: '14',
    configDir: `${etc}/14/main`,
    dataDir: '/var/lib/postgresql/14/main',
    port: 5432,
    binDir: `${lib}/14/bin`,
  });
  // Over TCP with a password the agent stays itself; peer is only for the socket.
  assert.match((await detect({ host: '10.0.0.5', password_file: '/etc/lsbackup/pg.pw' })).detail, /; password for 'postgres' at 10\.0\.0\.5:5432$/);

  // Two versions: the one on the configured port, else an error naming both and the setting.
  await cluster('13', "data_directory = '/var/lib/postgresql/13/main'\nport = 5433\n");
  assert.match((await detect()).detail, new RegExp(`^PostgreSQL 14 at ${etc}/14/main,`));
  assert.match((await detect({ port: 5433 })).detail, new RegExp(`^PostgreSQL 13 at ${etc}/13/main,`));
  const none = await detect({ port: 6000 });
  assert.equal(none.present, true, 'PostgreSQL is here; the backup must fail saying what to set');
  assert.equal(none.detail, `2 PostgreSQL clusters under ${etc}: ${etc}/13/main (port 5433), ${etc}/14/main (port 5432); none on port 6000: set config_dir (and port) in agent.yaml`);
  await cluster('13', "data_directory = '/var/lib/postgresql/13/main'\n");
  assert.match((await detect()).detail, /more than one on port 5432: set config_dir/);
  assert.match((await detect({ config_dir: `${etc}/13/main` })).detail, new RegExp(`^PostgreSQL 13 at ${etc}/13/main, data /var/lib/postgresql/13/main;`));

  // Whom the client programs run as (the tests run as root, as the agent does).
  assert.equal((await clientOsUser(settings(), passwd))?.uid, 101);
  assert.equal(await clientOsUser(settings({ host: '127.0.0.1' }), passwd), undefined);
  assert.equal(await clientOsUser(settings({ user: 'lsb_admin' }), passwd), undefined, 'no such OS user: the agent connects as itself');
  await assert.rejects(clientOsUser(settings({ os_user: 'pgadmin' }), passwd), /os_user 'pgadmin' is not a user of this node/);
});

test('postgresql: a node set up like LambdaStack (peer auth, postgres without a password, /etc/postgresql/15/main): round trip with no user or password set', async () => {
  lambdaStack = await PgCluster.lambdaStack();
  const ls = lambdaStack;
  const L = ls.layout!;
  // The setup really is peer-only: root, which the agent runs as, cannot log in as postgres.
  const asRoot = await run([path.join(PG_BIN, 'psql'), '-X', '-w', '-h', ls.sockDir, '-p', String(ls.port), '-U', 'postgres', '-d', 'postgres', '-c', 'SELECT 1'], { check: false, cwd: '/' });
  assert.notEqual(asRoot.code, 0);
  assert.match(asRoot.stderr, /Peer authentication failed for user "postgres"/);
  assert.equal(await ls.sql('postgres', "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'"), 't');

  await fsp.writeFile(L.pgpass, '*:*:*:ls_repmgr:repmgr-secret\n', { mode: 0o600 });
  await run(['chown', 'postgres:postgres', L.pgpass]);
  await ls.sql(
    'postgres',
    `CREATE ROLE app LOGIN PASSWORD 'app-secret-7';
     CREATE ROLE readers NOLOGIN;
     GRANT readers TO app;
     CREATE DATABASE inventory OWNER app;
     CREATE TABLE settings (id int PRIMARY KEY, v text);
     INSERT INTO settings SELECT i, 'v' || i FROM generate_series(1, 50) i;`,
  );
  await ls.sql(
    'inventory',
    `SET ROLE app;
     CREATE TABLE parts (id int PRIMARY KEY, name text, qty int);
     INSERT INTO parts SELECT i, 'część ' || i, i % 17 FROM generate_series(1, 3000) i;
     GRANT SELECT ON parts TO readers;`,
  );

  // Nothing but where this test's server is: no user, password, bin_dir or config paths.
  const settings = postgresqlSchema.parse({ host: ls.sockDir, port: ls.port, config_root: L.configRoot });
  assert.equal(settings.user, 'postgres');
  const comp = postgresql(settings, { libRoot: '/usr/lib/postgresql', passwd: '/etc/passwd', pgpass: L.pgpass });
  assert.deepEqual(await comp.detect(), {
    present: true,
    detail: `PostgreSQL 15 at ${L.configDir}, data ${ls.data}; peer auth as OS user postgres on ${ls.sockDir} port ${ls.port}`,
  });
  const health = await comp.health();
  assert.equal(health.status, 'ok', health.detail);

  const sums = await ls.tableSums();
  const globals = await ls.globalsSnapshot();
  const conf = await files([L.configDir, L.pgpass]);
  assert.match(globals, /role app md5[0-9a-f]{32} /);
  assert.ok(Object.keys(sums).some((k) => k.startsWith('inventory ')), JSON.stringify(sums));

  const rt = runtimeOf([comp]);
  const target = scratch('target');
  const { id, manifest } = await backupLocal(rt, target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = partOf(manifest);
  assert.deepEqual(JSON.parse(part.meta.databases!), ['inventory', 'postgres']);
  assert.equal(part.meta.config_dir, L.configDir);
  assert.equal(part.meta.data_dir, ls.data);
  assert.equal(part.meta.replication, 'unknown', 'no build directory facts and no standby: unknown, not false');
  const hba = part.entries.find((e) => e.path === path.join(L.configDir, 'pg_hba.conf'));
  assert.ok(hba && (hba.mode & 0o777) === 0o600 && hba.uid === 101, JSON.stringify(hba));
  assert.ok(part.entries.some((e) => e.path === L.pgpass), 'the .pgpass is backed up when present');
  const manifestText = await fsp.readFile(path.join(target, id, 'manifest.json'), 'utf8');
  for (const secret of ['app-secret-7', 'repmgr-secret']) assert.ok(!manifestText.includes(secret), `manifest holds ${secret}`);

  // Everything gone: the second database, the role, rows, the configuration edited and the .pgpass removed.
  await ls.sql('postgres', 'DROP DATABASE inventory; DROP ROLE app; DROP ROLE readers; DELETE FROM settings WHERE id > 5;');
  await fsp.writeFile(path.join(L.configDir, 'pg_hba.conf'), 'local all all trust\n');
  await fsp.rm(L.pgpass);

  const restored = await restoreLocal(rt, target, id);
  assert.deepEqual(restored.results.map((r) => r.status), ['ok'], JSON.stringify(restored.results));
  assert.ok(messages(restored.events).includes(`created database 'inventory'`), messages(restored.events).join('\n'));
  assert.ok(!messages(restored.events).some((m) => m.startsWith('replication:')), 'nothing to say of standbys on a single node');
  assert.deepEqual(await ls.tableSums(), sums);
  assert.equal(await ls.globalsSnapshot(), globals);
  assert.deepEqual(await files([L.configDir, L.pgpass]), conf);
});

test('postgresql: a required config path that is missing fails the part with one line naming it; a missing .pgpass is left out', async () => {
  const ls = lambdaStack!;
  const L = ls.layout!;
  const absent = path.join(work, 'absent');
  const base = { host: ls.sockDir, port: ls.port, config_root: L.configRoot };
  const hostWith = (pgpass: string) => ({ libRoot: '/usr/lib/postgresql', passwd: '/etc/passwd', pgpass });
  const cases: [Record<string, unknown>, string][] = [
    [{ config_dir: `${absent}/etc/postgresql/14/main` }, `config_dir ${absent}/etc/postgresql/14/main does not exist`],
    [{ pgpass_file: `${absent}/.pgpass` }, `config path ${absent}/.pgpass (pgpass_file) does not exist; nothing was backed up`],
    [{ config_paths: [L.configDir, `${absent}/repmgr.conf`] }, `config path ${absent}/repmgr.conf (config_paths) does not exist; nothing was backed up`],
    [{ config_root: `${absent}/etc/postgresql` }, `no PostgreSQL cluster under ${absent}/etc/postgresql (looked for ${absent}/etc/postgresql/*/main/postgresql.conf); set config_dir`],
  ];
  for (const [extra, reason] of cases) {
    const comp = postgresql(postgresqlSchema.parse({ ...base, ...extra }), hostWith(L.pgpass));
    const target = scratch('target');
    // Served as configured in agent.yaml (detection alone would not serve a component it cannot find).
    const { id, manifest } = await backupLocal(runtimeOf([comp]), target);
    const part = partOf(manifest);
    assert.equal(part.status, 'failed', JSON.stringify(extra));
    assert.equal(part.reason, reason);
    assert.deepEqual(await onlyRecord(path.join(target, id, 'node1/postgresql')), ['part.json']);
  }

  // The default .pgpass is optional: LambdaStack writes it only with the repmgr extension.
  const comp = postgresql(postgresqlSchema.parse(base), hostWith(`${absent}/.pgpass`));
  const { manifest } = await backupLocal(runtimeOf([comp]), scratch('target'));
  const part = partOf(manifest);
  assert.equal(part.status, 'ok', part.reason);
  assert.ok(part.entries.some((e) => e.path === path.join(L.configDir, 'postgresql.conf')));
  assert.ok(!part.entries.some((e) => e.path.endsWith('.pgpass')), JSON.stringify(part.entries.map((e) => e.path)));
});
