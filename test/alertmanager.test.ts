import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { alertmanager, alertmanagerSchema, type Silence } from '../agent/components/alertmanager.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { testKeys } from './helpers/test-keys.js';
import { fakeService, freePort, getJson, requireBinaries, waitHttp, type FakeService } from './helpers/prom-service.js';

const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';
const AMTOOL = '/usr/bin/amtool';

const goodConfig = `route:\n  receiver: 'null'\n  group_by: ['alertname']\nreceivers:\n  - name: 'null'\ntemplates:\n  - 'templates/*.tmpl'\n`;

interface Am {
  url: string;
  svc: FakeService;
  root: string;
  configFile: string;
  templates: string;
  data: string;
}

async function startAlertmanager(): Promise<Am> {
  requireBinaries(ALERTMANAGER, AMTOOL);
  const root = tempDir('am');
  const etc = path.join(root, 'etc/prometheus');
  const templates = path.join(etc, 'templates');
  const data = path.join(root, 'data');
  await fsp.mkdir(templates, { recursive: true });
  const configFile = path.join(etc, 'alertmanager.yml');
  await fsp.writeFile(configFile, goodConfig);
  await fsp.writeFile(path.join(templates, 'mail.tmpl'), '{{ define "mail.subject" }}[{{ .Status }}] {{ .GroupLabels.alertname }}{{ end }}\n');
  const port = await freePort();
  const svc = await fakeService('alertmanager', [
    ALERTMANAGER,
    `--config.file=${configFile}`,
    `--storage.path=${data}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
  ]);
  await svc.start();
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/-/ready`, 30_000, svc);
  return { url, svc, root, configFile, templates, data };
}

function componentFor(am: Am) {
  return alertmanager(
    alertmanagerSchema.parse({
      url: am.url,
      config_paths: [am.configFile, am.templates],
      config_file: am.configFile,
      data_dir: am.data,
      stop_command: am.svc.commands.stop,
      start_command: am.svc.commands.start,
      ready_timeout_s: 30,
    }),
  );
}

async function addSilence(url: string, comment: string): Promise<string> {
  const now = Date.now();
  const body = {
    matchers: [{ name: 'alertname', value: comment, isRegex: false, isEqual: true }],
    startsAt: new Date(now).toISOString(),
    endsAt: new Date(now + 3600_000).toISOString(),
    createdBy: 'lsbackup-test',
    comment,
  };
  const r = await getJson<{ silenceID: string }>(`${url}/api/v2/silences`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return r.silenceID;
}

/** What the restores below must undo: the data directory wiped (the silences with it) and a template changed, the server up again. */
async function wipe(am: Am): Promise<void> {
  await am.svc.stop();
  await fsp.rm(am.data, { recursive: true });
  await fsp.mkdir(am.data);
  await fsp.writeFile(path.join(am.templates, 'mail.tmpl'), 'changed\n');
  await am.svc.start();
  await waitHttp(`${am.url}/-/ready`, 30_000, am.svc);
  assert.equal((await silences(am.url)).length, 0, 'the wipe took the silences');
}

const silences = (url: string) => getJson<Silence[]>(`${url}/api/v2/silences`);
const activeByComment = async (url: string) => new Map((await silences(url)).filter((s) => s.status.state === 'active').map((s) => [s.comment, s]));

describe('alertmanager', () => {
  const started: Am[] = [];
  const scratch: string[] = [];
  after(async () => {
    for (const d of scratch) await fsp.rm(d, { recursive: true, force: true });
    for (const am of started) {
      await am.svc.stop().catch(() => undefined);
      for (const d of [am.root, am.svc.dir]) await fsp.rm(d, { recursive: true, force: true });
    }
  });

  test('silences survive a wipe of the data directory: from the data files and from the API export', async () => {
    const am = await startAlertmanager();
    started.push(am);
    // Written to the data directory at shutdown: these come back from data.tar.gz with their ids.
    const onDisk = await addSilence(am.url, 'on-disk');
    const expiredLater = await addSilence(am.url, 'expired-before-backup');
    await am.svc.stop();
    await am.svc.start();
    await waitHttp(`${am.url}/-/ready`, 30_000, am.svc);
    // Only in memory (the silences file is written every 15 min): the API export has to bring
    // the new silence back, and expire again the one the data files still show as active.
    await addSilence(am.url, 'in-memory');
    const r0 = await fetch(`${am.url}/api/v2/silence/${expiredLater}`, { method: 'DELETE' });
    assert.equal(r0.status, 200);

    const rt = runtimeOf([componentFor(am)]);
    const target = tempDir('am-target');
    scratch.push(target, rt.stateDir);
    const { id, manifest } = await backupLocal(rt, target);
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    const part = manifest.parts[0]!;
    assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['config.tree.jsonl.gz', 'data.tree.jsonl.gz', 'silences.json']);
    assert.equal(part.meta.silences, '2');
    assert.ok(part.entries.some((e) => e.path === path.join(am.data, 'silences')));
    assert.ok(part.entries.some((e) => e.path === path.join(am.templates, 'mail.tmpl')));

    await wipe(am);

    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
    const after = await activeByComment(am.url);
    assert.deepEqual([...after.keys()].sort(), ['in-memory', 'on-disk']);
    assert.equal(after.get('on-disk')!.id, onDisk, 'restored from the data directory, same id');
    assert.deepEqual(after.get('in-memory')!.matchers, [{ name: 'alertname', value: 'in-memory', isRegex: false, isEqual: true }]);
    const all = await silences(am.url);
    assert.ok(all.some((s) => s.id === expiredLater && s.status.state === 'expired'), 'a silence expired before the backup stays expired');
    assert.match(await fsp.readFile(path.join(am.templates, 'mail.tmpl'), 'utf8'), /mail\.subject/);

    // Restoring again onto a server that has them all changes nothing.
    const r2 = await restoreLocal(rt, target, id);
    assert.deepEqual(r2.results.map((x) => x.status), ['ok'], JSON.stringify(r2.results));
    assert.deepEqual([...(await activeByComment(am.url)).keys()].sort(), ['in-memory', 'on-disk']);

    // A stopped Alertmanager wrote its silences at shutdown: a refused connection is not a failure, the data directory is current.
    await am.svc.stop();
    const stopped = await backupLocal(rt, target);
    assert.equal(stopped.manifest.status, 'complete', stopped.manifest.reasons.join('; '));
    assert.equal(stopped.manifest.parts[0]!.meta.silences, 'not exported: Alertmanager was not running');
    assert.ok(stopped.manifest.parts[0]!.entries.some((e) => e.path === path.join(am.data, 'silences')));
    await am.svc.start();
  });

  test('a set whose alertmanager.yml amtool refuses is not restored; the live config, data and server are untouched', async () => {
    const am = await startAlertmanager();
    started.push(am);
    const rt = runtimeOf([componentFor(am)]);
    const target = tempDir('am-target');
    scratch.push(target, rt.stateDir);
    await fsp.writeFile(am.configFile, 'route:\n  receiver: nowhere\nreceivers: []\n');
    const { id, manifest } = await backupLocal(rt, target);
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));

    await fsp.writeFile(am.configFile, goodConfig);
    const silenceId = await addSilence(am.url, 'live');
    const live = await fsp.readFile(am.configFile);
    const pid = await fsp.readFile(path.join(am.svc.dir, 'pid'), 'utf8');

    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['failed']);
    assert.match(r.results[0]!.reason, /does not pass 'amtool check-config'.*undefined receiver "nowhere".*nothing was replaced/);
    assert.deepEqual(await fsp.readFile(am.configFile), live);
    assert.deepEqual((await fsp.readdir(path.dirname(am.configFile))).filter((n) => n.includes('lsbackup')), [], 'no staged file left');
    assert.equal(await fsp.readFile(path.join(am.svc.dir, 'pid'), 'utf8'), pid, 'Alertmanager was not stopped');
    assert.ok((await silences(am.url)).some((s) => s.id === silenceId && s.status.state === 'active'));
  });

  test('encrypted (format 4): silences and config come back with the identity, from the sealed silence export', async () => {
    const { key, identity } = await testKeys();
    const am = await startAlertmanager();
    started.push(am);
    await addSilence(am.url, 'sealed');
    const rt = runtimeOf([componentFor(am)]);
    const target = tempDir('am-enc-target');
    scratch.push(target, rt.stateDir);
    const { id, manifest } = await backupLocal(rt, target, [], { key });
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    assert.deepEqual(manifest.parts[0]!.artifacts.map((a) => path.basename(a.path)).sort(), ['config.pieces.gz', 'config.tree.jsonl.gz.age', 'data.pieces.gz', 'data.tree.jsonl.gz.age', 'meta.json.age', 'silences.json.age']);
    await wipe(am);
    const r = await restoreLocal(rt, target, id, { identity });
    assert.deepEqual(r.results.map((x) => [x.status, x.reason]), [['ok', '']]);
    assert.deepEqual([...(await activeByComment(am.url)).keys()], ['sealed']);
    assert.match(await fsp.readFile(path.join(am.templates, 'mail.tmpl'), 'utf8'), /mail\.subject/);
  });
});
