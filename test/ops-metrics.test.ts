/**
 * Operations: the alert rules in monitoring/ against a real Prometheus scraping a live
 * coordinator's /metrics. promtool checks the rules and runs their unit tests (26 hours, a
 * coordinator restart); then a demo cluster makes a partial backup, a complete one and a verify
 * of a corrupted set, and the Prometheus API must show the matching alerts fire and clear.
 * The rules are loaded as they are, except that `for:` is shortened to one second.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DemoCluster, freePort } from '../demo/cluster.js';
import { backupWithAgentDown, have, PrometheusServer, repoRoot, run, waitFor } from './helpers/ops.js';
import { dropCluster, startCluster } from './helpers/harness.js';

const rulesFile = path.join(repoRoot, 'monitoring/lsbackup-alerts.yml');
const rulesTestFile = path.join(repoRoot, 'monitoring/lsbackup-alerts.test.yml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
}

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
}

async function flipByte(file: string, at: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0]! ^= 0xff;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

describe('alert rules against a live coordinator and a real Prometheus', () => {
  let c: DemoCluster;
  let prom: PrometheusServer | undefined;
  let metricsPort = 0;
  let rules: Rule[] = [];
  let completeId = '';

  before(async () => {
    assert.ok(have('prometheus') && have('promtool'), 'prometheus and promtool are missing: apt-get install prometheus');
    rules = (YAML.parse(await fsp.readFile(rulesFile, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
    c = await startCluster({ nodes: 2, groups: [['haproxy', 'kibana'], ['haproxy']] }, async (made) => {
      // DemoCluster writes coordinator.yaml in setUp(); metrics go on before the coordinator starts.
      metricsPort = await freePort();
      const cfg = YAML.parse(await fsp.readFile(made.coordinatorConfigFile, 'utf8')) as Record<string, unknown>;
      await fsp.writeFile(made.coordinatorConfigFile, YAML.stringify({ ...cfg, metrics_listen: `127.0.0.1:${metricsPort}` }));
    });
    // The same groups and expressions; only `for:` shortened so the test need not wait 15 minutes.
    const doc = YAML.parse(await fsp.readFile(rulesFile, 'utf8')) as { groups: { rules: Rule[] }[] };
    for (const g of doc.groups) for (const r of g.rules) if (r.for) r.for = '1s';
    const testRules = path.join(c.root, 'lsbackup-alerts.test-copy.yml');
    await fsp.writeFile(testRules, YAML.stringify(doc));
    prom = await PrometheusServer.start({ targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [testRules] });
  });

  after(async () => {
    await prom?.stop();
    await dropCluster(c);
  });

  test('promtool accepts the rules, and their unit tests (26 h, absent, restart) pass', async () => {
    let r = await run('promtool', ['check', 'rules', rulesFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: 4 rules found/);
    r = await run('promtool', ['test', 'rules', rulesTestFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
    assert.deepEqual(rules.map((x) => x.alert).sort(), ['LsbackupBackupFailed', 'LsbackupBackupPartial', 'LsbackupNoCompleteBackup', 'LsbackupVerifyFailed']);
    const by = Object.fromEntries(rules.map((x) => [x.alert, x.expr.replace(/\s+/g, ' ').trim()]));
    assert.match(by.LsbackupNoCompleteBackup!, /lsbackup_last_complete_backup_timestamp_seconds\[26h\]\) > 26 \* 3600 or absent\(lsbackup_last_complete_backup_timestamp_seconds\)/);
    assert.equal(by.LsbackupBackupPartial, 'lsbackup_last_backup_status{status="partial"} == 1');
    assert.equal(by.LsbackupBackupFailed, 'lsbackup_last_backup_status{status="failed"} == 1');
    assert.equal(by.LsbackupVerifyFailed, 'lsbackup_last_verify_ok == 0');
    for (const x of rules) assert.ok(x.labels?.severity, `${x.alert} has a severity`);
  });

  test('Prometheus scrapes the coordinator; with no complete backup yet, LsbackupNoCompleteBackup fires', async () => {
    const upValue = await (async () => {
      for (let i = 0; i < 60; i++) {
        const v = await prom!.value('up{job="lsbackup"}');
        if (v === 1) return v;
        await new Promise((r) => setTimeout(r, 500));
      }
      return prom!.value('up{job="lsbackup"}');
    })();
    assert.equal(upValue, 1, `the coordinator's /metrics is scraped\n${prom!.log()}`);
    // Scraped: the timestamp is 0, so "more than 26 h ago" holds for this coordinator.
    const a = await prom!.waitForAlert('LsbackupNoCompleteBackup', 'firing', { instance: `127.0.0.1:${metricsPort}` });
    assert.equal(a?.labels.severity, 'critical');
    assert.equal(a?.labels.job, 'lsbackup');
    assert.match(a?.annotations.description ?? '', /has committed no complete backup set in 26 hours/);
  });

  test('a coordinator that has not verified anything does not fire LsbackupVerifyFailed', async () => {
    await prom!.waitForAlert('LsbackupNoCompleteBackup', 'firing');
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal((await prom!.alerts()).find((x) => x.labels.alertname === 'LsbackupVerifyFailed'), undefined);
  });

  test('a backup with one agent killed is partial, and LsbackupBackupPartial fires', async () => {
    await backupWithAgentDown<Summary>(c, c.nodes[1]!, async () => {
      const a = await prom!.waitForAlert('LsbackupBackupPartial', 'firing');
      assert.deepEqual({ status: a?.labels.status, severity: a?.labels.severity }, { status: 'partial', severity: 'warning' });
      assert.match(a?.annotations.summary ?? '', /partial/);
      assert.equal(await prom!.value('lsbackup_backup_failures_total{node="node2",component="haproxy"}'), 1, 'failures are counted by node and component');
      assert.equal((await prom!.alerts()).find((x) => x.labels.alertname === 'LsbackupBackupFailed'), undefined, 'partial is not failed');
      await prom!.waitForAlert('LsbackupNoCompleteBackup', 'firing');
    });
    // The coordinator's channel to node2 sits in gRPC reconnect backoff for a moment after the
    // agent comes back, and answers "unreachable" without trying until then (see the report).
    await waitFor('the coordinator to reach node2 again', async () => (await c.cli(['agents', '-b', c.buildDir])).code === 0, 130_000, 1_000);
  });

  test('a complete backup clears LsbackupBackupPartial and LsbackupNoCompleteBackup', async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1000));
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'complete');
    completeId = s.backupId;
    await prom!.waitForAlert('LsbackupBackupPartial', 'inactive');
    await prom!.waitForAlert('LsbackupNoCompleteBackup', 'inactive');
    const ts = await prom!.value('lsbackup_last_complete_backup_timestamp_seconds');
    assert.ok(ts && Math.abs(ts - Date.now() / 1000) < 120, `last complete backup time is now (${ts})`);
    assert.equal(await prom!.value('lsbackup_last_backup_status{status="complete"}'), 1);
  });

  test('a verify of a corrupted set fires LsbackupVerifyFailed; a clean verify clears it', async () => {
    let r = await c.cli(['verify', completeId, '-t', c.target]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The gauge exists only once a verify has run; wait for the scrape that first sees it.
    let ok: number | undefined;
    for (let i = 0; i < 50 && ok === undefined; i++) {
      ok = await prom!.value('lsbackup_last_verify_ok');
      if (ok === undefined) await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(ok, 1);
    await prom!.waitForAlert('LsbackupVerifyFailed', 'inactive');

    const zip = path.join(c.target, completeId, 'node1/haproxy/files.tree.jsonl.gz');
    await flipByte(zip, 40);
    r = await c.cli(['verify', completeId, '-t', c.target]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /node1\/haproxy\/files\.tar\.gz: sha256 mismatch/);
    const a = await prom!.waitForAlert('LsbackupVerifyFailed', 'firing');
    assert.equal(a?.labels.severity, 'critical');

    await flipByte(zip, 40);
    r = await c.cli(['verify', completeId, '-t', c.target]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await prom!.waitForAlert('LsbackupVerifyFailed', 'inactive');
  });
});
