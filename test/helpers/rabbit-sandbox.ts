/**
 * A throwaway rabbitmq-server for component tests: its own node name, ports, epmd, data, logs,
 * config and Erlang cookie under one temp directory, run as the rabbitmq user like the Debian
 * service. Nothing outside that directory is touched.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../common/exec.js';

const BIN = '/usr/lib/rabbitmq/bin';

export interface RabbitSandbox {
  node: string;
  root: string;
  mnesiaBase: string;
  /** rabbitmq.conf and enabled_plugins live here. */
  etcDir: string;
  url: string;
  user: string;
  password: string;
  passwordFile: string;
  /** rabbitmq-env.conf, the Erlang cookie and enabled_plugins (absent when no plugin is enabled). */
  envFile: string;
  cookieFile: string;
  enabledPluginsFile: string;
  /** rabbitmqctl as Debian's /usr/sbin/rabbitmqctl runs it for root: as the rabbitmq user, HOME at its cookie. */
  ctlAsRabbitmq: string[];
  /** rabbitmqctl run as root with the caller's HOME, so the caller must point HOME at the cookie. */
  ctlAsRoot: string[];
  /** A command line running one of RabbitMQ's CLI tools against this node. */
  cli(tool: 'rabbitmqctl' | 'rabbitmq-plugins' | 'rabbitmq-diagnostics', ...args: string[]): string[];
  startCommand: string[];
  stopCommand: string[];
  api<T = unknown>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** The running broker's OS pid, from its pid file. */
  pid(): Promise<number | undefined>;
  waitUntilUp(timeoutMs?: number): Promise<void>;
  waitUntilApiDown(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** Fails (never skips) when the broker is not installed: these tests are the only proof the component works. */
function checkInstalled(): void {
  if (!existsSync(`${BIN}/rabbitmq-server`)) {
    throw new Error(`rabbitmq-server is not installed (${BIN}/rabbitmq-server missing): apt-get install rabbitmq-server`);
  }
  if (process.getuid?.() !== 0) throw new Error('the RabbitMQ tests run the broker as the rabbitmq user and must run as root');
}

export interface SandboxOptions {
  /**
   * false: configured the way LambdaStack's roles/rabbitmq renders a node (rabbitmq_plugins: []):
   * no enabled_plugins file, rabbitmq.conf and rabbitmq-env.conf from its templates, a cookie as
   * update-erlang-cookie.yml writes it. Only ports, paths and the node name are the sandbox's own.
   */
  management?: boolean;
}

/** 15 ASCII letters, as set-erlang-cookie.yml generates a cookie (lookup('password', ... length=15 chars=ascii_letters)). */
function lambdastackCookie(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return Array.from(randomBytes(15), (b) => letters[b % letters.length]).join('');
}

export async function startRabbitSandbox(opts: SandboxOptions = {}): Promise<RabbitSandbox> {
  const management = opts.management ?? true;
  checkInstalled();
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lsb-rabbit-'));
  const tag = randomBytes(4).toString('hex');
  const node = `lsbtest${tag}@localhost`;
  const [amqpPort, distPort, mgmtPort, epmdPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const mnesiaBase = path.join(root, 'mnesia');
  const etcDir = path.join(root, 'etc');
  const logDir = path.join(root, 'log');
  const user = 'lsbadmin';
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const passwordFile = path.join(root, 'admin.password');
  const pidFile = path.join(mnesiaBase, `${node}.pid`);
  for (const d of [mnesiaBase, etcDir, logDir]) await fsp.mkdir(d, { recursive: true });

  const envFile = path.join(etcDir, 'rabbitmq-env.conf');
  const cookieFile = path.join(root, '.erlang.cookie');
  const enabledPluginsFile = path.join(etcDir, 'enabled_plugins');
  if (!management) {
    // templates/rabbitmq-server.j2: the AMQP listener, then custom_configurations as "name = value " lines
    // (here the loopback address and a disk limit a test machine can meet).
    await fsp.writeFile(
      path.join(etcDir, 'rabbitmq.conf'),
      `listeners.tcp.default = 127.0.0.1:${amqpPort}\n\n# To allow custom configs like vm_memory_high_watermark define it via custom_configurations in configuration/rabbitmq\n` +
        'disk_free_limit.absolute                  = 50MB \n',
    );
    // templates/rabbitmq-env.conf.j2 with rabbitmq_use_longname AUTOCONFIGURED on a short hostname;
    // NODENAME is the sandbox's addition, so the agent finds this node's name where LambdaStack would put one.
    await fsp.writeFile(
      envFile,
      `# Ansible managed\n\nRABBITMQ_USE_LONGNAME=false\n\n# Specifies new style config file location\nCONFIG_FILE=${path.join(etcDir, 'rabbitmq.conf')}\nNODENAME=${node}\n`,
    );
    // update-erlang-cookie.yml: template erlang-cookie.j2, owner rabbitmq, mode u=r,go=
    await fsp.writeFile(cookieFile, `${lambdastackCookie()}\n`, { mode: 0o400 });
  } else {
    await fsp.writeFile(
      path.join(etcDir, 'rabbitmq.conf'),
      [
        `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
        `management.tcp.ip = 127.0.0.1`,
        `management.tcp.port = ${mgmtPort}`,
        // queue stats every half second instead of five, so counts show up quickly
        'collect_statistics_interval = 500',
        `default_user = ${user}`,
        `default_pass = ${password}`,
        'disk_free_limit.absolute = 50MB',
        '',
      ].join('\n'),
    );
    await fsp.writeFile(enabledPluginsFile, '[rabbitmq_management].\n');
    await fsp.writeFile(envFile, '');
  }
  await fsp.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  const env = {
    RABBITMQ_NODENAME: node,
    RABBITMQ_MNESIA_BASE: mnesiaBase,
    RABBITMQ_LOG_BASE: logDir,
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: path.join(etcDir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: enabledPluginsFile,
    RABBITMQ_CONF_ENV_FILE: envFile,
    // a private epmd, so the test never shares (or kills) the host's
    ERL_EPMD_PORT: String(epmdPort),
  };
  const envSh = path.join(root, 'env.sh');
  await fsp.writeFile(envSh, Object.entries(env).map(([k, v]) => `export ${k}='${v}'`).join('\n') + '\n');
  // HOME is the sandbox for the server and every CLI call alike: they find the same Erlang cookie there.
  const cliSh = path.join(root, 'cli.sh');
  await fsp.writeFile(cliSh, `#!/bin/sh\n. '${envSh}'\ntool="$1"; shift\nexec runuser -u rabbitmq -- env HOME='${root}' "${BIN}/$tool" "$@"\n`, { mode: 0o755 });
  const ctlSh = path.join(root, 'ctl-as-root.sh');
  await fsp.writeFile(ctlSh, `#!/bin/sh\n. '${envSh}'\nexec "${BIN}/rabbitmqctl" "$@"\n`, { mode: 0o755 });
  const startSh = path.join(root, 'start.sh');
  await fsp.writeFile(
    startSh,
    `#!/bin/sh\n. '${envSh}'\nrunuser -u rabbitmq -- env HOME='${root}' setsid ${BIN}/rabbitmq-server >>'${logDir}/console.log' 2>&1 </dev/null &\n`,
    { mode: 0o755 },
  );
  await run(['chown', '-R', 'rabbitmq:rabbitmq', root]);
  await fsp.chmod(root, 0o755);

  const cli = (tool: string, ...args: string[]) => [cliSh, tool, '-n', node, ...args];
  const url = `http://127.0.0.1:${mgmtPort}`;
  const auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  const api = async <T>(method: string, apiPath: string, body?: unknown) => {
    const res = await fetch(`${url}${apiPath}`, {
      method,
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const pid = async () => {
    const n = Number((await fsp.readFile(pidFile, 'utf8').catch(() => '')).trim());
    return n > 0 ? n : undefined;
  };
  const waitUntil = async (what: string, timeoutMs: number, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) {
        throw new Error(`sandbox RabbitMQ ${node}: ${what} within ${timeoutMs / 1000}s\n${await tail(path.join(logDir, 'console.log'))}\n${await tail(path.join(logDir, `${node}.log`))}`);
      }
      await sleep(250);
    }
  };
  const apiAnswers = () => api('GET', '/api/overview').then((r) => r.status === 200, () => false);
  // Without the management plugin the broker is up once rabbitmqctl status (which needs the rabbit app) succeeds.
  const answers = management ? apiAnswers : () => run(cli('rabbitmqctl', 'status'), { timeoutMs: 30_000 }).then(() => true, () => false);

  const sb: RabbitSandbox = {
    node,
    root,
    mnesiaBase,
    etcDir,
    url,
    user,
    password,
    passwordFile,
    envFile,
    cookieFile,
    enabledPluginsFile,
    ctlAsRabbitmq: [cliSh, 'rabbitmqctl'],
    ctlAsRoot: [ctlSh],
    cli,
    startCommand: [startSh],
    stopCommand: cli('rabbitmqctl', 'shutdown'),
    api,
    pid,
    waitUntilUp: (timeoutMs = 90_000) => waitUntil('not up', timeoutMs, answers),
    waitUntilApiDown: (timeoutMs = 30_000) => waitUntil('management API still answers', timeoutMs, async () => !(await apiAnswers())),
    async destroy() {
      const p = await pid();
      if (p && isAlive(p)) {
        await run(sb.stopCommand, { timeoutMs: 30_000 }).catch(() => undefined);
        if (isAlive(p)) process.kill(p, 'SIGKILL');
      }
      await run(['epmd', '-port', String(epmdPort), '-kill'], { timeoutMs: 5_000 }).catch(() => undefined);
      if (!process.env.LSBACKUP_KEEP_SANDBOX) await fsp.rm(root, { recursive: true, force: true });
    },
  };

  try {
    await run(sb.startCommand);
    await sb.waitUntilUp();
  } catch (err) {
    await sb.destroy();
    throw err;
  }
  return sb;
}
