/**
 * docs/RECOVERY.md's "lsbackup is gone" script, run as the document has it: an encrypted set of a
 * real PostgreSQL (roles, a database with rows and grants, its config directory and .pgpass) is
 * restored with nothing but Debian's age, zcat, psql, pg_restore and bash; the rows, roles and
 * files come back exactly.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { postgresql, postgresqlSchema } from '../agent/components/postgresql.js';
import { makeKeys } from '../common/keys.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { PG_BIN, PgCluster, requirePostgres } from './helpers/postgres.js';

const SUPER_PW = 'recipe-super-pw';
let pg: PgCluster | undefined;

after(async () => {
  await pg?.destroy();
});

/** The script between the recipe markers of docs/RECOVERY.md. */
function recipe(): string {
  const doc = readFileSync(new URL('../../docs/RECOVERY.md', import.meta.url), 'utf8');
  const m = /<!-- recipe:begin -->\n```bash\n([\s\S]*?)```\n<!-- recipe:end -->/.exec(doc);
  assert.ok(m, 'docs/RECOVERY.md holds the recipe between its markers');
  return m[1]!;
}

/** Content and permission bits of every file and directory under `root`, keyed by path below it. */
async function filesOf(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string) => {
    const st = await fsp.lstat(p);
    const rel = path.relative(root, p);
    if (st.isDirectory()) {
      out[rel] = `dir ${(st.mode & 0o7777).toString(8)}`;
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else if (st.isSymbolicLink()) out[rel] = `link ${await fsp.readlink(p)}`;
    else out[rel] = `file ${(st.mode & 0o7777).toString(8)} ${(await fsp.readFile(p)).toString('base64')}`;
  };
  await walk(root);
  return out;
}

test('postgresql, encrypted (format 4): restored with the identity through lsbackup, then with age, zcat, psql and pg_restore only (docs/RECOVERY.md)', async () => {
  requirePostgres();
  try {
    execFileSync('age', ['--version'], { stdio: 'pipe' });
  } catch {
    assert.fail("Debian's age is needed for this test: apt-get install age");
  }
  const work = tempDir('recipe');
  const conf = path.join(work, 'etc/postgresql/15/main');
  const pgpass = path.join(work, 'var/lib/postgresql/.pgpass');
  await fsp.mkdir(path.join(conf, 'conf.d'), { recursive: true });
  await fsp.mkdir(path.dirname(pgpass), { recursive: true });
  await fsp.writeFile(path.join(conf, 'postgresql.conf'), "listen_addresses = '*'\nmax_connections = 200\n", { mode: 0o644 });
  await fsp.writeFile(path.join(conf, 'pg_hba.conf'), 'host all all 10.0.0.0/8 scram-sha-256\n', { mode: 0o640 });
  await fsp.writeFile(path.join(conf, 'conf.d/tuning.conf'), 'shared_buffers = 1GB\n');
  await fsp.symlink('../postgresql.conf', path.join(conf, 'conf.d/main.conf'));
  await fsp.writeFile(pgpass, '*:5432:*:replication:repl-secret\n', { mode: 0o600 });
  const pwFile = path.join(work, 'admin.pw');
  await fsp.writeFile(pwFile, `${SUPER_PW}\n`, { mode: 0o600 });

  pg = await PgCluster.primary(SUPER_PW);
  await pg.sql(
    'postgres',
    `CREATE ROLE app_rw LOGIN PASSWORD 'rw-secret';
     CREATE DATABASE shop OWNER app_rw;`,
  );
  await pg.sql(
    'shop',
    `SET ROLE app_rw;
     CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(12,2));
     INSERT INTO items SELECT i, 'ürün ' || i, i * 1.25 FROM generate_series(1, 3000) i;`,
  );
  const sums = await pg.tableSums();
  const filesBefore = { ...(await filesOf(path.join(work, 'etc'))), pgpass: (await filesOf(path.dirname(pgpass)))['.pgpass']! };

  const made = await makeKeys({ extra: [] });
  const identity = path.join(work, 'identity.txt');
  await fsp.writeFile(identity, made.identityText, { mode: 0o600 });
  const comp = postgresql(postgresqlSchema.parse({ host: '127.0.0.1', port: pg.port, user: 'postgres', password_file: pwFile, bin_dir: PG_BIN, config_paths: [conf, pgpass] }));
  const rt = runtimeOf([comp]);
  const target = tempDir('recipe-target');
  const { id, manifest } = await backupLocal(rt, target, [], { key: made.key });
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.equal(manifest.format, 'lsbackup-set/4');

  // First through lsbackup itself, with the identity: rows, roles and config files come back.
  await pg.sql('postgres', 'DROP DATABASE shop; DROP ROLE app_rw;');
  await fsp.rm(conf, { recursive: true });
  await fsp.rm(pgpass);
  const restored = await restoreLocal(rt, target, id, { identity: made.identityText });
  assert.deepEqual(restored.results.map((r) => [r.status, r.reason]), [['ok', '']]);
  assert.deepEqual(await pg.tableSums(), sums);
  assert.deepEqual({ ...(await filesOf(path.join(work, 'etc'))), pgpass: (await filesOf(path.dirname(pgpass)))['.pgpass']! }, filesBefore);

  // The cluster is gone: its database and role with it. lsbackup is gone: only the script runs.
  await pg.sql('postgres', 'DROP DATABASE shop; DROP ROLE app_rw;');
  const out = path.join(work, 'recovered');
  const env = { ...process.env, TARGET: target, SET: id, NODE: 'node1', IDENTITY: identity, DATABASE: 'shop', OUT: out, PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: 'postgres', PGPASSWORD: SUPER_PW, PATH: `${PG_BIN}:${process.env.PATH ?? ''}` };
  execFileSync('bash', ['-c', recipe()], { env, stdio: ['ignore', 'pipe', 'pipe'] });

  assert.deepEqual(await pg.tableSums(), sums, 'rows and grants of every table');
  assert.equal(await pg.sql('postgres', "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_rw'"), 't');
  assert.equal(await pg.sql('postgres', "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"), 'app_rw');
  const recovered = await filesOf(path.join(out, work, 'etc'));
  assert.deepEqual({ ...recovered, pgpass: (await filesOf(path.join(out, path.dirname(pgpass))))['.pgpass']! }, filesBefore);
});
