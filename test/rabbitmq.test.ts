import { testKeys } from './helpers/test-keys.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { z } from 'zod';
import { haproxy, haproxySchema } from '../agent/components/haproxy.js';
import { rabbitmq, rabbitmqSchema } from '../agent/components/rabbitmq.js';
import { parseConfig } from '../common/config.js';
import { InputError } from '../common/errors.js';
import { run } from '../common/exec.js';
import type { Manifest } from '../common/manifest.js';
import { backupLocal, restoreLocal, runtimeOf as harnessRuntime, scratchSpace } from './helpers/harness.js';
import { startRabbitSandbox, type RabbitSandbox } from './helpers/rabbit-sandbox.js';

let sb: RabbitSandbox;
// Backups hold password hashes and rollback copies hold the broker's data: none of it outlives the run.
const space = scratchSpace();
const scratch = space.dir;
const runtimeOf = (components: Parameters<typeof harnessRuntime>[0]) => harnessRuntime(components, scratch('rabbit-state'));

before(async () => {
  sb = await startRabbitSandbox();
});
after(async () => {
  await sb?.destroy();
  await space.removeAll();
});

const VHOST = 'lsb-vh';
const vh = encodeURIComponent(VHOST);

function config(extra: Record<string, unknown> = {}) {
  return rabbitmqSchema.parse({
    url: sb.url,
    user: sb.user,
    password_file: sb.passwordFile,
    node_name: sb.node,
    mnesia_base: sb.mnesiaBase,
    // As the default: single files, one of them absent.
    config_paths: ['rabbitmq.conf', 'enabled_plugins', 'advanced.config'].map((f) => path.join(sb.etcDir, f)),
    env_file: sb.envFile,
    enabled_plugins_file: sb.enabledPluginsFile,
    erlang_cookie_file: sb.cookieFile,
    rabbitmqctl_command: sb.ctlAsRabbitmq,
    stop_command: sb.stopCommand,
    start_command: sb.startCommand,
    ready_timeout_seconds: 90,
    ...extra,
  });
}

/** A runtime whose log lines are kept, at every level, to check no secret ever reaches them. */
function capturingRuntime(components: Parameters<typeof runtimeOf>[0]) {
  const lines: string[] = [];
  const rt = runtimeOf(components);
  rt.log = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream: new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) }) })],
  });
  return { rt, lines };
}

