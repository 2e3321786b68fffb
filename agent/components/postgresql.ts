import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGzip, gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { CommandError, IntegrityError, LsbackupError, NotFoundError, PreconditionError, UnavailableError } from '../../common/errors.js';
import { firstLines, redact, spawnChild } from '../../common/exec.js';
import { duBytes } from '../../common/fsutil.js';
import { humanBytes } from '../../common/units.js';
import type { BackupContext, Component, Health, RestoreContext } from './component.js';
import { forEachBounded } from '../../common/parallel.js';
import { detectPaths, filesArtifact, filesSchema, pathList, restoreFilesThenRun } from './files.js';

const absolute = z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path');

export const postgresqlSchema = z
  .object({
    /** A socket directory or a host name / address, as libpq's PGHOST takes it. */
    host: z.string().min(1).default('/var/run/postgresql'),
    port: z.number().int().min(1).max(65535).default(5432),
    /** Must be a superuser: pg_dumpall reads password hashes from pg_authid. */
    user: z.string().min(1).default('postgres'),
    /** The database to connect to for queries and globals (CREATE/DROP DATABASE run from template1). */
    database: z.string().min(1).default('postgres'),
    /** A file whose first line is the password; handed to the client programs as PGPASSWORD only. */
    password_file: absolute.optional(),
    /** Directory of psql, pg_dump, pg_dumpall and pg_restore; by default they are found on PATH. */
    bin_dir: absolute.optional(),
    /**
     * Databases restored at once, each by its own pg_restore session. A restore is mostly server
     * work on one core per session, so a cluster of several databases restores in about the time
     * of its largest one.
     */
    restore_parallel: z.number().int().min(1).max(16).default(2),
    config_paths: pathList.default(['/etc/postgresql/15/main', '/var/lib/postgresql/.pgpass']),
    ...filesSchema,
  })
  .strict();

export type PostgresqlConfig = z.output<typeof postgresqlSchema>;

export const globalsArtifact = 'globals.sql.gz';

/**
 * Artifact file name of a database's dump. Database names may hold anything but NUL ('/', quotes,
 * spaces, non-ASCII), so every byte outside a small safe set is percent-encoded; the encoding is
 * injective, so two databases never share a file.
 */
