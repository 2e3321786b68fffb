import { spawn } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { absolutePath, command } from '../../common/config.js';
import { CommandError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { processAlive } from '../../common/lock.js';
import { collectText } from '../../common/collect.js';
import { firstLines, redact, run } from '../../common/exec.js';
import { duBytes, exists, isInside } from '../../common/fsutil.js';
import { pollUntil } from '../../common/poll.js';
import type { BackupContext, ClusterFacts, Component, Detection, Health, RestoreContext } from './component.js';
import { readSecretFile } from '../secrets.js';
import { httpRequest, isOk, readSettingFile, readText, type NetworkFailure } from '../http.js';
import { detectPaths, filesSchema, pathList } from './files.js';


function isApiUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
  } catch {
    return false;
  }
}

const nodeName = z.string().regex(/^[\w.-]+@[\w.-]+$/, 'expected a node name like rabbit@host');

export const rabbitmqSchema = z
  .object({
    /** All of /etc/rabbitmq, as LambdaStack's own backup role archives it (roles/backup/tasks/rabbitmq_rabbitmq_etc.yml). */
    config_paths: pathList.default(['/etc/rabbitmq']),
    /** Where NODENAME, USE_LONGNAME and ENABLED_PLUGINS_FILE are read from; backed up with the config. */
    env_file: absolutePath.default('/etc/rabbitmq/rabbitmq-env.conf'),
    /**
     * The broker's Erlang cookie (LambdaStack's roles/rabbitmq cookie_file). Backed up, and what
     * rabbitmqctl authenticates with: it reads $HOME/.erlang.cookie, so the name is fixed.
     */
    erlang_cookie_file: absolutePath.refine((p) => path.basename(p) === '.erlang.cookie', 'expected a path ending in /.erlang.cookie').default('/var/lib/rabbitmq/.erlang.cookie'),
    /** Default: ENABLED_PLUGINS_FILE from env_file, else /etc/rabbitmq/enabled_plugins. Only read, to tell whether the management plugin is on. */
    enabled_plugins_file: absolutePath.optional(),
    /**
     * auto: the management API where the plugin is on, rabbitmqctl export/import_definitions
     * where it is off (LambdaStack's default, rabbitmq_plugins: []). The other two use only that way.
     */
    definitions_via: z.enum(['auto', 'management_api', 'rabbitmqctl']).default('auto'),
    /** Debian's /usr/sbin/rabbitmqctl, which runs the real one as the rabbitmq user when started by root. */
    rabbitmqctl_command: command.default(['rabbitmqctl']),
    /**
     * This node's management API (with management.path_prefix if one is set). It is also how the
     * agent tells that the broker stopped and came back, so not a URL that other nodes answer too.
     */
    url: z.string().refine(isApiUrl, 'expected an http:// or https:// URL without credentials in it (use user and password)').default('http://127.0.0.1:15672'),
    /** guest/guest is RabbitMQ's default user, accepted from localhost only. */
    user: z.string().min(1).default('guest'),
    password: z.string().min(1).optional(),
    /** Read at every use, so a rotated password needs no agent restart. */
    password_file: absolutePath.optional(),
    /** CA certificate(s) to trust for an https url, instead of the system's. */
    ca_file: absolutePath.optional(),
    /** How long a request may sit without a byte moving. */
    request_timeout_seconds: z.number().positive().default(120),
    /** Enables the management plugin when it is off, and then uses the API; never done unless set. */
    enable_management: z.boolean().default(false),
    enable_management_command: command.default(['rabbitmq-plugins', 'enable', 'rabbitmq_management']),
    /** Copy the node's data dir (queues and their messages); stops the broker while it is copied. */
    messages: z.boolean().default(false),
    mnesia_base: absolutePath.default('/var/lib/rabbitmq/mnesia'),
    /** Default: NODENAME from env_file, else rabbit@<host> as RabbitMQ names itself (short host unless USE_LONGNAME=true). */
    node_name: nodeName.optional(),
    /** Defaults to RabbitMQ's own default, <mnesia_base>/<node_name>.pid. */
    pid_file: absolutePath.optional(),
    /** Must return once the broker has stopped (systemctl stop does). */
    stop_command: command.default(['systemctl', 'stop', 'rabbitmq-server']),
    start_command: command.default(['systemctl', 'start', 'rabbitmq-server']),
    /** When set, the broker counts as up once this exits 0; otherwise once the management API or rabbitmqctl status answers. */
    status_command: command.optional(),
    ready_timeout_seconds: z.number().positive().default(120),
    ...filesSchema,
  })
  .strict()
  .refine((c) => !(c.password && c.password_file), { message: 'give password or password_file, not both', path: ['password_file'] })
  .refine((c) => c.user === 'guest' || c.password || c.password_file, { message: 'password or password_file is required for a user other than guest', path: ['password'] });