async function ok(method: string, apiPath: string, body?: unknown) {
  const r = await sb.api(method, apiPath, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${apiPath}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function queueDepth(queue: string, want: number): Promise<number> {
  // Queue stats come from the stats database a moment after the queue changes.
  const deadline = Date.now() + 20_000;
  let depth = -1;
  while (Date.now() < deadline) {
    const r = await sb.api<{ messages?: number }>('GET', `/api/queues/${vh}/${encodeURIComponent(queue)}`);
    depth = r.body?.messages ?? -1;
    if (depth === want) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  return depth;
}

async function topology() {
  const defs = (await ok('GET', '/api/definitions')) as Record<string, { name?: string; vhost?: string; source?: string; destination?: string; user?: string }[]>;
  const inVh = (k: string) => defs[k]!.filter((x) => x.vhost === VHOST);
  return {
    vhost: defs.vhosts!.some((v) => v.name === VHOST),
    user: defs.users!.some((u) => u.name === 'app'),
    permission: defs.permissions!.some((p) => p.user === 'app' && p.vhost === VHOST),
    exchange: inVh('exchanges').some((e) => e.name === 'orders'),
    queue: inVh('queues').some((q) => q.name === 'orders.q'),
    binding: inVh('bindings').some((b) => b.source === 'orders' && b.destination === 'orders.q'),
    policy: inVh('policies').some((p) => p.name === 'orders-limit'),
  };
}
const everything = { vhost: true, user: true, permission: true, exchange: true, queue: true, binding: true, policy: true };

/** The restored user logs in with its old password: its hash came back too. */
async function appCanLogIn(): Promise<boolean> {
  const res = await fetch(`${sb.url}/api/whoami`, { headers: { authorization: `Basic ${Buffer.from('app:app-secret').toString('base64')}` } });
  return res.status === 200;
}

function assertPrivate(manifest: Manifest, target: string, files: string[]) {
  const part = manifest.parts.find((p) => p.component === 'rabbitmq')!;
  assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), [...files].sort());
  return Promise.all(
    part.artifacts.map(async (a) => {
      const st = await fsp.stat(path.join(target, manifest.id, a.path));
      assert.equal(st.mode & 0o777, 0o600, `${a.path} is not owner-only`);
    }),
  );
}

test('definitions and 1000 persistent messages come back after the queue and the user are deleted', async () => {
  await ok('PUT', `/api/vhosts/${vh}`, {});
  await ok('PUT', `/api/permissions/${vh}/${sb.user}`, { configure: '.*', write: '.*', read: '.*' });
  await ok('PUT', '/api/users/app', { password: 'app-secret', tags: 'management' });
  await ok('PUT', `/api/permissions/${vh}/app`, { configure: '', write: '^orders', read: '^orders' });
  await ok('PUT', `/api/exchanges/${vh}/orders`, { type: 'direct', durable: true });
  await ok('PUT', `/api/queues/${vh}/orders.q`, { durable: true, arguments: {} });
  await ok('POST', `/api/bindings/${vh}/e/orders/q/orders.q`, { routing_key: 'new' });
  await ok('PUT', `/api/policies/${vh}/orders-limit`, { pattern: '^orders', definition: { 'max-length': 100000 }, 'apply-to': 'queues' });
  for (let i = 0; i < 1000; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, j) => {
        const r = await ok('POST', `/api/exchanges/${vh}/orders/publish`, { properties: { delivery_mode: 2 }, routing_key: 'new', payload: `order-${i + j}`, payload_encoding: 'string' });
        assert.deepEqual(r, { routed: true });
      }),
    );
  }
  assert.equal(await queueDepth('orders.q', 1000), 1000);

  const comp = rabbitmq(config({ messages: true }));
  assert.ok((await comp.estimateBytes()) > (await rabbitmq(config()).estimateBytes()), 'the data dir counts when messages are on');
  const { rt, lines } = capturingRuntime([comp]);
  const target = scratch('rabbit-target');
  const pidBefore = await sb.pid();
  const { id, manifest } = await backupLocal(rt, target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = manifest.parts[0]!;
  assert.equal(part.meta.node_name, sb.node);
  assert.equal(part.meta.messages, 'true');
  await assertPrivate(manifest, target, ['definitions.json', 'config.tree.jsonl.gz', 'messages.tree.jsonl.gz']);
  assert.ok(part.entries.some((e) => e.path === path.join(sb.mnesiaBase, sb.node)), 'the node data dir is in the archive');
  const exported = JSON.parse(await fsp.readFile(path.join(target, id, 'node1/rabbitmq/definitions.json'), 'utf8')) as { users: { name: string }[] };
  assert.ok(exported.users.some((u) => u.name === 'app'));
  // The broker was stopped for the copy and is serving again.
  const pidAfter = await sb.pid();
  assert.ok(pidAfter && pidAfter !== pidBefore, 'the broker was restarted');
  assert.equal((await sb.api('GET', '/api/overview')).status, 200);

  // Mnesia data is bound to its node name: another name is refused before the broker is touched.
  const elsewhere = rabbitmq(config({ messages: true, node_name: 'rabbit@elsewhere' }));
  const refused = await restoreLocal(runtimeOf([elsewhere]), target, id);
  assert.equal(refused.results[0]!.status, 'failed');
  assert.match(refused.results[0]!.reason, /come from node lsbtest\w+@localhost, but this node is rabbit@elsewhere; mnesia data is bound to its node name/);
  assert.equal(await sb.pid(), pidAfter);

  await ok('DELETE', `/api/queues/${vh}/orders.q`);
  await ok('DELETE', '/api/users/app');
  // Created after the backup: a restored data dir must not keep it.
  await ok('PUT', `/api/queues/${vh}/later.q`, { durable: true });
  assert.deepEqual(await topology(), { ...everything, user: false, permission: false, queue: false, binding: false });

  const dry = await restoreLocal(rt, target, id, { dryRun: true });
  assert.deepEqual(dry.results.map((r) => r.status), ['ok']);
  assert.ok(dry.events.some((e) => /would stop RabbitMQ/.test(e.message ?? '')));
  assert.equal(await sb.pid(), pidAfter, 'a dry run does not stop the broker');
  assert.equal((await topology()).queue, false);

  const { results } = await restoreLocal(rt, target, id);
  assert.deepEqual(results.map((r) => [r.status, r.reason]), [['ok', '']]);
  assert.deepEqual(await topology(), everything);
  assert.ok(await appCanLogIn());
  assert.equal((await sb.api('GET', `/api/queues/${vh}/later.q`)).status, 404);
  assert.equal(await queueDepth('orders.q', 1000), 1000);
  const got = await ok('POST', `/api/queues/${vh}/orders.q/get`, { count: 2000, ackmode: 'ack_requeue_true', encoding: 'auto' });
  const payloads = new Set((got as { payload: string }[]).map((m) => m.payload));
  assert.equal(payloads.size, 1000);
  for (let i = 0; i < 1000; i++) assert.ok(payloads.has(`order-${i}`), `order-${i} is back`);

  const everywhere = JSON.stringify(manifest) + lines.join('\n');
  assert.ok(!everywhere.includes(sb.password), 'the management password is in the manifest or a log line');
  assert.ok(lines.length > 0);
});