export function dumpArtifact(db: string): string {
  let enc = '';
  for (const byte of Buffer.from(db, 'utf8')) {
    const ch = String.fromCharCode(byte);
    enc += /[A-Za-z0-9_.-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `db-${enc}.dump`;
}

/**
 * A libpq connection string naming only the database: client programs treat a plain -d value that
 * contains '=' as a connection string, so even a database called "host=evil" must go in quoted.
 */
function conninfo(db: string): string {
  return `dbname='${db.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface ServerState {
  recovery: boolean;
  version: string;
  user: string;
}

const STDERR_KEEP = 64 * 1024;

/** What a restore checks and plans with, read in one query: each client launch costs ~30 ms. */
interface RestoreFacts extends ServerState {
  databases: string[];
  roles: string[];
  tablespaces: string[];
  /** Client sessions per database, other than ours. */
  sessions: Record<string, number> | null;
}

const RESTORE_FACTS = `SELECT json_build_object(
  'recovery', pg_is_in_recovery(), 'version', current_setting('server_version'), 'user', current_user,
  'databases', (SELECT json_agg(datname) FROM pg_database),
  'roles', (SELECT json_agg(rolname) FROM pg_roles),
  'tablespaces', (SELECT json_agg(spcname) FROM pg_tablespace),
  'sessions', (SELECT json_object_agg(datname, n) FROM (SELECT datname, count(*) AS n FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname IS NOT NULL GROUP BY datname) s))`;

/** How this component reaches the server: the client programs with the configured connection. */
class Client {
  /** The password, once read: blanked out of every error message. */
  private secrets: string[] = [];

  constructor(
    private readonly cfg: PostgresqlConfig,
    private readonly signal?: AbortSignal,
  ) {}

  get where(): string {
    return `${this.cfg.host}:${this.cfg.port} as '${this.cfg.user}'`;
  }

  bin(name: string): string {
    return this.cfg.bin_dir ? path.join(this.cfg.bin_dir, name) : name;
  }

  /** Read for every call, so a rotated password is picked up without restarting the agent. */
  private async password(): Promise<string | undefined> {
    const file = this.cfg.password_file;
    if (!file) return undefined;
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      throw new PreconditionError(`password_file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const pw = text.split(/\r?\n/)[0] ?? '';
    if (pw === '') throw new PreconditionError(`password_file ${file}: its first line is empty`);
    return pw;
  }

  private async env(): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PGHOST: this.cfg.host,
      PGPORT: String(this.cfg.port),
      PGUSER: this.cfg.user,
      PGCONNECT_TIMEOUT: '10',
      PGAPPNAME: 'lsbackup',
    };
    delete env.PGDATABASE;
    const pw = await this.password();
    if (pw !== undefined) {
      env.PGPASSWORD = pw;
      this.secrets = [pw];
    }
    return env;
  }

  /**
   * Starts a client program. `exit` settles once it has exited and its output is drained; with
   * `stdout: 'stream'` the caller consumes stdout and it is not collected.
   */
  async launch(cmd: string[], opts: { stdout?: 'collect' | 'stream'; input?: string } = {}): Promise<{ child: ChildProcess; exit: Promise<Exit> }> {
    const child = spawnChild(cmd, { env: await this.env(), stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] }, this.signal);
    let stdout = '';
    let stderr = '';
    if (opts.stdout !== 'stream') child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < STDERR_KEEP) stderr += d;
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
    const exit = new Promise<Exit>((resolve, reject) => {
      child.on('error', (err) => {
        // A program that never started has no output; end the stream so no reader waits for it.
        child.stdout?.destroy();
        reject(new CommandError(`${cmd[0]}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (install the PostgreSQL client or set bin_dir)' : err.message}`));
      });
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    return { child, exit };
  }

  /** The error for a client program that did not exit 0, with its first stderr lines and no secrets. */
  failure(what: string, e: Exit): LsbackupError {
    if (this.signal?.aborted) return new LsbackupError(`${what}: cancelled`);
    const detail = firstLines(e.stderr || e.stdout);
    const why = e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
    // psql exits 2 when it cannot connect: that is the server or the credentials, not the SQL.
    if (e.code === 2 && /connection to server|could not connect/.test(e.stderr)) {
      return new UnavailableError(redact(`cannot connect to PostgreSQL at ${this.where}: ${detail}`, this.secrets));
    }
    return new CommandError(redact(`${what} failed (${why}): ${detail}`, this.secrets));
  }

  async psql(db: string, args: string[], what: string, input?: string): Promise<string> {
    const cmd = [this.bin('psql'), '-X', '-w', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo(db), ...args];
    const { exit } = await this.launch(cmd, { input });
    const e = await exit;
    if (e.code !== 0) throw this.failure(what, e);
    return e.stdout;
  }

  /** Runs one query whose single value is JSON (names may hold any character, so no text parsing). */
  async json<T>(sql: string, db = this.cfg.database): Promise<T> {
    const out = await this.psql(db, ['-c', sql], 'psql');
    return JSON.parse(out.trim() || 'null') as T;
  }

  state(): Promise<ServerState> {
    return this.json<ServerState>(
      "SELECT json_build_object('recovery', pg_is_in_recovery(), 'version', current_setting('server_version'), 'user', current_user)",
    );
  }

  /** Databases pg_dump can and should dump: templates and databases closed to connections are not data. */
  databases(): Promise<string[]> {
    return this.json<string[]>("SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database WHERE NOT datistemplate AND datallowconn");
  }
}

/**
 * Streams a client program's stdout into an artifact. The artifact only counts when the program
 * exits 0: a dump whose stream simply ended because pg_dump died would otherwise look complete.
 */
