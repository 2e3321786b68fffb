import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { dumpArtifact, planGlobals, postgresql, postgresqlSchema } from '../agent/components/postgresql.js';
import { backupNode, restoreNode } from '../agent/runner.js';
import { commitSet, partOf as toPart } from '../common/commit.js';
import type { Component } from '../agent/components/component.js';
import type { Manifest } from '../common/manifest.js';
import { backupLocal, restoreLocal, runtimeOf as runtimeIn, tempDir } from './helpers/harness.js';
import { PG_BIN, PgCluster, quoteIdent, requirePostgres } from './helpers/postgres.js';

const SUPER_PW = 'initdb-superuser-pw';
const ADMIN = 'lsb_admin';
const ADMIN_PW = `adm'n "pa55" ü 42`;
const APP_PW = 'rw-secret-1';
const WEIRD = `metrics/2024 ü"q'`;

let primary: PgCluster | undefined;
let standby: PgCluster | undefined;
let work: string;
let confDir: string;
let pgpass: string;
let pwFile: string;

const configPaths = () => [confDir, pgpass];

function component(port: number, opts: { passwordFile?: string; binDir?: string } = {}) {
  return postgresql(
    postgresqlSchema.parse({
      host: '127.0.0.1',
      port,
      user: ADMIN,
      password_file: opts.passwordFile ?? pwFile,
      bin_dir: opts.binDir ?? PG_BIN,
      config_paths: configPaths(),
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
const partOf = (m: Manifest) => m.parts.find((p) => p.component === 'postgresql')!;

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
  assert.deepEqual(names, ['db-metrics%2F2024%20%C3%BC%22q%27.dump', 'db-postgres.dump', 'db-shop.dump', 'files.zip', 'globals.sql.gz']);
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

test('postgresql: a standby is skipped, not failed, and the set is still complete', async () => {
  standby = await PgCluster.standbyOf(primary!);
  const onStandby = component(standby.port);
  const health = await onStandby.health();
  assert.equal(health.status, 'ok');
  assert.match(health.detail, /standby/);

  // Primary and standby as two nodes of one set, the way the coordinator commits them.
  const target = scratch('target');
  const id = '20000101T000001Z';
  const dir = path.join(target, id);
  await fsp.mkdir(dir, { mode: 0o700 });
  const signal = new AbortController().signal;
  const results = [
    ...(await backupNode(runtimeOf([component(primary!.port)], 'db1'), { backupId: id, target, node: 'db1', components: [] }, () => undefined, signal)),
    ...(await backupNode(runtimeOf([onStandby], 'db2'), { backupId: id, target, node: 'db2', components: [] }, () => undefined, signal)),
  ];
  const manifest = await commitSet(dir, { id, startedAt: new Date().toISOString(), buildDir: '', nodes: {}, notCovered: [] }, results.map(toPart));
  const [onPrimary, skipped] = manifest.parts;
  assert.equal(onPrimary!.status, 'ok', onPrimary!.reason);
  assert.equal(skipped!.status, 'skipped');
  assert.match(skipped!.reason, /standby/);
  assert.equal(skipped!.artifacts.length, 0);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.deepEqual(manifest.reasons, []);

  // A standby is read-only: a restore aimed at it is refused before anything is attempted.
  const refused = await restoreNode(
    runtimeOf([onStandby], 'db1'),
    { backupId: id, target, node: 'db1', components: [], dryRun: false, force: false, options: {} },
    () => undefined,
    signal,
  );
  assert.equal(refused[0]!.status, 'failed');
  assert.match(refused[0]!.reason, /standby.*restore onto the primary/);
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
  assert.equal(existsSync(path.join(target, id, 'node1/postgresql')), false);
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
  assert.equal(existsSync(path.join(target, id, 'node1/postgresql')), false);

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
  assert.equal(existsSync(path.join(cancelTarget, setId, 'node1/postgresql')), false);
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