type Config = z.output<typeof rabbitmqSchema>;

const DEFINITIONS = 'definitions.json';
const CONFIG = 'config';
const MESSAGES = 'messages';
/** A definitions export is usually well under this; it only sizes the progress bar. */
const DEFINITIONS_GUESS = 1 << 20;
const POLL_MS = 1000;

/** Nothing serves the management API at the configured URL. */
class ManagementOffError extends UnavailableError {}

/** A client for the management API that streams bodies both ways and keeps the password out of every message. */
class ManagementApi {
  private readonly base: URL;
  private readonly where: string;

  constructor(private readonly cfg: Config) {
    this.base = new URL(cfg.url.endsWith('/') ? cfg.url : `${cfg.url}/`);
    this.where = this.base.host;
  }

  private async password(): Promise<string> {
    if (this.cfg.password) return this.cfg.password;
    if (!this.cfg.password_file) return 'guest';
    return readSecretFile(this.cfg.password_file, 'password_file');
  }

  /**
   * Sends one request and resolves with the response once its status is 2xx; the caller reads
   * the body. Anything else becomes a typed error.
   */
  async request(method: string, apiPath: string, opts: { body?: () => Readable; bodyBytes?: number; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<IncomingMessage> {
    const secret = await this.password();
    const url = new URL(apiPath.replace(/^\//, ''), this.base);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.body) headers['content-type'] = 'application/json';
    const res = await httpRequest({
      method,
      url,
      headers,
      basicAuth: { user: this.cfg.user, password: secret },
      body: opts.body,
      bodyBytes: opts.bodyBytes,
      ca: this.cfg.ca_file ? await readSettingFile(this.cfg.ca_file, 'ca_file') : undefined,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? this.cfg.request_timeout_seconds * 1000,
      server: `the management API at ${this.where}`,
      networkError: (f) => this.networkError(f, secret),
    });
    if (isOk(res.statusCode!)) return res;
    throw await this.statusError(method, url, res, secret);
  }

  async json<T>(method: string, apiPath: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const res = await this.request(method, apiPath, opts);
    const text = await readText(res);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UnavailableError(`${method} ${apiPath} at ${this.where} did not answer JSON: ${text.slice(0, 120)}`);
    }
  }

  private networkError(f: NetworkFailure, secret: string): Error {
    if (f.refused) {
      return new ManagementOffError(`management plugin is not enabled on ${this.where}: connection refused (or RabbitMQ is not running)`);
    }
    const tlsHint = f.tls ? '; set ca_file to the CA that signed its certificate' : '';
    return new UnavailableError(redact(`cannot reach the management API at ${this.where}: ${f.code || f.message}${tlsHint}`, [secret]));
  }

  private async statusError(method: string, url: URL, res: IncomingMessage, secret: string): Promise<Error> {
    const text = await readText(res, 4096);
    let reason = text.trim().slice(0, 300);
    try {
      const body = JSON.parse(text) as { error?: string; reason?: unknown };
      reason = [body.error, typeof body.reason === 'string' ? body.reason : JSON.stringify(body.reason)].filter(Boolean).join(': ').slice(0, 300);
    } catch {
      // not JSON: keep the raw start of the body
    }
    const what = `${method} ${url.pathname}`;
    switch (res.statusCode) {
      case 401:
        return new PermissionError(`the management API at ${this.where} refused user '${this.cfg.user}': authentication failed (HTTP 401)`);
      case 403:
        return new PermissionError(`user '${this.cfg.user}' may not ${what} on ${this.where} (HTTP 403); it needs the administrator tag`);
      case 404:
        return new ManagementOffError(`management plugin is not enabled on ${this.where}: ${what} answers 404`);
      default:
        return new UnavailableError(redact(`${what} on ${this.where} answered HTTP ${res.statusCode}${reason ? `: ${reason}` : ''}`, [secret]));
    }
  }
}

/** What rabbitmq-env.conf says of the node, read the way RabbitMQ's rabbitmq-env script reads it. */
export interface EnvSettings {
  nodeName?: string;
  longnames: boolean;
  enabledPluginsFile?: string;
}

/**
 * Reads the shell-style `KEY=value` lines of rabbitmq-env.conf. Both spellings count, and as in
 * rabbitmq-env the RABBITMQ_-prefixed one wins. LambdaStack's template (roles/rabbitmq/templates/
 * rabbitmq-env.conf.j2) sets only RABBITMQ_USE_LONGNAME and CONFIG_FILE.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const plain: Record<string, string> = {};
  const prefixed: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?(RABBITMQ_)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[3]!.trim();
    const quoted = /^(["'])(.*)\1$/.exec(value);
    value = quoted ? quoted[2]! : value.replace(/\s+#.*$/, '');
    (m[1] ? prefixed : plain)[m[2]!] = value;
  }
  return { ...plain, ...prefixed };
}

/** The node name RabbitMQ gives itself: NODENAME (a bare name gets @host), else rabbit@host; host is short unless USE_LONGNAME=true. */
export function envSettings(text: string, hostname = os.hostname()): EnvSettings {
  const env = parseEnvFile(text);
  const longnames = env.USE_LONGNAME?.toLowerCase() === 'true';
  const host = longnames ? hostname : hostname.split('.')[0]!;
  const given = env.NODENAME;
  const nodeName = given ? (given.includes('@') ? given : `${given}@${host}`) : `rabbit@${host}`;
  return { nodeName, longnames, enabledPluginsFile: env.ENABLED_PLUGINS_FILE || undefined };
}

/** The plugin names in an enabled_plugins file, an Erlang list such as `[rabbitmq_management,rabbitmq_shovel].` */
export function parseEnabledPlugins(text: string): string[] {
  const list = /\[([^\]]*)\]/.exec(text)?.[1] ?? '';
  return list.split(',').map((s) => s.trim().replace(/^'(.*)'$/, '$1')).filter(Boolean);
}

/** Plugins that serve the management API: rabbitmq_management itself, and those enabling it as a dependency. */
export function servesManagementApi(plugins: string[]): boolean {
  return plugins.some((p) => p === 'rabbitmq_management' || /^rabbitmq_\w+_management$/.test(p) || p === 'rabbitmq_top' || p === 'rabbitmq_tracing');
}

/** rabbitmqctl could not talk to the node: it is not running, the cookie is not the broker's, or the name is wrong. */
export class NodeUnreachableError extends UnavailableError {}

/** The bullet lines rabbitmqctl prints for the node under DIAGNOSTICS; the first that is not a step that worked is the cause. */
function unreachableCause(text: string): string {
  const diag = text.split(/^DIAGNOSTICS\s*$/m)[1]?.split(/^Current node details:/m)[0] ?? '';
  const bullets = [...diag.matchAll(/^\s*\*\s+(.+?)\s*$/gm)].map((m) => m[1]!);
  const cause = bullets.find((b) => !/^(connected to epmd|epmd reports node '.*' uses port|suggestion:)/.test(b));
  return cause ?? 'no diagnostics given';
}

interface CtlStatus {
  rabbitmq_version?: string;
  active_plugins?: string[];
}

/**
 * RabbitMQ's own CLI against the local node: how definitions move when the management plugin is
 * off. rabbitmqctl authenticates with $HOME/.erlang.cookie; run as root it would read root's,
 * which is not the broker's, so HOME is the cookie's directory (Debian's wrapper switches to the
 * rabbitmq user, whose HOME that already is).
 */
class Rabbitmqctl {
  constructor(
    private readonly cfg: Config,
    readonly node: string,
    private readonly longnames: boolean,
  ) {}

  private argv(args: string[]): string[] {
    return [...this.cfg.rabbitmqctl_command, '-n', this.node, ...(this.longnames ? ['--longnames'] : []), ...args];
  }

  private async env(): Promise<NodeJS.ProcessEnv> {
    const cookie = this.cfg.erlang_cookie_file;
    // Without the file the CLI would write a new cookie into HOME, which the broker then refuses.
    if (!(await exists(cookie))) {
      throw new PreconditionError(`no Erlang cookie at ${cookie}: rabbitmqctl needs the broker's cookie to reach node ${this.node}; set erlang_cookie_file`);
    }
    return { ...process.env, HOME: path.dirname(cookie) };
  }

  /** One line for a failed call: the cause from rabbitmqctl's diagnostics, not its forty lines of advice. */
  private failure(sub: string, code: number | null, stderr: string, stdout: string): Error {
    const text = `${stderr}\n${stdout}`;
    if (code === 69 || /unable to perform an operation on node|unable to connect to node/.test(text)) {
      const cause = unreachableCause(text);
      const hint = /distribution failed|authenticat|cookie/i.test(cause)
        ? ` (is ${this.cfg.erlang_cookie_file} the cookie the broker runs with?)`
        : /not running/.test(cause)
          ? ' (is RabbitMQ running, and is node_name right?)'
          : '';
      return new NodeUnreachableError(`rabbitmqctl cannot reach RabbitMQ node ${this.node}: ${cause}${hint}`);
    }
    if (/requires the 'rabbit' app to be running|rabbit_is_not_running/.test(text)) {
      return new UnavailableError(`RabbitMQ node ${this.node} is up but its rabbit application is not running (rabbitmqctl ${sub})`);
    }
    const why = code === null ? 'killed' : `exit ${code}`;
    return new CommandError(`rabbitmqctl ${sub} on ${this.node} failed (${why}): ${firstLines(stderr || stdout)}`);
  }

  private notFound(err: unknown): Error {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new PreconditionError(`${this.cfg.rabbitmqctl_command[0]}: command not found; install RabbitMQ's CLI tools or set rabbitmqctl_command`);
    }
    return err as Error;
  }

  /**
   * Runs one subcommand, with `stdin` fed to it and its stdout handed to `consume` as it comes;
   * rejects with one line when it fails, after `consume` is done either way.
   */
  private async call(sub: string, args: string[], opts: { signal?: AbortSignal; timeoutMs?: number; stdin?: () => Readable; consume?: (out: Readable) => Promise<unknown> }): Promise<string> {
    const env = await this.env();
    const child = spawn(this.argv(args)[0]!, this.argv(args).slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal, timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
    const stderrText = collectText(child.stderr, 65536);
    const closed = new Promise<number | null>((resolve, reject) => {
      child.on('error', (err) => reject(this.notFound(err)));
      child.on('close', (code) => resolve(code));
    });
    child.stdin.on('error', () => undefined);
    if (opts.stdin) pipeline(opts.stdin(), child.stdin).catch(() => undefined);
    else child.stdin.end();
    // Collected output is complete at 'close': the child's pipes have ended by then.
    const stdoutText = opts.consume ? () => '' : collectText(child.stdout);
    const consumed = opts.consume ? opts.consume(child.stdout).then(() => undefined, (err: unknown) => err) : undefined;
    const code = await closed;
    const consumeError = await consumed;
    if (code !== 0) throw this.failure(sub, code, stderrText(), stdoutText());
    if (consumeError) throw consumeError;
    return stdoutText();
  }

  async status(opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<CtlStatus> {
    const out = await this.call('status', ['status', '--formatter', 'json'], { timeoutMs: 30_000, ...opts });
    try {
      return JSON.parse(out) as CtlStatus;
    } catch {
      throw new UnavailableError(`rabbitmqctl status on ${this.node} did not print JSON: ${out.slice(0, 120)}`);
    }
  }

  /** Streams `export_definitions -` (RabbitMQ >= 3.8.2) to `consume`. */
  async exportDefinitions(signal: AbortSignal, consume: (out: Readable) => Promise<unknown>): Promise<void> {
    await this.call('export_definitions', ['--quiet', 'export_definitions', '-'], { signal, consume });
  }

  /** Fed on stdin: run as the rabbitmq user (Debian's wrapper) it could not read a root-only file. Not "-": 3.10 takes that for a file name. */
  async importDefinitions(file: string, signal: AbortSignal): Promise<void> {
    await this.call('import_definitions', ['--quiet', 'import_definitions'], { signal, stdin: () => createReadStream(file) });
  }
}

/** Polls until `probe` reports no trouble (undefined); `signal` only stops the wait, it never leaves the broker half-handled. */
async function waitFor(what: string, timeoutS: number, probe: () => Promise<string | undefined>, signal?: AbortSignal): Promise<void> {
  let last = '';
  const done = await pollUntil(Date.now() + timeoutS * 1000, { everyMs: POLL_MS, signal }, async () => {
    const trouble = await probe();
    if (trouble === undefined) return true;
    last = trouble;
    return undefined;
  });
  if (!done) throw new UnavailableError(`${what} (waited ${timeoutS}s; last: ${last})`);
}

type Route = 'management_api' | 'rabbitmqctl';

/** How definitions move, and whether that was asked for (no fallback) or only expected (the API, falling back to rabbitmqctl). */
interface RoutePlan {
  route: Route;
  pinned: boolean;
  why: string;
}

/** The node as this host has it configured, read at every operation: rabbitmq-env.conf may change between them. */
interface LocalNode {
  name: string;
  longnames: boolean;
  enabledPluginsFile: string;
  nodeDir: string;
  /** Mnesia and Khepri data live in the node's directory; the feature-flags file beside it must match them. */
  dataPaths: string[];
  pidFile: string;
  ctl: Rabbitmqctl;
}

export function rabbitmq(cfg: Config): Component {
  const api = new ManagementApi(cfg);
  const cookie = cfg.erlang_cookie_file;
  // What LambdaStack's backup role keeps (/etc/rabbitmq) plus the cookie, which a rebuilt node
  // needs to rejoin its cluster; a path already inside another one is not listed twice.
  const wanted = [...cfg.config_paths, cfg.env_file, cookie];
  const configSources = wanted.filter((p, i) => !wanted.some((q, j) => j !== i && isInside(q, p) && (p !== q || j < i)));
  const artifactOf = (ctx: RestoreContext, file: string) => ctx.treeArtifact(file);
  /** A tree (config, messages) by the name addTree had, or a stream artifact (definitions.json) by its file name. */
  const hasArtifact = (ctx: RestoreContext, name: string) => ctx.treeArtifact(name) !== undefined || ctx.streamArtifact(name) !== undefined;

  async function localNode(): Promise<LocalNode> {
    const envText = await fsp.readFile(cfg.env_file, 'utf8').catch(() => '');
    const env = envSettings(envText);
    const name = cfg.node_name ?? env.nodeName!;
    const nodeDir = path.join(cfg.mnesia_base, name);
    return {
      name,
      longnames: env.longnames,
      enabledPluginsFile: cfg.enabled_plugins_file ?? env.enabledPluginsFile ?? '/etc/rabbitmq/enabled_plugins',
      nodeDir,
      dataPaths: [nodeDir, `${nodeDir}-feature_flags`],
      pidFile: cfg.pid_file ?? `${nodeDir}.pid`,
      ctl: new Rabbitmqctl(cfg, name, env.longnames),
    };
  }

  /**
   * The setting wins; then what the build directory says (facts.rabbitmq_plugins, empty for none);
   * then the node's enabled_plugins file, which RabbitMQ reads the same way (no file: no plugins).
   */
  async function planRoute(node: LocalNode, facts: ClusterFacts = {}): Promise<RoutePlan> {
    if (cfg.definitions_via !== 'auto') return { route: cfg.definitions_via, pinned: true, why: `definitions_via: ${cfg.definitions_via}` };
    if (cfg.enable_management) return { route: 'management_api', pinned: true, why: 'enable_management: true' };
    let plugins: string[] | undefined;
    let source: string;
    if (facts.rabbitmq_plugins !== undefined) {
      plugins = facts.rabbitmq_plugins.split(',').map((s) => s.trim()).filter(Boolean);
      source = 'the build directory';
    } else {
      source = node.enabledPluginsFile;
      try {
        plugins = parseEnabledPlugins(await fsp.readFile(node.enabledPluginsFile, 'utf8'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') plugins = [];
      }
    }
    if (plugins === undefined) return { route: 'management_api', pinned: false, why: `${source} unreadable` };
    const on = servesManagementApi(plugins);
    return { route: on ? 'management_api' : 'rabbitmqctl', pinned: false, why: `management plugin ${on ? 'on' : 'off'} (${source})` };
  }

  /** Runs `fn` against the management API, enabling the plugin first where the config allows it. */
  async function withManagement<T>(log: BackupContext['log'], signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ManagementOffError)) throw err;
      if (!cfg.enable_management) {
        throw new PreconditionError(`${err.message}; run 'rabbitmq-plugins enable rabbitmq_management' or set enable_management: true`);
      }
      log.warn(`${err.message}; running '${cfg.enable_management_command.join(' ')}'`);
      await run(cfg.enable_management_command, { signal });
    }
    let result: T | undefined;
    await waitFor(`the management API did not answer after '${cfg.enable_management_command.join(' ')}'`, cfg.ready_timeout_seconds, async () => {
      try {
        result = await fn();
        return undefined;
      } catch (err) {
        if (err instanceof ManagementOffError) return err.message;
        throw err;
      }
    }, signal);
    return result!;
  }

  /**
   * Decides the route for one operation by asking the broker its version the planned way: an API
   * that turns out to be off (and was not asked for) hands over to rabbitmqctl.
   */
  async function reachBroker(node: LocalNode, plan: RoutePlan, log: BackupContext['log'], signal: AbortSignal): Promise<{ route: Route; version: string }> {
    if (plan.route === 'management_api') {
      const overview = () => api.json<{ rabbitmq_version?: string }>('GET', '/api/overview', { signal });
      try {
        const o = plan.pinned ? await withManagement(log, signal, overview) : await overview();
        return { route: 'management_api', version: o.rabbitmq_version ?? '' };
      } catch (err) {
        if (plan.pinned || !(err instanceof ManagementOffError)) throw err;
        log.info(`${err.message}; using rabbitmqctl on ${node.name}`);
      }
    }
    const s = await node.ctl.status({ signal });
    return { route: 'rabbitmqctl', version: s.rabbitmq_version ?? '' };
  }

  /** An expected API that is found off becomes rabbitmqctl: readiness after a restart must ask the one that answers. */
  async function routeNow(node: LocalNode, plan: RoutePlan, log: BackupContext['log']): Promise<RoutePlan> {
    if (plan.pinned || plan.route === 'rabbitmqctl') return plan;
    try {
      (await api.request('GET', '/api/overview', { timeoutMs: 10_000 })).resume();
    } catch (err) {
      if (err instanceof ManagementOffError) {
        log.info(`${err.message}; using rabbitmqctl on ${node.name}`);
        return { route: 'rabbitmqctl', pinned: false, why: 'management API off' };
      }
    }
    return plan;
  }

  /** Readiness: the status command succeeds, or the broker answers the way definitions go (a 401 is an answer). */
  async function notReady(node: LocalNode, route: Route): Promise<string | undefined> {
    if (cfg.status_command) {
      return run(cfg.status_command, { timeoutMs: 30_000 }).then(() => undefined, (err: unknown) => messageOf(err));
    }
    if (route === 'rabbitmqctl') return node.ctl.status().then(() => undefined, (err: unknown) => messageOf(err));
    try {
      (await api.request('GET', '/api/overview', { timeoutMs: 10_000 })).resume();
      return undefined;
    } catch (err) {
      return err instanceof PermissionError ? undefined : messageOf(err);
    }
  }

  /** The broker must be gone before its data dir is read or replaced: a live mnesia copy is not a backup. */
  async function stopBroker(node: LocalNode, route: Route, signal: AbortSignal): Promise<void> {
    await run(cfg.stop_command, { signal });
    const answering = route === 'rabbitmqctl' ? `rabbitmqctl status on ${node.name}` : `the management API at ${cfg.url}`;
    await waitFor(`RabbitMQ is still running after '${cfg.stop_command.join(' ')}', so its data dir is left alone`, cfg.ready_timeout_seconds, async () => {
      const pid = Number((await fsp.readFile(node.pidFile, 'utf8').catch(() => '')).trim());
      if (pid > 0 && processAlive(pid)) return `pid ${pid} from ${node.pidFile} is alive`;
      if ((await notReady(node, route)) === undefined) return `${answering} still answers`;
      return undefined;
    }, signal);
  }

  /** Never given the operation's signal: a cancelled backup must still bring the broker back. */
  async function startBroker(node: LocalNode, route: Route): Promise<void> {
    await run(cfg.start_command, { timeoutMs: cfg.ready_timeout_seconds * 1000 });
    await waitFor(`RabbitMQ did not come back after '${cfg.start_command.join(' ')}'`, cfg.ready_timeout_seconds, () => notReady(node, route));
  }

  /** Runs `work` with the broker stopped and starts it again whatever happened, reporting both failures. */
  async function whileStopped(
    ctx: { log: BackupContext['log']; signal: AbortSignal; progress: BackupContext['progress'] },
    node: LocalNode,
    route: Route,
    why: string,
    work: () => Promise<void>,
  ): Promise<void> {
    ctx.log.info(`stopping RabbitMQ to ${why}: ${cfg.stop_command.join(' ')}`);
    ctx.progress(0, `stopping RabbitMQ to ${why}`);
    let failure: unknown;
    try {
      await stopBroker(node, route, ctx.signal);
      await work();
    } catch (err) {
      failure = err;
    }
    ctx.progress(0, 'starting RabbitMQ again');
    try {
      await startBroker(node, route);
    } catch (err) {
      const before = failure ? `could not ${why}: ${messageOf(failure)}; then ` : '';
      throw new UnavailableError(`${before}${messageOf(err)}; RabbitMQ on ${node.name} is DOWN`);
    }
    ctx.log.info('RabbitMQ is up again');
    if (failure) throw failure;
  }

  async function restoreDataDir(ctx: RestoreContext, node: LocalNode, route: Route): Promise<void> {
    const archive = artifactOf(ctx, MESSAGES);
    if (ctx.dryRun) {
      ctx.progress(0, `would stop RabbitMQ (${cfg.stop_command.join(' ')}), replace ${node.nodeDir} and start it again`);
      await ctx.restoreFiles({ archive });
      return;
    }
    const keep = new Set((await ctx.entries(archive)).map((e) => e.path));
    await whileStopped(ctx, node, route, `replace ${node.nodeDir}`, async () => {
      const { rollbackDir } = await ctx.restoreFiles({ archive });
      // restoreFiles only adds and overwrites; a mnesia log or queue directory written after the
      // backup would be replayed on top of the restored tables, so everything else goes.
      const removed = await removeExtras(node.nodeDir, keep);
      ctx.log.info(`restored ${node.nodeDir}, removed ${removed} path(s) the backup did not have; previous files in ${rollbackDir}`);
    });
    ctx.restarted(`RabbitMQ on ${node.name} (stopped while ${node.nodeDir} was replaced)`);
  }

  /** Puts /etc/rabbitmq and the cookie back, owners and modes included, and says when the cookie changed. */
  async function restoreConfig(ctx: RestoreContext): Promise<void> {
    if (!hasArtifact(ctx, CONFIG)) return;
    const before = await fsp.readFile(cookie).catch(() => undefined);
    await ctx.restoreFiles({ archive: artifactOf(ctx, CONFIG) });
    if (ctx.dryRun) return;
    const after = await fsp.readFile(cookie).catch(() => undefined);
    if (before && after && !before.equals(after)) {
      ctx.report(`replaced the Erlang cookie ${cookie} with the backup's; a broker started before keeps its old cookie until it restarts`);
    }
  }

  async function importDefinitions(ctx: RestoreContext, node: LocalNode, plan: RoutePlan): Promise<void> {
    const file = ctx.artifactFile(DEFINITIONS);
    const { size } = await fsp.stat(file);
    if (ctx.dryRun) {
      ctx.progress(0, plan.route === 'rabbitmqctl'
        ? `would import ${DEFINITIONS} (${size} bytes) with rabbitmqctl import_definitions on ${node.name}`
        : `would POST ${DEFINITIONS} (${size} bytes) to ${cfg.url}/api/definitions`);
      return;
    }
    ctx.changing();
    const viaApi = async () => {
      const res = await api.request('POST', '/api/definitions', { body: () => createReadStream(file), bodyBytes: size, signal: ctx.signal });
      res.resume();
    };
    if (plan.route === 'rabbitmqctl') await node.ctl.importDefinitions(file, ctx.signal);
    else if (plan.pinned) await withManagement(ctx.log, ctx.signal, viaApi);
    else {
      try {
        await viaApi();
      } catch (err) {
        if (!(err instanceof ManagementOffError)) throw err;
        ctx.log.info(`${err.message}; importing with rabbitmqctl on ${node.name}`);
        await node.ctl.importDefinitions(file, ctx.signal);
      }
    }
    ctx.progress(size, 'definitions imported');
  }

  /**
   * Definitions first, while the cookie on disk is still the one rabbitmqctl has been reaching the
   * broker with (on a rebuilt node the backup's would not be, until a restart). Only when rabbitmqctl
   * cannot reach the node with it, the damaged cookie is the likely cause: files first, then again.
   */
  async function importThenConfig(ctx: RestoreContext, node: LocalNode, plan: RoutePlan): Promise<void> {
    try {
      await importDefinitions(ctx, node, plan);
    } catch (err) {
      if (!(err instanceof NodeUnreachableError) || !hasArtifact(ctx, CONFIG)) throw err;
      ctx.log.warn(`${err.message}; restoring the config files and Erlang cookie first, then importing again`);
      await restoreConfig(ctx);
      await importDefinitions(ctx, node, plan);
      return;
    }
    await restoreConfig(ctx);
  }

  return {
    name: 'rabbitmq',
    restorePaths: [...configSources, cfg.mnesia_base],

    async detect(): Promise<Detection> {
      const found = await detectPaths('RabbitMQ', cfg.config_paths);
      if (!found.present) return found;
      const node = await localNode();
      const plan = await planRoute(node);
      const how = plan.route === 'rabbitmqctl' ? 'definitions via rabbitmqctl' : 'definitions via the management API';
      return { present: true, detail: `${found.detail}, node ${node.name}, ${plan.pinned ? plan.why : plan.why.replace(/ \(.*\)$/, '')} (${how})` };
    },

    async estimateBytes() {
      const node = await localNode();
      return (await duBytes(configSources)) + DEFINITIONS_GUESS + (cfg.messages ? await duBytes(node.dataPaths) : 0);
    },

    async health(): Promise<Health> {
      const node = await localNode();
      const plan = await planRoute(node);
      if (plan.route === 'management_api') {
        try {
          const o = await api.json<{ rabbitmq_version?: string; node?: string }>('GET', '/api/overview', { timeoutMs: 10_000 });
          return { status: 'ok', detail: `RabbitMQ ${o.rabbitmq_version ?? '?'} on ${o.node ?? node.name}` };
        } catch (err) {
          if (plan.pinned || !(err instanceof ManagementOffError)) return { status: err instanceof PermissionError ? 'degraded' : 'down', detail: messageOf(err) };
        }
      }
      try {
        const s = await node.ctl.status();
        return { status: 'ok', detail: `RabbitMQ ${s.rabbitmq_version ?? '?'} on ${node.name} (management plugin off; rabbitmqctl)` };
      } catch (err) {
        return { status: 'down', detail: messageOf(err) };
      }
    },

    async backup(ctx) {
      const node = await localNode();
      // Everything that can fail cheaply is checked before the broker is stopped.
      const { route, version } = await reachBroker(node, await planRoute(node, ctx.facts), ctx.log, ctx.signal);
      if (cfg.messages && !(await exists(node.nodeDir))) {
        throw new PreconditionError(`no data dir ${node.nodeDir}: check node_name and mnesia_base (RabbitMQ was not stopped)`);
      }
      ctx.meta.rabbitmq_version = version;
      ctx.meta.messages = String(cfg.messages);
      ctx.meta.definitions_via = route;

      if (route === 'rabbitmqctl') {
        // Read whole before it is stored (definitions are a few MiB at most): a wrapper that prints
        // a banner, or an export cut short, would be restored as garbage.
        const chunks: Buffer[] = [];
        await node.ctl.exportDefinitions(ctx.signal, async (out) => {
          for await (const chunk of out) chunks.push(chunk as Buffer);
        });
        const text = Buffer.concat(chunks);
        try {
          JSON.parse(text.toString('utf8'));
        } catch {
          throw new UnavailableError(`rabbitmqctl export_definitions on ${node.name} did not print one JSON document`);
        }
        await ctx.addStream(DEFINITIONS, Readable.from([text]));
      } else {
        const res = await api.request('GET', '/api/definitions', { signal: ctx.signal });
        if (!String(res.headers['content-type']).startsWith('application/json')) {
          res.destroy();
          throw new UnavailableError(`GET /api/definitions on ${cfg.url} answered ${res.headers['content-type']}, not JSON`);
        }
        await ctx.addStream(DEFINITIONS, res);
      }
      await ctx.addTree(CONFIG, configSources);

      if (cfg.messages) {
        ctx.meta.node_name = node.name;
        await whileStopped(ctx, node, route, `copy ${node.nodeDir}`, async () => {
          await ctx.addTree(MESSAGES, node.dataPaths);
        });
      }
      return { status: 'ok' };
    },

    async restore(ctx) {
      const opt = ctx.options.messages;
      const node = await localNode();
      const withMessages = opt === 'true' || (opt === undefined && cfg.messages && hasArtifact(ctx, MESSAGES));
      if (withMessages) {
        if (!hasArtifact(ctx, MESSAGES)) throw new PreconditionError(`backup ${ctx.backupId} has no messages for ${ctx.part.node}: it was taken without messages: true`);
        const from = ctx.part.meta.node_name ?? '';
        if (from !== node.name) {
          throw new PreconditionError(
            `the messages in backup ${ctx.backupId} come from node ${from || '(unknown)'}, but this node is ${node.name}; mnesia data is bound to its node name, so they are not restored here`,
          );
        }
      }
      // The data dir already holds the definitions as of its copy, which is newer than the export.
      const withDefinitions = hasArtifact(ctx, DEFINITIONS) && (ctx.options.definitions === 'true' || (!withMessages && ctx.options.definitions !== 'false'));
      const plan = await routeNow(node, await planRoute(node), ctx.log);

      if (withMessages) {
        // The broker restarts with the restored cookie and config, so they go first.
        await restoreConfig(ctx);
        await restoreDataDir(ctx, node, plan.route);
        if (withDefinitions) await importDefinitions(ctx, node, plan);
      } else if (withDefinitions) {
        await importThenConfig(ctx, node, plan);
      } else {
        await restoreConfig(ctx);
      }
      if (cfg.after_restore_command && !ctx.dryRun) await run(cfg.after_restore_command, { signal: ctx.signal });
    },
  };
}

/** Deletes everything under `root` that is not in `keep`; returns how many top-most paths went. */
async function removeExtras(root: string, keep: Set<string>): Promise<number> {
  let removed = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const name of await fsp.readdir(dir)) {
      const p = path.join(dir, name);
      if (!keep.has(p)) {
        await fsp.rm(p, { recursive: true, force: true });
        removed++;
      } else if ((await fsp.lstat(p)).isDirectory()) {
        await walk(p);
      }
    }
  };
  if (keep.has(root)) await walk(root);
  return removed;
}