test('a definitions-only backup and restore never stop the broker', async () => {
  const comp = rabbitmq(config());
  const health = await comp.health();
  assert.equal(health.status, 'ok');
  assert.match(health.detail, new RegExp(`^RabbitMQ \\d+\\.\\d+\\.\\d+ on ${sb.node}$`));
  const rt = runtimeOf([comp]);
  const target = scratch('rabbit-target');
  const pid = await sb.pid();
  assert.ok(pid);
  const confFile = path.join(sb.etcDir, 'rabbitmq.conf');
  const conf = await fsp.readFile(confFile, 'utf8');
  // Poll the broker all through: one failed answer means it went away.
  let polls = 0;
  const failures: string[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const r = await sb.api('GET', '/api/overview').catch((err: Error) => ({ status: err.message }));
      polls++;
      if (r.status !== 200) failures.push(String(r.status));
      await new Promise((res) => setTimeout(res, 50));
    }
  })();

  let manifest: Manifest;
  let id: string;
  let restored;
  try {
    ({ id, manifest } = await backupLocal(rt, target));
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    assert.equal(manifest.parts[0]!.meta.messages, 'false');
    assert.equal(manifest.parts[0]!.meta.node_name, undefined);
    await assertPrivate(manifest, target, ['definitions.json', 'config.tree.jsonl.gz']);

    await ok('DELETE', `/api/queues/${vh}/orders.q`);
    await ok('DELETE', '/api/users/app');
    await fsp.appendFile(confFile, '# edited after the backup\n');
    restored = await restoreLocal(rt, target, id);
  } finally {
    polling = false;
    await poller;
  }
  assert.deepEqual(restored.results.map((r) => [r.status, r.reason]), [['ok', '']]);
  assert.deepEqual(failures, []);
  assert.ok(polls > 0);
  assert.equal(await sb.pid(), pid, 'the broker kept its pid');
  assert.deepEqual(await topology(), everything);
  assert.ok(await appCanLogIn());
  assert.equal(await fsp.readFile(confFile, 'utf8'), conf);
  assert.equal((await fsp.stat(confFile)).uid, (await fsp.stat(sb.mnesiaBase)).uid, 'the config file keeps its owner');
  // Definitions carry no messages: the queue is back, empty.
  assert.equal(await queueDepth('orders.q', 0), 0);
});

test('encrypted (format 4): definitions (a sealed stream) and config come back with the identity', async () => {
  const { key, identity } = await testKeys();
  const rt = runtimeOf([rabbitmq(config())]);
  const target = scratch('rabbit-enc-target');
  const { id, manifest } = await backupLocal(rt, target, [], { key });
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.deepEqual(manifest.parts[0]!.artifacts.map((a) => path.basename(a.path)).sort(), ['config.pieces.gz', 'config.tree.jsonl.gz.age', 'definitions.json.age', 'meta.json.age']);
  const confFile = path.join(sb.etcDir, 'rabbitmq.conf');
  const conf = await fsp.readFile(confFile, 'utf8');
  await ok('DELETE', `/api/queues/${vh}/orders.q`);
  await ok('DELETE', '/api/users/app');
  await fsp.appendFile(confFile, '# edited after the backup\n');
  const restored = await restoreLocal(rt, target, id, { identity });
  assert.deepEqual(restored.results.map((r) => [r.status, r.reason]), [['ok', '']]);
  assert.deepEqual(await topology(), everything);
  assert.ok(await appCanLogIn());
  assert.equal(await fsp.readFile(confFile, 'utf8'), conf);
});

