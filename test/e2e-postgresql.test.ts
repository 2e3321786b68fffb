/**
 * PostgreSQL through the whole system, as the issue asks: the CLI, the coordinator and an agent
 * back up a real server; a dropped database and role come back through `lsbackup restore`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DemoCluster } from '../demo/cluster.js';
import { PG_BIN, PgCluster, requirePostgres } from './helpers/postgres.js';
import { dropCluster, startCluster } from './helpers/harness.js';

let pg: PgCluster | undefined;
let c: DemoCluster | undefined;

before(async () => {
  requirePostgres();
  pg = await PgCluster.primary('super-secret-pw');
  await pg.sql('postgres', "CREATE ROLE shop_rw LOGIN PASSWORD 'rw-pw'; CREATE DATABASE shop OWNER shop_rw;");
  await pg.sql('shop', "CREATE TABLE orders (id int PRIMARY KEY, item text, blob bytea); INSERT INTO orders SELECT g, 'zamówienie ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g; GRANT SELECT ON orders TO shop_rw;");
  const secrets = path.join(pg.root, 'secrets');
  await fsp.mkdir(secrets, { mode: 0o700 });
  await fsp.writeFile(path.join(secrets, 'pg.pw'), 'super-secret-pw\n', { mode: 0o600 });
  c = await startCluster({ nodes: 1, groups: [['postgresql', 'haproxy']] }, async (made) => {
    // node1 runs HAProxy from the demo sandbox and this real PostgreSQL.
    const cfg = YAML.parse(await fsp.readFile(made.nodes[0]!.configFile, 'utf8'));
    cfg.components.postgresql = { host: '127.0.0.1', port: pg!.port, user: 'postgres', password_file: path.join(secrets, 'pg.pw'), bin_dir: PG_BIN, config_paths: [path.join(pg!.data, 'postgresql.conf')] };
    await fsp.writeFile(made.nodes[0]!.configFile, YAML.stringify(cfg));
  });
});

after(async () => {
  await dropCluster(c);
  await pg?.destroy();
});

test('back up a real PostgreSQL through the CLI, drop a database and a role, restore them through the CLI', async () => {
  const sums = await pg!.tableSums();
  const roles = await pg!.globalsSnapshot();
  const b = await c!.cli(['--json', 'backup', '-b', c!.buildDir, '-t', c!.target]);
  assert.equal(b.code, 0, b.stderr + b.stdout.slice(-800));
  const id = DemoCluster.result<{ backupId: string; status: string }>(b.stdout).backupId;
  assert.doesNotMatch(b.stdout + b.stderr, /super-secret-pw/, 'the password is never in progress or results');
  const manifest = await fsp.readFile(path.join(c!.target, id, 'manifest.json'), 'utf8');
  assert.doesNotMatch(manifest, /super-secret-pw/);
  assert.match(manifest, /node1\/postgresql\/db-shop\.dump/);

  await pg!.sql('postgres', 'DROP DATABASE shop; DROP ROLE shop_rw;');
  const r = await c!.cli(['--json', 'restore', id, '-t', c!.target, '--node', 'node1']);
  assert.equal(r.code, 0, r.stderr + r.stdout.slice(-800));
  assert.deepEqual(await pg!.tableSums(), sums);
  assert.equal(await pg!.globalsSnapshot(), roles);

  await pg!.sql('shop', 'DELETE FROM orders WHERE id > 10;');
  const one = await c!.cli(['--json', 'restore', id, '-t', c!.target, '--node', 'node1', '--database', 'shop']);
  assert.equal(one.code, 0, one.stderr + one.stdout);
  assert.deepEqual(await pg!.tableSums(), sums);
  // The size reported is shop's dump, not the whole part's.
  const parts = JSON.parse(manifest) as { parts: { component: string; artifacts: { path: string; size: number }[] }[] };
  const shopDump = parts.parts.find((p) => p.component === 'postgresql')!.artifacts.find((a) => a.path.endsWith('/db-shop.dump'))!.size;
  const restored = DemoCluster.result<{ parts: { component: string; bytes: number }[] }>(one.stdout).parts.find((p) => p.component === 'postgresql')!.bytes;
  assert.equal(Number(restored), shopDump);
});

test('PostgreSQL down: one clear error for that part, HAProxy on the same node still lands, the set is partial', async () => {
  await pg!.stop();
  try {
    const b = await c!.cli(['--json', 'backup', '-b', c!.buildDir, '-t', c!.target]);
    assert.equal(b.code, 1, b.stderr);
    const s = DemoCluster.result<{ status: string; parts: { component: string; status: string; reason: string }[] }>(b.stdout);
    assert.equal(s.status, 'partial');
    const part = s.parts.find((p) => p.component === 'postgresql')!;
    assert.equal(part.status, 'failed');
    assert.match(part.reason, /127\.0\.0\.1.*(refused|could not connect|No such file)/i);
    assert.doesNotMatch(part.reason, /\n|\.js:\d+:\d+/, 'one line, no stack');
    assert.equal(s.parts.find((p) => p.component === 'haproxy')?.status, 'ok');
  } finally {
    await pg!.start();
  }
});

test('a node set up like LambdaStack (peer auth, no password): agent.yaml names only where the server is; backup and restore through the CLI', async () => {
  const ls = await PgCluster.lambdaStack();
  let demo: DemoCluster | undefined;
  try {
    await ls.sql('postgres', "CREATE ROLE crm LOGIN PASSWORD 'crm-pw-3'; CREATE DATABASE crm OWNER crm;");
    await ls.sql('crm', "SET ROLE crm; CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers SELECT g, 'klient ' || g FROM generate_series(1, 2000) g;");
    // The test server's socket, port and config root; user, password, bin_dir and paths are the component's own.
    const components = { postgresql: { host: ls.sockDir, port: ls.port, config_root: ls.layout!.configRoot } };
    demo = await startCluster({ nodes: 1, groups: [['postgresql']], nodeOverrides: [{ components }] });
    const sums = await ls.tableSums();
    const roles = await ls.globalsSnapshot();

    const b = await demo.cli(['--json', 'backup', '-b', demo.buildDir, '-t', demo.target]);
    assert.equal(b.code, 0, b.stderr + b.stdout.slice(-800));
    const id = DemoCluster.result<{ backupId: string; status: string }>(b.stdout).backupId;
    const manifest = await fsp.readFile(path.join(demo.target, id, 'manifest.json'), 'utf8');
    assert.match(manifest, /node1\/postgresql\/db-crm\.dump/);
    const files = await demo.cli(['--json', 'show', id, '-t', demo.target, '--files', '--component', 'postgresql']);
    assert.equal(files.code, 0, files.stderr);
    assert.ok(files.stdout.includes(`"path":${JSON.stringify(path.join(ls.layout!.configDir, 'pg_hba.conf'))}`), 'the detected config dir is in the set');

    await ls.sql('postgres', 'DROP DATABASE crm; DROP ROLE crm;');
    const r = await demo.cli(['--json', 'restore', id, '-t', demo.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-800));
    assert.deepEqual(await ls.tableSums(), sums);
    assert.equal(await ls.globalsSnapshot(), roles);
  } finally {
    await dropCluster(demo);
    await ls.destroy();
  }
});
