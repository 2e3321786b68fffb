import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { prometheus, prometheusSchema, withAdminFlag } from '../agent/components/prometheus.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { testKeys } from './helpers/test-keys.js';
import { fakeService, freePort, getJson, requireBinaries, waitHttp, type FakeService } from './helpers/prom-service.js';

const PROMETHEUS = '/usr/bin/prometheus';

interface Prom {
  url: string;
  svc: FakeService;
  tsdb: string;
  etc: string;
  root: string;
}

async function startPrometheus(name: string, adminApi: boolean): Promise<Prom> {
  requireBinaries(PROMETHEUS);
  const root = tempDir(name);
  const etc = path.join(root, 'etc/prometheus');
  const tsdb = path.join(root, 'tsdb');
  await fsp.mkdir(path.join(etc, 'rules'), { recursive: true });
  const port = await freePort();
  await fsp.writeFile(
    path.join(etc, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`,
  );
  await fsp.writeFile(path.join(etc, 'rules/up.yml'), 'groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n');
  const argv = [PROMETHEUS, `--config.file=${etc}/prometheus.yml`, `--storage.tsdb.path=${tsdb}`, `--web.listen-address=127.0.0.1:${port}`];
  if (adminApi) argv.push('--web.enable-admin-api');
  const svc = await fakeService(name, argv);
  await svc.start();
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/-/ready`, 30_000, svc);
  return { url, svc, tsdb, etc, root };
}

function componentFor(p: Prom) {
  return prometheus(
    prometheusSchema.parse({
      url: p.url,
      tsdb_path: p.tsdb,
      unit_file: p.svc.unitFile,
      daemon_reload_command: p.svc.commands.daemonReload,
      restart_command: p.svc.commands.restart,
      stop_command: p.svc.commands.stop,
      start_command: p.svc.commands.start,
      config_paths: [p.etc],
      ready_timeout_s: 30,
    }),
  );
}

/** Service discovery hands Prometheus its first targets about 5 s after start. */
async function waitForScrapes(url: string, n: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const q = new URLSearchParams({ query: 'count_over_time(up[5m])' });
    const r = await getJson<{ data: { result: { value: [number, string] }[] } }>(`${url}/api/v1/query?${q}`);
    if (Number(r.data.result[0]?.value[1] ?? 0) >= n) return;
    if (Date.now() > deadline) throw new Error(`Prometheus at ${url} has not scraped itself ${n} times in 30 s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

type Matrix = { metric: Record<string, string>; values: [number, string][] }[];

async function rangeQuery(url: string, query: string, start: number, end: number): Promise<Matrix> {
  const q = new URLSearchParams({ query, start: String(start), end: String(end), step: '1' });
  const r = await getJson<{ data: { result: Matrix } }>(`${url}/api/v1/query_range?${q}`);
  return r.data.result;
}

/** Raw samples with their own timestamps, not step-aligned evaluations. */
async function rawSamples(url: string, query: string, at: number): Promise<Matrix> {
  const q = new URLSearchParams({ query, time: String(at) });
  const r = await getJson<{ data: { result: Matrix } }>(`${url}/api/v1/query?${q}`);
  return r.data.result;
}

async function snapshotRefused(url: string): Promise<string> {
  const r = await fetch(`${url}/api/v1/admin/tsdb/snapshot`, { method: 'POST' });
  const text = await r.text();
  assert.notEqual(r.status, 200, `snapshot endpoint still answers: ${text}`);
  return text;
}

describe('prometheus', () => {
  const started: Prom[] = [];
  const scratch: string[] = [];
  after(async () => {
    for (const d of scratch) await fsp.rm(d, { recursive: true, force: true });
    for (const p of started) {
      await p.svc.stop().catch(() => undefined);
      for (const d of [p.root, p.svc.dir]) await fsp.rm(d, { recursive: true, force: true });
    }
  });

  test('snapshot round-trip: samples scraped before the backup come back after the TSDB is wiped', async () => {
    const p = await startPrometheus('prom-rt', true);
    started.push(p);
    await waitForScrapes(p.url, 1);
    const t0 = Math.floor(Date.now() / 1000);
    await new Promise((r) => setTimeout(r, 10_000));
    const t1 = Math.floor(Date.now() / 1000) - 2;

    const rt = runtimeOf([componentFor(p)]);
    const target = tempDir('prom-target');
    scratch.push(target, rt.stateDir);
    const { id, manifest } = await backupLocal(rt, target);
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    const part = manifest.parts[0]!;
    assert.match(part.meta.snapshot ?? '', /^\d{8}T\d{6}Z-[0-9a-f]+$/);
    assert.equal(part.meta.admin_api, 'already on');
    assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['config.tree.jsonl.gz', 'tsdb.tree.jsonl.gz']);
    assert.ok(part.entries.some((e) => e.path.endsWith('/meta.json') && e.path.startsWith(path.join(p.tsdb, 'snapshots'))), 'the snapshot holds at least one block');
    assert.deepEqual(await fsp.readdir(path.join(p.tsdb, 'snapshots')), [], 'the local snapshot is removed after the copy');

    const metric = 'prometheus_tsdb_head_samples_appended_total{type="float"}';
    const before = await rangeQuery(p.url, metric, t0, t1);
    const beforeRaw = await rawSamples(p.url, `${metric}[30s]`, t1);
    assert.equal(before.length, 1, JSON.stringify(before));
    assert.ok(before[0]!.values.length >= 5, `expected a few seconds of samples, got ${before[0]!.values.length}`);
    assert.ok(beforeRaw[0]!.values.length >= 5);

    // A dry run names where each snapshot file would end up once swapped in, and writes nothing.
    const dry = await restoreLocal(rt, target, id, { dryRun: true });
    assert.deepEqual(dry.results.map((x) => x.status), ['ok'], JSON.stringify(dry.results));
    const wouldTsdb = dry.events.map((e) => e.message ?? '').filter((m) => m.startsWith(`would restore file ${p.tsdb}/`));
    assert.ok(wouldTsdb.some((m) => m.endsWith('/meta.json')) && wouldTsdb.every((m) => !m.includes('/snapshots/')), wouldTsdb.slice(0, 3).join('\n'));
    assert.deepEqual((await fsp.readdir(p.tsdb)).filter((n) => n.startsWith('.lsbackup-')), [], 'a dry run stages nothing');

    await p.svc.stop();
    await fsp.rm(p.tsdb, { recursive: true });
    await fsp.writeFile(path.join(p.etc, 'rules/up.yml'), 'groups: []\n');

    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
    await waitHttp(`${p.url}/-/ready`, 10_000, p.svc);
    assert.deepEqual(await rangeQuery(p.url, metric, t0, t1), before);
    assert.deepEqual(await rawSamples(p.url, `${metric}[30s]`, t1), beforeRaw);
    assert.match(await fsp.readFile(path.join(p.etc, 'rules/up.yml'), 'utf8'), /job:up:sum/, 'config restored as well');
    assert.deepEqual((await fsp.readdir(p.tsdb)).filter((n) => n.startsWith('.lsbackup-')), [], 'nothing to roll back from an empty TSDB, no staging left');

    // A second restore over live data keeps the replaced data aside, outside the TSDB: under the agent's state_dir.
    const r2 = await restoreLocal(rt, target, id);
    assert.deepEqual(r2.results.map((x) => x.status), ['ok'], JSON.stringify(r2.results));
    assert.deepEqual((await fsp.readdir(p.tsdb)).filter((n) => n.startsWith('.lsbackup-')), [], 'nothing of ours inside the TSDB');
    const copies = r2.results[0]!.meta.rollback!.split(' ');
    const tsdbCopy = copies.find((d) => existsSync(path.join(d, 'wal')));
    assert.ok(tsdbCopy, `the old TSDB (with its WAL) is in one of the rollback copies: ${copies.join(', ')}`);
    assert.equal(path.dirname(tsdbCopy), path.join(rt.stateDir, 'rollback'));
    assert.ok(existsSync(path.join(tsdbCopy, '.lsbackup-complete')), 'the copy is sealed');
    assert.match(r2.results[0]!.meta.rollback_command ?? '', new RegExp(`mv ${tsdbCopy}/\\* ${p.tsdb}/`));
    assert.match(r2.events.map((e) => e.message).join('\n'), /prometheus: replaced .*the TSDB in .*; the replaced data is in .*\/rollback\/.*; to roll back, as root: /);
    assert.deepEqual(await rangeQuery(p.url, metric, t0, t1), before);
  });

  test('encrypted (format 4): the snapshot (its directory in the sealed meta) and config come back with the identity', async () => {
    const { key, identity } = await testKeys();
    const p = await startPrometheus('prom-enc', true);
    started.push(p);
    await waitForScrapes(p.url, 1);
    const t0 = Math.floor(Date.now() / 1000);
    await new Promise((r) => setTimeout(r, 5_000));
    const t1 = Math.floor(Date.now() / 1000) - 2;
    const rt = runtimeOf([componentFor(p)]);
    const target = tempDir('prom-enc-target');
    scratch.push(target, rt.stateDir);
    const { id, manifest } = await backupLocal(rt, target, [], { key });
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    assert.deepEqual(manifest.parts[0]!.meta, {});
    const metric = 'prometheus_tsdb_head_samples_appended_total{type="float"}';
    const before = await rangeQuery(p.url, metric, t0, t1);
    assert.ok(before[0]!.values.length >= 2, JSON.stringify(before));
    await p.svc.stop();
    await fsp.rm(p.tsdb, { recursive: true });
    await fsp.writeFile(path.join(p.etc, 'rules/up.yml'), 'groups: []\n');
    const r = await restoreLocal(rt, target, id, { identity });
    assert.deepEqual(r.results.map((x) => [x.status, x.reason]), [['ok', '']]);
    await waitHttp(`${p.url}/-/ready`, 10_000, p.svc);
    assert.deepEqual(await rangeQuery(p.url, metric, t0, t1), before);
    assert.match(await fsp.readFile(path.join(p.etc, 'rules/up.yml'), 'utf8'), /job:up:sum/);
  });

  test('admin API off: turned on through the unit file for the snapshot, then the unit is byte-identical and the API off again', async () => {
    const p = await startPrometheus('prom-noadmin', false);
    started.push(p);
    const original = await fsp.readFile(p.svc.unitFile);
    await waitForScrapes(p.url, 2); // so the snapshot has a block to hold
    assert.match(await snapshotRefused(p.url), /admin APIs disabled/);
    const rt = runtimeOf([componentFor(p)]);
    const target = tempDir('prom-target');
    scratch.push(target, rt.stateDir);

    // A snapshot that fails (snapshots/ is a file, so Prometheus cannot create its directory) still reverts.
    await fsp.writeFile(path.join(p.tsdb, 'snapshots'), 'in the way');
    const failed = await backupLocal(rt, target);
    assert.equal(failed.manifest.status, 'failed');
    assert.match(failed.manifest.parts[0]!.reason, /refused the snapshot/);
    assert.deepEqual(await fsp.readFile(p.svc.unitFile), original);
    await snapshotRefused(p.url);
    await fsp.rm(path.join(p.tsdb, 'snapshots'));

    const { manifest } = await backupLocal(rt, target);
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    assert.equal(manifest.parts[0]!.meta.admin_api, 'enabled for the snapshot, then reverted');
    assert.ok(manifest.parts[0]!.entries.some((e) => e.path.endsWith('/index')), 'the snapshot holds a block');
    assert.deepEqual(await fsp.readFile(p.svc.unitFile), original, 'unit file byte-identical');
    assert.match(await snapshotRefused(p.url), /admin APIs disabled/);
    assert.doesNotMatch(await fsp.readFile(path.join(p.svc.dir, 'loaded.service'), 'utf8'), /enable-admin-api/, 'daemon-reload ran after the revert');
    assert.deepEqual(await fsp.readdir(path.join(p.tsdb, 'snapshots')), []);
    assert.deepEqual((await fsp.readdir(rt.stateDir)).filter((n) => n.includes('unit')), [], 'no leftover unit journal');
    // The restarts went through the unit file: the service log shows the flag on, then off.
    const starts = p.svc.log().split('\n').filter((l) => l.startsWith('start: '));
    assert.deepEqual(starts.map((l) => l.includes('--web.enable-admin-api')).slice(-2), [true, false]);
  });

  test('ExecStart editing keeps every other byte and refuses a unit that already has the flag', () => {
    const unit = Buffer.from('[Service]\r\nExecStart=\r\nExecStart=/usr/bin/prometheus \\\r\n  --config.file=/etc/p.yml  \r\nRestart=always\r\n\xe9\n', 'latin1');
    const out = withAdminFlag(unit, 'u').toString('latin1');
    assert.equal(out, '[Service]\r\nExecStart=\r\nExecStart=/usr/bin/prometheus \\\r\n  --config.file=/etc/p.yml --web.enable-admin-api  \r\nRestart=always\r\n\xe9\n');
    assert.throws(() => withAdminFlag(Buffer.from('ExecStart=/p --web.enable-admin-api\n'), 'u'), /already has/);
    assert.throws(() => withAdminFlag(Buffer.from('[Service]\nUser=x\n'), 'u'), /no ExecStart/);
  });
});