test('a wrong password fails the RabbitMQ part with one clear reason, leaves the broker alone, and the rest of the set is kept', async () => {
  const wrong = 'not-the-password-0451';
  const comp = rabbitmq(config({ password_file: undefined, password: wrong, messages: true }));
  assert.equal((await comp.health()).status, 'degraded');
  const etc = path.join(scratch('rabbit-haproxy'), 'etc/haproxy');
  await fsp.mkdir(etc, { recursive: true });
  await fsp.writeFile(path.join(etc, 'haproxy.cfg'), 'global\n');
  const { rt, lines } = capturingRuntime([comp, haproxy(haproxySchema.parse({ paths: [etc] }))]);
  const target = scratch('rabbit-target');
  const pid = await sb.pid();

  const { id, manifest } = await backupLocal(rt, target);
  assert.equal(manifest.status, 'partial');
  const byName = Object.fromEntries(manifest.parts.map((p) => [p.component, p]));
  assert.equal(byName.haproxy!.status, 'ok');
  assert.equal(byName.rabbitmq!.status, 'failed');
  assert.equal(byName.rabbitmq!.reason, `the management API at ${new URL(sb.url).host} refused user '${sb.user}': authentication failed (HTTP 401)`);
  assert.deepEqual(manifest.reasons.length, 1);
  assert.equal(await sb.pid(), pid, 'messages: true, yet the broker was not stopped');
  // Only the failed part's record (FORMAT.md "Format 2"): nothing that could pass for its backup.
  assert.deepEqual(await fsp.readdir(path.join(target, id, 'node1/rabbitmq')), ['part.json']);
  assert.ok(!(JSON.stringify(manifest) + lines.join('\n')).includes(wrong));
});

test('a broker that does not stop is never copied, and the start command still runs', async () => {
  const trail = path.join(scratch('rabbit-trail'), 'trail');
  const comp = rabbitmq(
    config({
      messages: true,
      // A stop command that "succeeds" without stopping anything, as a broken unit file might.
      stop_command: ['sh', '-c', `echo stop >> ${trail}`],
      start_command: ['sh', '-c', `echo start >> ${trail}`],
      ready_timeout_seconds: 2,
    }),
  );
  const pid = await sb.pid();
  const { manifest } = await backupLocal(runtimeOf([comp]), scratch('rabbit-target'));
  assert.equal(manifest.status, 'failed');
  assert.match(manifest.parts[0]!.reason, /^RabbitMQ is still running after 'sh -c echo stop >> \S+', so its data dir is left alone \(waited 2s; last: pid \d+ from \S+\.pid is alive\)$/);
  assert.equal(await fsp.readFile(trail, 'utf8'), 'stop\nstart\n');
  assert.equal(await sb.pid(), pid);
});

