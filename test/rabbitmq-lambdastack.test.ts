/**
 * The RabbitMQ component on a node configured the way LambdaStack's roles/rabbitmq leaves it:
 * no management plugin (rabbitmq_plugins: []), rabbitmq.conf and rabbitmq-env.conf from its
 * templates, a cookie of its making, and no component settings beyond the sandbox's own paths.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { backupNode } from '../agent/runner.js';
import { envSettings, parseEnabledPlugins, rabbitmq, rabbitmqSchema, servesManagementApi } from '../agent/components/rabbitmq.js';
import { commitSet } from '../common/commit.js';
import { run } from '../common/exec.js';
import { mkdirPrivate } from '../common/fsutil.js';
import { FORMAT, newSetId, setDir } from '../common/manifest.js';
import { partsFromAnswers, restoreLocal, runtimeOf as harnessRuntime, scratchSpace, withEntries, type ManifestWithEntries } from './helpers/harness.js';
import { startRabbitSandbox, type RabbitSandbox } from './helpers/rabbit-sandbox.js';

let sb: RabbitSandbox;
const space = scratchSpace();
const scratch = space.dir;
const runtimeOf = (components: Parameters<typeof harnessRuntime>[0]) => harnessRuntime(components, scratch('rabbit-ls-state'));

before(async () => {
  sb = await startRabbitSandbox({ management: false });
});
after(async () => {
  await sb?.destroy();
  await space.removeAll();
});

/**
 * Only where the sandbox's files are, and how to reach its private epmd (ctlAsRoot sources it):
 * no node name, no URL, no user, nothing about plugins. On a real node these are the defaults.
 */
function config(extra: Record<string, unknown> = {}) {
  return rabbitmqSchema.parse({
    config_paths: [sb.etcDir],
    env_file: sb.envFile,
    erlang_cookie_file: sb.cookieFile,
    rabbitmqctl_command: sb.ctlAsRoot,
    mnesia_base: sb.mnesiaBase,
    stop_command: sb.stopCommand,
    start_command: sb.startCommand,
    ready_timeout_seconds: 90,
    ...extra,
  });
}

async function ctl(...args: string[]): Promise<string> {
  return (await run(sb.cli('rabbitmqctl', ...args), { timeoutMs: 60_000 })).stdout;
}

async function exportedDefinitions(): Promise<Record<string, unknown>> {
  return JSON.parse(await ctl('--quiet', 'export_definitions', '-')) as Record<string, unknown>;
}

let lastId = '';
/** As the coordinator sends it: a plan whose facts say what the build directory knows. */
async function backupWithFacts(comp: ReturnType<typeof rabbitmq>, facts: Record<string, string>): Promise<{ id: string; manifest: ManifestWithEntries; target: string }> {
  let id = newSetId();
  while (id <= lastId) {
    await new Promise((r) => setTimeout(r, 200));
    id = newSetId();
  }
  lastId = id;
  const target = scratch('rabbit-ls-target');
  const dir = setDir(target, id);
  await mkdirPrivate(dir);
  const rt = runtimeOf([comp]);
  const results = await backupNode(rt, { backupId: id, target, setFormat: 3, node: rt.node, components: [], plans: [{ component: 'rabbitmq', optional: false, facts }] }, () => undefined, new AbortController().signal);
  const manifest = await commitSet(dir, FORMAT, { id, startedAt: new Date().toISOString(), buildDir: '', nodes: { [rt.node]: { address: 'in-process' } }, notCovered: [] }, await partsFromAnswers(dir, results));
  return { id, manifest: await withEntries(dir, manifest), target };
}