async function dumpInto(ctx: BackupContext, pg: Client, fileName: string, what: string, cmd: string[], gzip: boolean): Promise<void> {
  const { child, exit } = await pg.launch(cmd, { stdout: 'stream' });
  const settled = exit.then(
    (e) => e,
    (err: Error) => err,
  );
  let source: Readable = child.stdout!;
  if (gzip) {
    const gz = createGzip({ level: ctx.compressionLevel });
    source = child.stdout!.on('error', (err) => gz.destroy(err)).pipe(gz);
  }
  let streamError: unknown;
  let killed = false;
  try {
    await ctx.addStream(fileName, source);
  } catch (err) {
    streamError = err;
    // The write side failed (disk full, cancel): the program must not keep running for nobody.
    killed = child.kill('SIGTERM');
  }
  const e = await settled;
  if (e instanceof Error) throw e;
  if (ctx.signal.aborted) throw new LsbackupError(`${what}: cancelled`);
  if (e.code !== 0 && !(killed && e.signal)) throw pg.failure(what, e);
  if (streamError) throw streamError;
}

interface GlobalsPlan {
  sql: string;
  /** Roles the script creates. */
  created: string[];
  /** Roles that exist already: their CREATE is left out and the ALTER ROLE that follows updates them. */
  updated: string[];
  /** Tablespaces that exist already and are left as they are. */
  keptTablespaces: string[];
}

/**
 * Splits SQL into top-level statements, honouring quoted literals, quoted identifiers and comments,
 * so that a role name or comment containing ';' or a newline cannot shift what is filtered.
 */
function splitStatements(sql: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const close = sql.indexOf(c, i + 1);
      i = close < 0 ? sql.length : close + 1; // a doubled quote is just two adjacent quoted runs
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === ';') {
      out.push({ start, end: i + 1 });
      start = i + 1;
      i++;
    } else i++;
  }
  if (sql.slice(start).trim()) out.push({ start, end: sql.length });
  return out;
}

const IDENT = String.raw`([a-z_][a-z0-9_$]*|"(?:[^"]|"")+")`;
const unquote = (id: string) => (id.startsWith('"') ? id.slice(1, -1).replace(/""/g, '"') : id);
const stripComments = (stmt: string) => stmt.replace(/^(\s*--[^\n]*\n)*\s*/, '');

/**
 * What restoring `pg_dumpall --globals-only` output into a live cluster means here: roles and
 * tablespaces that are missing are created; roles that exist are brought back to their backed-up
 * attributes, passwords, settings and memberships (pg_dumpall follows every CREATE ROLE with an
 * ALTER ROLE that sets everything, so only the CREATE, which would fail, is left out); existing
 * tablespaces are kept as they are. Roles that exist now but not in the backup are left alone,
 * never dropped. Every remaining statement must succeed (ON_ERROR_STOP), so anything unexpected
 * fails loudly. The role the agent connects as keeps its current password: restoring an older one
 * would lock the restore out of the databases it still has to load.
 */
export function planGlobals(sql: string, roles: Set<string>, tablespaces: Set<string>, self: string): GlobalsPlan {
  const createRole = new RegExp(`^CREATE ROLE ${IDENT};$`);
  const createTablespace = new RegExp(`^CREATE TABLESPACE ${IDENT} `);
  const alterRole = new RegExp(`^ALTER ROLE ${IDENT} WITH `);
  const plan: GlobalsPlan = { sql: '', created: [], updated: [], keptTablespaces: [] };
  let last = 0;
  for (const { start, end } of splitStatements(sql)) {
    const raw = sql.slice(start, end);
    const stmt = stripComments(raw);
    let replacement: string | undefined;
    let m: RegExpExecArray | null;
    if ((m = createRole.exec(stmt))) {
      const name = unquote(m[1]!);
      if (roles.has(name)) {
        plan.updated.push(name);
        replacement = '';
      } else plan.created.push(name);
    } else if ((m = createTablespace.exec(stmt))) {
      const name = unquote(m[1]!);
      if (tablespaces.has(name)) {
        plan.keptTablespaces.push(name);
        replacement = '';
      }
    } else if ((m = alterRole.exec(stmt)) && unquote(m[1]!) === self) {
      replacement = stmt.replace(/ PASSWORD '(?:[^']|'')*'/, '');
    }
    if (replacement !== undefined) {
      plan.sql += sql.slice(last, start) + (replacement ? `\n${replacement}` : '');
      last = end;
    }
  }
  plan.sql += sql.slice(last);
  return plan;
}