test('with the management plugin off: definitions via rabbitmqctl, a clear error when the API is required, the plugin enabled only when asked', async () => {
  await run(sb.cli('rabbitmq-plugins', 'disable', 'rabbitmq_management'));
  try {
    await sb.waitUntilApiDown();
    const pid = await sb.pid();
    // The enabled_plugins file now says the plugin is off: rabbitmqctl without probing the API.
    const off = rabbitmq(config({ messages: true }));
    const health = await off.health();
    assert.equal(health.status, 'ok', health.detail);
    assert.match(health.detail, new RegExp(`^RabbitMQ \\d+\\.\\d+\\.\\d+ on ${sb.node} \\(management plugin off; rabbitmqctl\\)$`));
    assert.match((await off.detect()).detail, /, management plugin off \(definitions via rabbitmqctl\)$/);
    const viaCtl = await backupLocal(runtimeOf([rabbitmq(config())]), scratch('rabbit-target'));
    assert.equal(viaCtl.manifest.status, 'complete', viaCtl.manifest.reasons.join('; '));
    assert.equal(viaCtl.manifest.parts[0]!.meta.definitions_via, 'rabbitmqctl');

    // The API required by the setting: the old clear error, and the broker left alone.
    const apiOnly = rabbitmq(config({ messages: true, definitions_via: 'management_api' }));
    assert.equal((await apiOnly.health()).status, 'down');
    const { manifest } = await backupLocal(runtimeOf([apiOnly]), scratch('rabbit-target'));
    assert.equal(manifest.status, 'failed');
    const reason = manifest.parts[0]!.reason;
    assert.match(reason, /^management plugin is not enabled on 127\.0\.0\.1:\d+: connection refused/);
    assert.match(reason, /rabbitmq-plugins enable rabbitmq_management' or set enable_management: true$/);
    assert.equal(await sb.pid(), pid);

    const enabling = rabbitmq(config({ enable_management: true, enable_management_command: sb.cli('rabbitmq-plugins', 'enable', 'rabbitmq_management') }));
    const second = await backupLocal(runtimeOf([enabling]), scratch('rabbit-target'));
    assert.equal(second.manifest.status, 'complete', second.manifest.reasons.join('; '));
    assert.equal(second.manifest.parts[0]!.meta.definitions_via, 'management_api');
    assert.equal((await sb.api('GET', '/api/overview')).status, 200, 'enable_management: true enabled the plugin');
    assert.equal(await sb.pid(), pid);
  } finally {
    // Later tests in this file, if any, need the API; rabbitmq-plugins is slow, so only when it is off.
    if ((await sb.api('GET', '/api/overview').catch(() => undefined))?.status !== 200) {
      await run(sb.cli('rabbitmq-plugins', 'enable', 'rabbitmq_management'));
    }
  }
});

test('an https management API is trusted through ca_file, and a clear hint is given without it', async () => {
  const dir = scratch('rabbit-tls');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const expected = `Basic ${Buffer.from(`${sb.user}:${sb.password}`).toString('base64')}`;
  const server = https.createServer({ key: await fsp.readFile(key), cert: await fsp.readFile(cert) }, (req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.headers.authorization !== expected) return res.writeHead(401).end('{"error":"not_authorised"}');
    if (req.url === '/api/overview') return res.end(JSON.stringify({ rabbitmq_version: '9.9.9', node: 'tls@test' }));
    res.writeHead(404).end('{"error":"Object Not Found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.deepEqual(await rabbitmq(config({ url, ca_file: cert })).health(), { status: 'ok', detail: 'RabbitMQ 9.9.9 on tls@test' });
    const untrusted = await rabbitmq(config({ url })).health();
    assert.equal(untrusted.status, 'down');
    assert.match(untrusted.detail, /^cannot reach the management API at 127\.0\.0\.1:\d+: DEPTH_ZERO_SELF_SIGNED_CERT; set ca_file/);
  } finally {
    server.close();
  }
});

test('config: secrets stay out of the URL, one password source, unknown keys refused', () => {
  const bad = (data: unknown) => assert.throws(() => parseConfig('agent.yml', { rabbitmq: data }, z.object({ rabbitmq: rabbitmqSchema })), InputError);
  bad({ url: 'http://admin:secret@127.0.0.1:15672' });
  bad({ url: 'ftp://127.0.0.1' });
  bad({ user: 'admin' });
  bad({ user: 'admin', password: 'x', password_file: '/etc/lsbackup/rabbit.pw' });
  bad({ mnesia_base: 'var/lib/rabbitmq' });
  bad({ node_name: 'rabbit' });
  assert.throws(() => parseConfig('agent.yml', { rabbitmq: { mesages: true } }, z.object({ rabbitmq: rabbitmqSchema })), /key 'rabbitmq': unknown key 'mesages'/);
  const d = rabbitmqSchema.parse({});
  assert.equal(d.url, 'http://127.0.0.1:15672');
  assert.equal(d.messages, false);
  assert.equal(d.enable_management, false);
  // LambdaStack's layout: all of /etc/rabbitmq as its backup role takes it, the cookie of roles/rabbitmq.
  assert.deepEqual(d.config_paths, ['/etc/rabbitmq']);
  assert.equal(d.env_file, '/etc/rabbitmq/rabbitmq-env.conf');
  assert.equal(d.erlang_cookie_file, '/var/lib/rabbitmq/.erlang.cookie');
  assert.equal(d.definitions_via, 'auto');
  assert.deepEqual(d.rabbitmqctl_command, ['rabbitmqctl']);
  // Found in rabbitmq-env.conf when used, so not fixed here.
  assert.equal(d.node_name, undefined);
  bad({ erlang_cookie_file: '/var/lib/rabbitmq/cookie' });
  bad({ definitions_via: 'http' });
  assert.deepEqual(d.stop_command, ['systemctl', 'stop', 'rabbitmq-server']);
});