async function fileState(p: string) {
  const st = await fsp.stat(p);
  return { bytes: (await fsp.readFile(p)).toString('base64'), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

test("rabbitmq-env.conf as LambdaStack renders it gives RabbitMQ's default node name; NODENAME and USE_LONGNAME are honoured", () => {
  // templates/rabbitmq-env.conf.j2 rendered for a short hostname (rabbitmq_use_longname: AUTOCONFIGURED).
  const rendered = '# Ansible managed\n\nRABBITMQ_USE_LONGNAME=false\n\n# Specifies new style config file location\nCONFIG_FILE=/etc/rabbitmq/rabbitmq.conf\n';
  assert.deepEqual(envSettings(rendered, 'node3'), { nodeName: 'rabbit@node3', longnames: false, enabledPluginsFile: undefined });
  assert.deepEqual(envSettings(rendered, 'node3.example.com'), { nodeName: 'rabbit@node3', longnames: false, enabledPluginsFile: undefined });
  // Rendered where the hostname is a FQDN.
  assert.equal(envSettings(rendered.replace('=false', '=true'), 'node3.example.com').nodeName, 'rabbit@node3.example.com');
  assert.equal(envSettings('', 'node3').nodeName, 'rabbit@node3');
  assert.equal(envSettings('NODENAME=hare\n', 'node3').nodeName, 'hare@node3');
  assert.equal(envSettings('NODENAME="hare@other"\n', 'node3').nodeName, 'hare@other');
  assert.equal(envSettings('RABBITMQ_NODENAME=a@x\nNODENAME=b@y\n', 'node3').nodeName, 'a@x', 'the prefixed name wins, as in rabbitmq-env');
  assert.equal(envSettings('#NODENAME=rabbit\n', 'node3').nodeName, 'rabbit@node3', 'a commented line (Debian\'s shipped file) is no setting');
  assert.equal(envSettings('ENABLED_PLUGINS_FILE=/srv/plugins\n').enabledPluginsFile, '/srv/plugins');

  assert.deepEqual(parseEnabledPlugins('[rabbitmq_management,rabbitmq_prometheus].\n'), ['rabbitmq_management', 'rabbitmq_prometheus']);
  assert.deepEqual(parseEnabledPlugins('[].\n'), []);
  assert.equal(servesManagementApi(['rabbitmq_management']), true);
  assert.equal(servesManagementApi(['rabbitmq_shovel_management']), true);
  assert.equal(servesManagementApi(['rabbitmq_management_agent', 'rabbitmq_prometheus']), false);
  assert.equal(servesManagementApi([]), false);
});

test('LambdaStack node, no management plugin: definitions, env file and cookie come back exactly, the broker never stopped', async () => {
  // Real definitions, made with rabbitmqctl: the topology through import_definitions (rabbitmqctl
  // cannot declare queues one by one), users, permissions and policies through their commands.
  const seed = {
    vhosts: [{ name: 'lsb-vh' }],
    exchanges: [{ name: 'orders', vhost: 'lsb-vh', type: 'direct', durable: true, auto_delete: false, internal: false, arguments: {} }],
    queues: [{ name: 'orders.q', vhost: 'lsb-vh', durable: true, auto_delete: false, arguments: { 'x-queue-type': 'classic' } }],
    bindings: [{ source: 'orders', vhost: 'lsb-vh', destination: 'orders.q', destination_type: 'queue', routing_key: 'new', arguments: {} }],
  };
  await run(sb.cli('rabbitmqctl', 'import_definitions'), { input: JSON.stringify(seed), timeoutMs: 60_000 });
  await ctl('add_user', 'app', 'app-secret');
  await ctl('set_user_tags', 'app', 'monitoring');
  await ctl('set_permissions', '-p', 'lsb-vh', 'app', '', '^orders', '^orders');
  await ctl('set_topic_permissions', '-p', 'lsb-vh', 'app', 'amq.topic', '^orders', '^orders');
  await ctl('set_policy', '-p', 'lsb-vh', '--apply-to', 'queues', 'orders-limit', '^orders', '{"max-length":100000}');
  await ctl('set_vhost_limits', '-p', 'lsb-vh', '{"max-connections":64}');
  const before = await exportedDefinitions();
  const users = before.users as { name: string; password_hash: string }[];
  assert.ok(users.find((u) => u.name === 'app')?.password_hash, 'the export carries the password hash');
  assert.equal((before.queues as unknown[]).length, 1);

  const comp = rabbitmq(config());
  const found = await comp.detect();
  assert.deepEqual(found, { present: true, detail: `RabbitMQ: ${sb.etcDir}, node ${sb.node}, management plugin off (definitions via rabbitmqctl)` });
  const health = await comp.health();
  assert.equal(health.status, 'ok', health.detail);
  assert.match(health.detail, new RegExp(`^RabbitMQ \\d+\\.\\d+\\.\\d+ on ${sb.node} \\(management plugin off; rabbitmqctl\\)$`));

  const cookieBefore = await fileState(sb.cookieFile);
  const envBefore = await fileState(sb.envFile);
  assert.equal(cookieBefore.mode, 0o400);
  const rabbitmqUid = Number((await run(['id', '-u', 'rabbitmq'])).stdout.trim());
  assert.equal(cookieBefore.uid, rabbitmqUid);
  const pid = await sb.pid();
  assert.ok(pid);

  // manifest.yml's rabbitmq_plugins: [] reaches the agent as an empty fact.
  const { id, manifest, target } = await backupWithFacts(comp, { rabbitmq_plugins: '' });
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = manifest.parts[0]!;
  assert.equal(part.meta.definitions_via, 'rabbitmqctl');
  assert.match(part.meta.rabbitmq_version!, /^\d+\.\d+\.\d+$/);
  assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['config.tree.jsonl.gz', 'definitions.json']);
  const paths = new Set(part.entries.map((e) => e.path));
  for (const p of [sb.cookieFile, sb.envFile, path.join(sb.etcDir, 'rabbitmq.conf')]) assert.ok(paths.has(p), `${p} is in the backup`);
  const stored = JSON.parse(await fsp.readFile(path.join(target, id, 'node1/rabbitmq/definitions.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(stored, before);

  // Lose the definitions, the env file and the cookie (its content, owner and mode).
  await ctl('delete_vhost', 'lsb-vh');
  await ctl('delete_user', 'app');
  assert.notDeepEqual(await exportedDefinitions(), before);
  await fsp.appendFile(sb.envFile, 'NODE_PORT=5673\n');
  await fsp.chmod(sb.envFile, 0o666);
  await fsp.chmod(sb.cookieFile, 0o600);
  await fsp.writeFile(sb.cookieFile, 'NOTTHEBROKERSCOOKIE\n');
  await fsp.chown(sb.cookieFile, 0, 0);

  // rabbitmqctl now fails with the damaged cookie: the restore puts the files back first, then imports.
  const { results } = await restoreLocal(runtimeOf([comp]), target, id);
  assert.deepEqual(results.map((r) => [r.status, r.reason]), [['ok', '']]);

  assert.deepEqual(await fileState(sb.cookieFile), cookieBefore, 'the cookie is back byte for byte, owner rabbitmq, mode 0400');
  assert.deepEqual(await fileState(sb.envFile), envBefore, 'rabbitmq-env.conf is back byte for byte with its mode and owner');
  assert.deepEqual(await exportedDefinitions(), before);
  await ctl('authenticate_user', 'app', 'app-secret');
  assert.equal(await sb.pid(), pid, 'definitions-only: the broker kept running');
});

test('rabbitmqctl that cannot reach the node fails with one line naming the node and the cause, never the cookie', async () => {
  const wrongHome = scratch('rabbit-ls-cookie');
  const wrongCookie = path.join(wrongHome, '.erlang.cookie');
  await fsp.writeFile(wrongCookie, 'SOMEOTHERCOOKIEVALUE\n', { mode: 0o400 });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ node_name: 'nobody@localhost' }, /^rabbitmqctl cannot reach RabbitMQ node nobody@localhost: epmd reports: node 'nobody' not running at all \(is RabbitMQ running, and is node_name right\?\)$/],
    [{ erlang_cookie_file: wrongCookie }, new RegExp(`^rabbitmqctl cannot reach RabbitMQ node ${sb.node}: TCP connection succeeded but Erlang distribution failed \\(is ${wrongCookie} the cookie the broker runs with\\?\\)$`)],
    [{ erlang_cookie_file: path.join(wrongHome, 'none', '.erlang.cookie') }, /^no Erlang cookie at \S+: rabbitmqctl needs the broker's cookie to reach node \S+; set erlang_cookie_file$/],
    [{ rabbitmqctl_command: ['/nonexistent/rabbitmqctl'] }, /^\/nonexistent\/rabbitmqctl: command not found; install RabbitMQ's CLI tools or set rabbitmqctl_command$/],
  ];
  const cookie = (await fsp.readFile(sb.cookieFile, 'utf8')).trim();
  for (const [extra, want] of cases) {
    const comp = rabbitmq(config(extra));
    const health = await comp.health();
    assert.equal(health.status, 'down');
    assert.match(health.detail, want);
    const { manifest } = await backupWithFacts(comp, {});
    assert.equal(manifest.status, 'failed');
    const reason = manifest.parts[0]!.reason;
    assert.match(reason, want);
    assert.ok(!reason.includes(cookie) && !reason.includes('SOMEOTHERCOOKIEVALUE'), 'a cookie is in the reason');
  }
});

test('messages: true without the management plugin: the broker is stopped for the copy and known to be back through rabbitmqctl', async () => {
  await ctl('add_vhost', 'msg-vh');
  const pid = await sb.pid();
  const comp = rabbitmq(config({ messages: true }));
  const { manifest, target, id } = await backupWithFacts(comp, {});
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.equal(manifest.parts[0]!.meta.node_name, sb.node, 'the node name came from rabbitmq-env.conf');
  const pidAfter = await sb.pid();
  assert.ok(pidAfter && pidAfter !== pid, 'the broker was restarted');
  assert.equal((await comp.health()).status, 'ok');

  await ctl('delete_vhost', 'msg-vh');
  const { results } = await restoreLocal(runtimeOf([comp]), target, id);
  assert.deepEqual(results.map((r) => [r.status, r.reason]), [['ok', '']]);
  assert.ok((await ctl('--quiet', 'list_vhosts')).split('\n').includes('msg-vh'), 'the restored data dir has the vhost');
  assert.notEqual(await sb.pid(), pidAfter);
});

test('an unconfigured agent on a LambdaStack node builds the component from defaults alone', () => {
  const d = rabbitmqSchema.parse({});
  const comp = rabbitmq(d);
  assert.deepEqual(comp.restorePaths, ['/etc/rabbitmq', '/var/lib/rabbitmq/.erlang.cookie', '/var/lib/rabbitmq/mnesia'], 'env file is inside /etc/rabbitmq, so listed once');
});