function databasesOf(ctx: RestoreContext): string[] {
  const raw = ctx.part.meta.databases;
  let dbs: unknown;
  try {
    dbs = JSON.parse(raw ?? '');
  } catch {
    dbs = undefined;
  }
  if (!Array.isArray(dbs) || !dbs.every((d) => typeof d === 'string')) {
    throw new IntegrityError(`backup ${ctx.backupId}: the postgresql part of node ${ctx.part.node} has no database list in its meta`);
  }
  for (const db of dbs) {
    const a = `${ctx.part.node}/${ctx.part.component}/${dumpArtifact(db)}`;
    if (!ctx.part.artifacts.some((x) => x.path === a)) throw new IntegrityError(`backup ${ctx.backupId}: database '${db}' is listed but ${a} is not an artifact of the part`);
  }
  return dbs as string[];
}

/**
 * PostgreSQL on the primary: roles and tablespaces (pg_dumpall --globals-only), one custom-format
 * dump per database, and the configuration files. A standby is skipped, not failed: the primary's
 * backup covers it.
 */
export function postgresql(cfg: PostgresqlConfig): Component {
  const paths = cfg.config_paths;

  async function backup(ctx: BackupContext) {
    const pg = new Client(cfg, ctx.signal);
    const state = await pg.state();
    if (state.recovery) return { status: 'skipped' as const, reason: `standby (in recovery) at ${cfg.host}:${cfg.port}; the primary is backed up instead` };
    const dbs = await pg.databases();
    ctx.meta.server_version = state.version;
    ctx.meta.databases = JSON.stringify(dbs);

    ctx.progress(0, 'dumping roles and tablespaces');
    await dumpInto(ctx, pg, globalsArtifact, 'pg_dumpall --globals-only', [pg.bin('pg_dumpall'), '-w', '--globals-only', '-l', conninfo(cfg.database)], true);
    for (const db of dbs) {
      ctx.progress(0, `dumping database '${db}'`);
      // -Fc output is compressed by pg_dump itself; it is stored as it comes.
      const cmd = [pg.bin('pg_dump'), '-w', '-Fc', `--compress=${ctx.compressionLevel}`, '-d', conninfo(db)];
      await dumpInto(ctx, pg, dumpArtifact(db), `pg_dump of database '${db}'`, cmd, false);
    }
    await ctx.addZip(filesArtifact, paths);
    return { status: 'ok' as const };
  }

  async function restoreGlobals(ctx: RestoreContext, pg: Client, facts: RestoreFacts): Promise<void> {
    const sql = gunzipSync(await fsp.readFile(ctx.artifactFile(globalsArtifact))).toString('utf8');
    const plan = planGlobals(sql, new Set(facts.roles), new Set(facts.tablespaces), facts.user);
    const roles = (names: string[]) => names.map((r) => `'${r}'`).join(', ');
    const summary = (dry: boolean) =>
      [
        plan.created.length ? `${dry ? 'create' : 'created'} role(s) ${roles(plan.created)}` : `no role to create`,
        `${dry ? 'update' : 'updated'} ${plan.updated.length} existing role(s)`,
        plan.keptTablespaces.length ? `kept existing tablespace(s) ${plan.keptTablespaces.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('; ');
    if (ctx.dryRun) {
      ctx.progress(0, `would restore globals: ${summary(true)}`);
      return;
    }
    // CREATE TABLESPACE cannot run in a transaction; everything else is applied all or nothing.
    const atomic = !/^CREATE TABLESPACE /m.test(plan.sql);
    // Terse errors: the default verbosity quotes the failing line, which may hold a password hash.
    await pg.psql(cfg.database, ['-v', 'VERBOSITY=terse', ...(atomic ? ['--single-transaction'] : []), '-f', '-'], `restoring ${globalsArtifact}`, plan.sql);
    ctx.progress(0, `restored globals: ${summary(false)}`);
  }

  async function restoreDatabase(ctx: RestoreContext, pg: Client, db: string, exists: boolean): Promise<void> {
    const file = ctx.artifactFile(dumpArtifact(db));
    const size = (await fsp.stat(file)).size;
    const verb = exists ? 'drop and recreate' : 'create';
    if (ctx.dryRun) {
      ctx.progress(0, `would ${verb} database '${db}' from ${dumpArtifact(db)} (${humanBytes(size)})`);
      return;
    }
    // --create issues DROP/CREATE DATABASE from another database, and the maintenance database may
    // be dropped and recreated by a restore running beside this one. template1 is neither: pg_dump's
    // CREATE DATABASE copies template0, so sessions on template1 block nothing of ours.
    const via = 'template1';
    // --create recreates the database with its owner, encoding, settings and grants; --exit-on-error
    // turns the first failing statement into a failed restore instead of a warning count.
    const cmd = [pg.bin('pg_restore'), '-w', '--clean', '--if-exists', '--create', '--exit-on-error', '-d', conninfo(via), file];
    const { exit } = await pg.launch(cmd);
    const e = await exit;
    if (e.code !== 0) throw pg.failure(`pg_restore of database '${db}'`, e);
    ctx.progress(size, `${exists ? 'recreated' : 'created'} database '${db}'`);
  }

  /** DROP DATABASE fails on a database in use; say so before anything has been changed. */
  function checkUnused(facts: RestoreFacts, dbs: string[]): void {
    const busy = facts.sessions;
    const inUse = dbs.filter((d) => busy?.[d]);
    if (inUse.length > 0) {
      throw new PreconditionError(
        `database(s) in use: ${inUse.map((d) => `'${d}' (${busy![d]} session(s))`).join(', ')}; stop their clients and retry; nothing was changed`,
      );
    }
  }

  async function restore(ctx: RestoreContext): Promise<void> {
    const dbs = databasesOf(ctx);
    const only = ctx.options.database;
    if (only !== undefined && !dbs.includes(only)) {
      throw new NotFoundError(`backup ${ctx.backupId} has no database '${only}' on node ${ctx.part.node} (it has: ${dbs.join(', ') || 'none'})`);
    }
    const targets = only !== undefined ? [only] : dbs;
    const pg = new Client(cfg, ctx.signal);
    const facts = await pg.json<RestoreFacts>(RESTORE_FACTS);
    if (facts.recovery) throw new PreconditionError(`the server at ${cfg.host}:${cfg.port} is a standby (in recovery); restore onto the primary`);
    const existing = new Set(facts.databases);
    checkUnused(facts, targets.filter((d) => existing.has(d)));

    // A single database is restored alone: replaying all roles (and their passwords) or the
    // configuration is not what someone asking for one database expects.
    if (only === undefined) await restoreGlobals(ctx, pg, facts);
    await forEachBounded(targets, cfg.restore_parallel, (db) => restoreDatabase(ctx, pg, db, existing.has(db)));
    if (only === undefined) await restoreFilesThenRun(ctx, { afterRestore: cfg.after_restore_command });
  }

  return {
    name: 'postgresql',
    restorePaths: paths,
    detect: () => detectPaths('PostgreSQL', paths),
    async estimateBytes() {
      const pg = new Client(cfg);
      const data = await pg.json<number>(
        'SELECT coalesce(sum(pg_database_size(datname)), 0)::bigint FROM pg_database WHERE NOT datistemplate AND datallowconn',
      );
      return Number(data) + (await duBytes(paths));
    },
    async health(): Promise<Health> {
      try {
        const s = await new Client(cfg).state();
        return { status: 'ok', detail: `PostgreSQL ${s.version} at ${cfg.host}:${cfg.port} accepts connections (${s.recovery ? 'standby' : 'primary'})` };
      } catch (err) {
        if (err instanceof PreconditionError) return { status: 'unknown', detail: err.message };
        return { status: 'down', detail: (err as Error).message };
      }
    },
    backup,
    restore,
  };
}
