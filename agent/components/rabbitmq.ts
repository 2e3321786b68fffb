import { createReadStream, promises as fsp } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { command } from '../../common/config.js';
import { InputError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { processAlive } from '../../common/lock.js';
import { redact, run } from '../../common/exec.js';
import { duBytes, exists } from '../../common/fsutil.js';
import { pollUntil } from '../../common/poll.js';
import type { BackupContext, Component, Health, RestoreContext } from './component.js';
import { detectPaths, filesSchema, pathList } from './files.js';

const absolutePath = z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path');

function isApiUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
  } catch {
    return false;
  }
}

export const rabbitmqSchema = z
  .object({
    config_paths: pathList.default(['/etc/rabbitmq/rabbitmq.conf', '/etc/rabbitmq/enabled_plugins', '/etc/rabbitmq/advanced.config']),
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
    enable_management: z.boolean().default(false),
    enable_management_command: command.default(['rabbitmq-plugins', 'enable', 'rabbitmq_management']),
    /** Copy the node's data dir (queues and their messages); stops the broker while it is copied. */
    messages: z.boolean().default(false),
    mnesia_base: absolutePath.default('/var/lib/rabbitmq/mnesia'),
    node_name: z
      .string()
      .regex(/^[\w.-]+@[\w.-]+$/, 'expected a node name like rabbit@host')
      .default(() => `rabbit@${os.hostname().split('.')[0]}`),
    /** Defaults to RabbitMQ's own default, <mnesia_base>/<node_name>.pid. */
    pid_file: absolutePath.optional(),
    /** Must return once the broker has stopped (systemctl stop does). */
    stop_command: command.default(['systemctl', 'stop', 'rabbitmq-server']),
    start_command: command.default(['systemctl', 'start', 'rabbitmq-server']),
    /** When set, the broker counts as up once this exits 0; otherwise once the management API answers. */
    status_command: command.optional(),
    ready_timeout_seconds: z.number().positive().default(120),
    ...filesSchema,
  })
  .strict()
  .refine((c) => !(c.password && c.password_file), { message: 'give password or password_file, not both', path: ['password_file'] })
  .refine((c) => c.user === 'guest' || c.password || c.password_file, { message: 'password or password_file is required for a user other than guest', path: ['password'] });

type Config = z.output<typeof rabbitmqSchema>;

const DEFINITIONS = 'definitions.json';
const CONFIG = 'config.zip';
const MESSAGES = 'messages.zip';
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
    try {
      return (await fsp.readFile(this.cfg.password_file, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new InputError(`password_file ${this.cfg.password_file}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
  }

  private async caCert(): Promise<Buffer | undefined> {
    if (!this.cfg.ca_file) return undefined;
    try {
      return await fsp.readFile(this.cfg.ca_file);
    } catch (err) {
      throw new InputError(`ca_file ${this.cfg.ca_file}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
  }

  /**
   * Sends one request and resolves with the response once its status is 2xx; the caller reads
   * the body. Anything else becomes a typed error. Node's http module rather than fetch: fetch
   * cannot be given a CA per request without the undici package.
   */
  async request(method: string, apiPath: string, opts: { body?: () => Readable; bodyBytes?: number; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<IncomingMessage> {
    const secret = await this.password();
    const url = new URL(apiPath.replace(/^\//, ''), this.base);
    const headers: Record<string, string | number> = {
      authorization: `Basic ${Buffer.from(`${this.cfg.user}:${secret}`).toString('base64')}`,
      accept: 'application/json',
    };
    if (opts.body) {
      headers['content-type'] = 'application/json';
      if (opts.bodyBytes !== undefined) headers['content-length'] = opts.bodyBytes;
    }
    const timeoutMs = opts.timeoutMs ?? this.cfg.request_timeout_seconds * 1000;
    const ca = await this.caCert();
    const send = url.protocol === 'https:' ? https.request : http.request;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, { method, headers, ca, signal: opts.signal, timeout: timeoutMs }, resolve);
      req.on('timeout', () => req.destroy(new UnavailableError(`the management API at ${this.where} sent nothing for ${timeoutMs / 1000}s (${method} ${url.pathname})`)));
      req.on('error', (err) => reject(this.networkError(err, secret)));
      if (opts.body) pipeline(opts.body(), req).catch((err) => reject(this.networkError(err, secret)));
      else req.end();
    });
    if (res.statusCode! >= 200 && res.statusCode! < 300) return res;
    throw await this.statusError(method, url, res, secret);
  }

  async json<T>(method: string, apiPath: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const res = await this.request(method, apiPath, opts);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UnavailableError(`${method} ${apiPath} at ${this.where} did not answer JSON: ${text.slice(0, 120)}`);
    }
  }

  private networkError(err: unknown, secret: string): Error {
    if (err instanceof UnavailableError || (err as Error).name === 'AbortError') return err as Error;
    const e = err as NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] };
    const code = e.code ?? e.errors?.[0]?.code;
    if (code === 'ECONNREFUSED') {
      return new ManagementOffError(`management plugin is not enabled on ${this.where}: connection refused (or RabbitMQ is not running)`);
    }
    const tlsHint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code ?? '') ? '; set ca_file to the CA that signed its certificate' : '';
    return new UnavailableError(redact(`cannot reach the management API at ${this.where}: ${code ?? e.message}${tlsHint}`, [secret]));
  }

  private async statusError(method: string, url: URL, res: IncomingMessage, secret: string): Promise<Error> {
    let text = '';
    for await (const c of res) {
      if (text.length < 4096) text += (c as Buffer).toString('utf8');
    }
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

export function rabbitmq(cfg: Config): Component {
  const api = new ManagementApi(cfg);
  const nodeDir = path.join(cfg.mnesia_base, cfg.node_name);
  // Mnesia and Khepri data live in the node's directory; the feature-flags file beside it must match them.
  const dataPaths = [nodeDir, `${nodeDir}-feature_flags`];
  const pidFile = cfg.pid_file ?? `${nodeDir}.pid`;
  const artifactOf = (ctx: RestoreContext, file: string) => `${ctx.part.node}/${ctx.part.component}/${file}`;
  const hasArtifact = (ctx: RestoreContext, file: string) => ctx.part.artifacts.some((a) => a.path === artifactOf(ctx, file));

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

  /** Readiness: the status command succeeds, or the management API answers at all (a 401 is an answer). */
  async function notReady(): Promise<string | undefined> {
    if (cfg.status_command) {
      return run(cfg.status_command, { timeoutMs: 30_000 }).then(() => undefined, (err: unknown) => messageOf(err));
    }
    try {
      (await api.request('GET', '/api/overview', { timeoutMs: 10_000 })).resume();
      return undefined;
    } catch (err) {
      return err instanceof PermissionError ? undefined : messageOf(err);
    }
  }

  /** The broker must be gone before its data dir is read or replaced: a live mnesia copy is not a backup. */
  async function stopBroker(signal: AbortSignal): Promise<void> {
    await run(cfg.stop_command, { signal });
    await waitFor(`RabbitMQ is still running after '${cfg.stop_command.join(' ')}', so its data dir is left alone`, cfg.ready_timeout_seconds, async () => {
      const pid = Number((await fsp.readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (pid > 0 && processAlive(pid)) return `pid ${pid} from ${pidFile} is alive`;
      if ((await notReady()) === undefined) return `the management API at ${cfg.url} still answers`;
      return undefined;
    }, signal);
  }

  /** Never given the operation's signal: a cancelled backup must still bring the broker back. */
  async function startBroker(): Promise<void> {
    await run(cfg.start_command, { timeoutMs: cfg.ready_timeout_seconds * 1000 });
    await waitFor(`RabbitMQ did not come back after '${cfg.start_command.join(' ')}'`, cfg.ready_timeout_seconds, notReady);
  }

  /** Runs `work` with the broker stopped and starts it again whatever happened, reporting both failures. */
  async function whileStopped(ctx: { log: BackupContext['log']; signal: AbortSignal; progress: BackupContext['progress'] }, why: string, work: () => Promise<void>): Promise<void> {
    ctx.log.info(`stopping RabbitMQ to ${why}: ${cfg.stop_command.join(' ')}`);
    ctx.progress(0, `stopping RabbitMQ to ${why}`);
    let failure: unknown;
    try {
      await stopBroker(ctx.signal);
      await work();
    } catch (err) {
      failure = err;
    }
    ctx.progress(0, 'starting RabbitMQ again');
    try {
      await startBroker();
    } catch (err) {
      const before = failure ? `could not ${why}: ${messageOf(failure)}; then ` : '';
      throw new UnavailableError(`${before}${messageOf(err)}; RabbitMQ on ${cfg.node_name} is DOWN`);
    }
    ctx.log.info('RabbitMQ is up again');
    if (failure) throw failure;
  }

  async function restoreDataDir(ctx: RestoreContext): Promise<void> {
    const archive = artifactOf(ctx, MESSAGES);
    if (ctx.dryRun) {
      ctx.progress(0, `would stop RabbitMQ (${cfg.stop_command.join(' ')}), replace ${nodeDir} and start it again`);
      await ctx.restoreFiles({ archive });
      return;
    }
    const keep = new Set(ctx.part.entries.filter((e) => e.archive === archive).map((e) => e.path));
    await whileStopped(ctx, `replace ${nodeDir}`, async () => {
      const { rollbackDir } = await ctx.restoreFiles({ archive });
      // restoreFiles only adds and overwrites; a mnesia log or queue directory written after the
      // backup would be replayed on top of the restored tables, so everything else goes.
      const removed = await removeExtras(nodeDir, keep);
      ctx.log.info(`restored ${nodeDir}, removed ${removed} path(s) the backup did not have; previous files in ${rollbackDir}`);
    });
  }

  async function importDefinitions(ctx: RestoreContext): Promise<void> {
    const file = ctx.artifactFile(DEFINITIONS);
    const { size } = await fsp.stat(file);
    if (ctx.dryRun) {
      ctx.progress(0, `would POST ${DEFINITIONS} (${size} bytes) to ${cfg.url}/api/definitions`);
      return;
    }
    const res = await withManagement(ctx.log, ctx.signal, () =>
      api.request('POST', '/api/definitions', { body: () => createReadStream(file), bodyBytes: size, signal: ctx.signal }),
    );
    res.resume();
    ctx.progress(size, 'definitions imported');
  }

  return {
    name: 'rabbitmq',
    restorePaths: [...cfg.config_paths, cfg.mnesia_base],
    detect: () => detectPaths('RabbitMQ', cfg.config_paths),

    async estimateBytes() {
      return (await duBytes(cfg.config_paths)) + DEFINITIONS_GUESS + (cfg.messages ? await duBytes(dataPaths) : 0);
    },

    async health(): Promise<Health> {
      try {
        const o = await api.json<{ rabbitmq_version?: string; node?: string }>('GET', '/api/overview', { timeoutMs: 10_000 });
        return { status: 'ok', detail: `RabbitMQ ${o.rabbitmq_version ?? '?'} on ${o.node ?? cfg.node_name}` };
      } catch (err) {
        return { status: err instanceof PermissionError ? 'degraded' : 'down', detail: messageOf(err) };
      }
    },

    async backup(ctx) {
      // Everything that can fail cheaply is checked before the broker is stopped.
      const overview = await withManagement(ctx.log, ctx.signal, () => api.json<{ rabbitmq_version?: string }>('GET', '/api/overview', { signal: ctx.signal }));
      if (cfg.messages && !(await exists(nodeDir))) {
        throw new PreconditionError(`no data dir ${nodeDir}: check node_name and mnesia_base (RabbitMQ was not stopped)`);
      }
      ctx.meta.rabbitmq_version = overview.rabbitmq_version ?? '';
      ctx.meta.messages = String(cfg.messages);

      const res = await api.request('GET', '/api/definitions', { signal: ctx.signal });
      if (!String(res.headers['content-type']).startsWith('application/json')) {
        res.destroy();
        throw new UnavailableError(`GET /api/definitions on ${cfg.url} answered ${res.headers['content-type']}, not JSON`);
      }
      await ctx.addStream(DEFINITIONS, res);
      await ctx.addZip(CONFIG, cfg.config_paths);

      if (cfg.messages) {
        ctx.meta.node_name = cfg.node_name;
        await whileStopped(ctx, `copy ${nodeDir}`, async () => {
          await ctx.addZip(MESSAGES, dataPaths);
        });
      }
      return { status: 'ok' };
    },

    async restore(ctx) {
      const opt = ctx.options.messages;
      if (opt !== undefined && opt !== 'true' && opt !== 'false') throw new InputError(`option messages=${opt}: expected true or false`);
      const withMessages = opt === 'true' || (opt === undefined && cfg.messages && hasArtifact(ctx, MESSAGES));
      if (withMessages) {
        if (!hasArtifact(ctx, MESSAGES)) throw new PreconditionError(`backup ${ctx.backupId} has no messages for ${ctx.part.node}: it was taken without messages: true`);
        const from = ctx.part.meta.node_name ?? '';
        if (from !== cfg.node_name) {
          throw new PreconditionError(
            `the messages in backup ${ctx.backupId} come from node ${from || '(unknown)'}, but this node is ${cfg.node_name}; mnesia data is bound to its node name, so they are not restored here`,
          );
        }
      }
      // The data dir already holds the definitions as of its copy, which is newer than the export.
      const withDefinitions = hasArtifact(ctx, DEFINITIONS) && (ctx.options.definitions === 'true' || (!withMessages && ctx.options.definitions !== 'false'));

      if (hasArtifact(ctx, CONFIG)) await ctx.restoreFiles({ archive: artifactOf(ctx, CONFIG) });
      if (withMessages) await restoreDataDir(ctx);
      if (withDefinitions) await importDefinitions(ctx);
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
