import type { ChildProcess } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { absolutePath } from '../../common/config.js';
import { CommandError, IntegrityError, LsbackupError, NotFoundError, PreconditionError, UnavailableError } from '../../common/errors.js';
import { collectText } from '../../common/collect.js';
import { firstLines, redact, spawnChild } from '../../common/exec.js';
import { duBytes, exists } from '../../common/fsutil.js';
import { humanBytes } from '../../common/units.js';
import type { BackupContext, Component, Detection, Health, RestoreContext } from './component.js';
import { forEachBounded } from '../../common/parallel.js';
import { readSecretFile } from '../secrets.js';
import { filesArtifact, filesSchema, pathList, restoreFilesThenRun } from './files.js';


/** LambdaStack's roles/postgresql/defaults/main.yml, Debian: config_dir /etc/postgresql/<v>/main, bin_dir /usr/lib/postgresql/<v>/bin. */
const DEBIAN_CONFIG_ROOT = '/etc/postgresql';
const DEBIAN_LIB_ROOT = '/usr/lib/postgresql';
/** pg.base_dir (the postgres user's home) + .pgpass, written by the repmgr extension. */
const DEFAULT_PGPASS = '/var/lib/postgresql/.pgpass';
/** The names LambdaStack's configuration/postgresql defaults give repmgr's users and database. */
const REPMGR_DEFAULTS = { privileged_user: 'ls_repmgr_admin', replication_user: 'ls_repmgr', repmgr_database: 'ls_repmgr' };

/** Where the node's own files are looked up; tests point these at fixture trees. */
export interface HostPaths {
  libRoot: string;
  passwd: string;
  /** The .pgpass backed up when present and pgpass_file is not set. */
  pgpass: string;
}
const HOST: HostPaths = { libRoot: DEBIAN_LIB_ROOT, passwd: '/etc/passwd', pgpass: DEFAULT_PGPASS };

/** One cluster of Debian's layout: <root>/<version>/main holding postgresql.conf. */
export interface ClusterLayout {
  version: string;
  configDir: string;
  /** postgresql.conf's data_directory, when it names one. */
  dataDir?: string;
  /** postgresql.conf's port; 5432 (the server's default) when it sets none, as LambdaStack's template does. */
  port: number;
  /** <libRoot>/<version>/bin when it holds psql: the client programs of the server's own version. */
  binDir?: string;
}

/** The value of a postgresql.conf setting (the last one wins, as in the server); quotes and comments stripped. */
function confSetting(text: string, name: string): string | undefined {
  let value: string | undefined;
  // `name = value` or `name value`; the name must end where the separator starts (port, not portal).
  const re = new RegExp(String.raw`^\s*${name}(?:\s*=\s*|\s+)('(?:[^']|'')*'|[^\s#]+)`, 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const v = m[1]!;
    value = v.startsWith("'") ? v.slice(1, -1).replace(/''/g, "'") : v;
  }
  return value;
}

export async function readLayout(configDir: string, version: string, libRoot = DEBIAN_LIB_ROOT): Promise<ClusterLayout> {
  const text = await fsp.readFile(path.join(configDir, 'postgresql.conf'), 'utf8').catch(() => '');
  const port = Number(confSetting(text, 'port') ?? 5432);
  const binDir = path.join(libRoot, version, 'bin');
  return {
    version,
    configDir,
    dataDir: confSetting(text, 'data_directory'),
    port: Number.isInteger(port) ? port : 5432,
    binDir: version && (await exists(path.join(binDir, 'psql'))) ? binDir : undefined,
  };
}

/** Every <root>/<version>/main with a postgresql.conf, oldest version first. */
export async function findClusters(root: string, libRoot = DEBIAN_LIB_ROOT): Promise<ClusterLayout[]> {
  const versions = await fsp.readdir(root).catch(() => [] as string[]);
  const found: ClusterLayout[] = [];
  for (const v of versions.sort((a, b) => Number(a) - Number(b) || a.localeCompare(b))) {
    const dir = path.join(root, v, 'main');
    if (await exists(path.join(dir, 'postgresql.conf'))) found.push(await readLayout(dir, v, libRoot));
  }
  return found;
}

/**
 * The cluster this component serves: config_dir when set, else the one cluster under config_root,
 * or of several the one on the configured port. Anything else is an error naming what was found
 * and the setting that decides.
 */
export async function pickCluster(cfg: Pick<PostgresqlConfig, 'config_root' | 'config_dir' | 'port'>, libRoot = DEBIAN_LIB_ROOT): Promise<ClusterLayout> {
  if (cfg.config_dir !== undefined) {
    if (!(await exists(cfg.config_dir))) throw new PreconditionError(`config_dir ${cfg.config_dir} does not exist`);
    return readLayout(cfg.config_dir, path.basename(path.dirname(cfg.config_dir)), libRoot);
  }
  const all = await findClusters(cfg.config_root, libRoot);
  if (all.length === 0) throw new NotFoundError(`no PostgreSQL cluster under ${cfg.config_root} (looked for ${cfg.config_root}/*/main/postgresql.conf); set config_dir`);
  if (all.length === 1) return all[0]!;
  const onPort = all.filter((c) => c.port === cfg.port);
  if (onPort.length === 1) return onPort[0]!;
  const listed = all.map((c) => `${c.configDir} (port ${c.port})`).join(', ');
  throw new PreconditionError(`${all.length} PostgreSQL clusters under ${cfg.config_root}: ${listed}; ${onPort.length ? 'more than one' : 'none'} on port ${cfg.port}: set config_dir (and port) in agent.yaml`);
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** An OS user from the passwd file: the agent needs uid, gid and home to run a program as them. */
export async function lookupOsUser(name: string, passwd = HOST.passwd): Promise<OsUser | undefined> {
  const text = await fsp.readFile(passwd, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 7 && f[0] === name) return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
  }
  return undefined;
}

/**
 * Whom the client programs run as. Peer authentication (LambdaStack's `local all all peer`) lets
 * only the OS user of the same name in, and root is not postgres: run as root they would fail
 * with `Peer authentication failed for user "postgres"`. Undefined: as the agent itself.
 */
export async function clientOsUser(cfg: Pick<PostgresqlConfig, 'os_user' | 'host' | 'user'>, passwd = HOST.passwd): Promise<OsUser | undefined> {
  const self = process.getuid?.();
  if (cfg.os_user !== undefined) {
    const u = await lookupOsUser(cfg.os_user, passwd);
    if (!u) throw new PreconditionError(`os_user '${cfg.os_user}' is not a user of this node (${passwd})`);
    if (u.uid === self) return undefined;
    if (self !== 0) throw new PreconditionError(`os_user '${cfg.os_user}': the agent runs as uid ${self}, and only root can run programs as another user`);
    return u;
  }
  if (self !== 0 || !cfg.host.startsWith('/')) return undefined;
  return lookupOsUser(cfg.user, passwd);
}

/** How the component authenticates, in words for `lsbackup agents` and errors. */
function authDetail(cfg: PostgresqlConfig, osUser: OsUser | undefined): string {
  if (osUser) return `${cfg.password_file ? 'password or ' : ''}peer auth as OS user ${osUser.name} on ${cfg.host} port ${cfg.port}`;
  return `${cfg.password_file ? 'password' : 'no password'} for '${cfg.user}' at ${cfg.host}:${cfg.port}`;
}

interface BackupPath {
  path: string;
  /** The setting that names it: then it is required, and missing it fails the backup. Optional paths (.pgpass) have none. */
  requiredBy?: string;
}

/** What the backup copies besides the dumps. */
async function configPathsOf(cfg: PostgresqlConfig, host: HostPaths): Promise<{ layout?: ClusterLayout; paths: BackupPath[] }> {
  if (cfg.config_paths !== undefined) {
    return { paths: cfg.config_paths.map((p) => ({ path: p, requiredBy: 'config_paths' })), layout: await pickCluster(cfg, host.libRoot).catch(() => undefined) };
  }
  const layout = await pickCluster(cfg, host.libRoot);
  const pgpass = { path: cfg.pgpass_file ?? host.pgpass, requiredBy: cfg.pgpass_file !== undefined ? 'pgpass_file' : undefined };
  return { layout, paths: [{ path: layout.configDir, requiredBy: cfg.config_dir !== undefined ? 'config_dir' : `the cluster found under ${cfg.config_root}` }, pgpass] };
}

/** Fails on the first required path that is missing; returns the paths to zip (optional ones only when present). */
async function presentPaths(paths: BackupPath[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const there = await fsp.lstat(p.path).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw new PreconditionError(`config path ${p.path}: ${err.code ?? err.message}`);
      },
    );
    if (there) out.push(p.path);
    else if (p.requiredBy) throw new PreconditionError(`config path ${p.path} (${p.requiredBy}) does not exist; nothing was backed up`);
  }
  return out;
}

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
    password_file: absolutePath.optional(),
    /**
     * The OS user the client programs run as. By default, when the agent runs as root and `host` is
     * a socket directory, they run as the OS user named like `user` (LambdaStack's pg_hba.conf has
     * `local all all peer` and no password for postgres); otherwise as the agent itself.
     */
    os_user: z.string().min(1).optional(),
    /** Directory of psql, pg_dump, pg_dumpall and pg_restore; by default /usr/lib/postgresql/<version>/bin of the detected cluster, else PATH. */
    bin_dir: absolutePath.optional(),
    /**
     * Databases restored at once, each by its own pg_restore session. A restore is mostly server
     * work on one core per session, so a cluster of several databases restores in about the time
     * of its largest one.
     */
    restore_parallel: z.number().int().min(1).max(16).default(2),
    /** Where Debian's layout keeps one directory per cluster, <version>/main; the one cluster (or the one on `port`) is used. */
    config_root: absolutePath.default(DEBIAN_CONFIG_ROOT),
    /** The cluster's configuration directory, when detection under config_root is not wanted; must exist. */
    config_dir: absolutePath.optional(),
    /** The postgres user's .pgpass (repmgr's passwords); default LambdaStack's /var/lib/postgresql/.pgpass, backed up when present. Set here, it must exist. */
    pgpass_file: absolutePath.optional(),
    /** Exactly the files and directories to back up instead of the detected ones; every one must exist. */
    config_paths: pathList.optional(),
    /**
     * Where a replicated cluster is dumped: on the primary (the default), or on a standby to keep
     * the dump's load off the primary. The other node's part is skipped with the reason.
     */
    backup_from: z.enum(['primary', 'standby']).default('primary'),
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

/** A standby streaming from this server, as pg_stat_replication shows it (repmgr names it by node_name). */
interface Standby {
  name: string;
  address: string | null;
}

interface ServerState {
  recovery: boolean;
  version: string;
  user: string;
  /** Standbys streaming from this server now. */
  standbys: Standby[] | null;
  /** On a standby: the server it streams from (host:port). */
  upstream: string | null;
}

const STATE_FIELDS = `'recovery', pg_is_in_recovery(), 'version', current_setting('server_version'), 'user', current_user,
  'standbys', (SELECT json_agg(json_build_object('name', application_name, 'address', client_addr::text) ORDER BY application_name) FROM pg_stat_replication),
  'upstream', (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming' LIMIT 1)`;

const STATE = `SELECT json_build_object(${STATE_FIELDS})`;

const STDERR_KEEP = 64 * 1024;

/** What a restore checks and plans with, read in one query: each client launch costs ~30 ms. */
interface RestoreFacts extends ServerState {
  databases: string[];
  roles: string[];
  tablespaces: string[];
  /** Client sessions per database, other than ours. */
  sessions: Record<string, number> | null;
  /** Where the running server keeps its data: a restored postgresql.conf must name the same. */
  data_directory: string;
}

const RESTORE_FACTS = `SELECT json_build_object(${STATE_FIELDS},
  'data_directory', current_setting('data_directory'),
  'databases', (SELECT json_agg(datname) FROM pg_database),
  'roles', (SELECT json_agg(rolname) FROM pg_roles),
  'tablespaces', (SELECT json_agg(spcname) FROM pg_tablespace),
  'sessions', (SELECT json_object_agg(datname, n) FROM (SELECT datname, count(*) AS n FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname IS NOT NULL GROUP BY datname) s))`;

/** What the node decides about reaching the server: whom to run the client programs as, and which ones. */
interface Connection {
  osUser?: OsUser;
  binDir?: string;
}

/** How this component reaches the server: the client programs with the configured connection. */
class Client {
  /** The password, once read: blanked out of every error message. */
  private secrets: string[] = [];

  constructor(
    private readonly cfg: PostgresqlConfig,
    private readonly signal: AbortSignal | undefined,
    private readonly conn: Connection,
  ) {}

  get where(): string {
    return `${this.cfg.host}:${this.cfg.port} as '${this.cfg.user}'${this.conn.osUser ? ` (OS user ${this.conn.osUser.name}, peer)` : ''}`;
  }

  bin(name: string): string {
    const dir = this.cfg.bin_dir ?? this.conn.binDir;
    return dir ? path.join(dir, name) : name;
  }

  /** Read for every call, so a rotated password is picked up without restarting the agent. */
  private async password(): Promise<string | undefined> {
    const file = this.cfg.password_file;
    if (!file) return undefined;
    return readSecretFile(file, 'password_file');
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
    const u = this.conn.osUser;
    if (u) Object.assign(env, { HOME: u.home, USER: u.name, LOGNAME: u.name });
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
  async launch(cmd: string[], opts: { stdout?: 'collect' | 'stream'; input?: string | Readable } = {}): Promise<{ child: ChildProcess; exit: Promise<Exit> }> {
    const u = this.conn.osUser;
    // As another OS user the programs get its ids and home: the agent's cwd (/root) may be closed to it.
    const as = u ? { uid: u.uid, gid: u.gid, cwd: (await exists(u.home)) ? u.home : '/' } : {};
    const child = spawnChild(cmd, { env: await this.env(), stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...as }, this.signal);
    const stdout = opts.stdout !== 'stream' ? collectText(child.stdout!) : () => '';
    const stderr = collectText(child.stderr!, STDERR_KEEP);
    // A program that exits early closes its stdin; its exit status is the answer, not the EPIPE.
    let inputError: Error | undefined;
    if (typeof opts.input === 'string') {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    } else if (opts.input) {
      child.stdin!.on('error', () => undefined);
      const source = opts.input;
      pipeline(source, child.stdin!).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
        inputError = err;
        child.kill('SIGTERM');
      });
    }
    const exit = new Promise<Exit>((resolve, reject) => {
      child.on('error', (err) => {
        // A program that never started has no output; end the stream so no reader waits for it.
        child.stdout?.destroy();
        reject(new CommandError(`${cmd[0]}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (install the PostgreSQL client or set bin_dir)' : err.message}`));
      });
      child.on('close', (code, signal) => {
        if (inputError) reject(new CommandError(`${cmd[0]}: reading its input failed: ${inputError.message}`));
        else resolve({ code, signal, stdout: stdout(), stderr: stderr() });
      });
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
    return this.json<ServerState>(STATE);
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
    if (!ctx.streamArtifact(dumpArtifact(db))) throw new IntegrityError(`backup ${ctx.backupId}: database '${db}' is listed but ${a} is not an artifact of the part`);
  }
  return dbs as string[];
}

/** The standbys a backup recorded in its meta. */
function standbysOf(raw: string | undefined): Standby[] {
  try {
    const v: unknown = JSON.parse(raw ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is Standby => typeof x?.name === 'string') : [];
  } catch {
    return [];
  }
}

const standbyNames = (list: Standby[]) => list.map((s) => (s.address ? `${s.name} (${s.address})` : s.name)).join(', ');

/**
 * What the backup records for a restore of a replicated cluster: the build directory's facts
 * (`replication`, `primary`, `privileged_user`, `replication_user`, `repmgr_database`), with what
 * the server shows where they are missing. Names only, never passwords.
 */
function recordReplication(ctx: BackupContext, state: ServerState): void {
  const f = ctx.facts;
  const standbys = state.standbys ?? [];
  ctx.meta.replication = f.replication === 'true' || standbys.length > 0 || state.recovery ? 'true' : f.replication === 'false' ? 'false' : 'unknown';
  ctx.meta.backed_up_from = state.recovery ? 'standby' : 'primary';
  if (ctx.meta.replication === 'false') return;
  // On a standby, the primary is what it streams from; on the primary, this node (the inventory's host name).
  const primary = f.primary ?? (state.recovery ? state.upstream?.replace(/:\d+$/, '') : ctx.node);
  if (primary) ctx.meta.primary = primary;
  if (!state.recovery) ctx.meta.standbys = JSON.stringify(standbys);
  for (const k of ['privileged_user', 'replication_user', 'repmgr_database'] as const) ctx.meta[k] = f[k] ?? REPMGR_DEFAULTS[k];
}

/**
 * PostgreSQL on the primary: roles and tablespaces (pg_dumpall --globals-only), one custom-format
 * dump per database, and the configuration files. A standby is skipped, not failed: the primary's
 * backup covers it (or the other way round with backup_from: standby).
 *
 * On a LambdaStack node nothing needs setting: the cluster is found under /etc/postgresql, its
 * client programs are /usr/lib/postgresql/<version>/bin, and they run as the OS user postgres
 * over the socket in /var/run/postgresql (peer auth, no password).
 */
export function postgresql(cfg: PostgresqlConfig, host: HostPaths = HOST): Component {
  const restorePaths = cfg.config_paths ?? [cfg.config_dir ?? cfg.config_root, cfg.pgpass_file ?? host.pgpass];

  /** Decided on the node each time it is used: a package upgrade may move the cluster. */
  async function connect(signal?: AbortSignal, layout?: ClusterLayout): Promise<Client> {
    const binDir = cfg.bin_dir ?? (layout ?? (await pickCluster(cfg, host.libRoot).catch(() => undefined)))?.binDir;
    return new Client(cfg, signal, { osUser: await clientOsUser(cfg, host.passwd), binDir });
  }

  async function detect(): Promise<Detection> {
    const osUser = await clientOsUser(cfg, host.passwd).catch(() => undefined);
    const auth = authDetail(cfg, osUser);
    if (cfg.config_paths !== undefined) {
      const found: string[] = [];
      for (const p of cfg.config_paths) if (await exists(p)) found.push(p);
      if (found.length === 0) return { present: false, detail: `no PostgreSQL here (looked for ${cfg.config_paths.join(', ')})` };
      return { present: true, detail: `PostgreSQL: ${found.join(', ')}; ${auth}` };
    }
    let layout: ClusterLayout;
    try {
      layout = await pickCluster(cfg, host.libRoot);
    } catch (err) {
      // Several clusters and none chosen: PostgreSQL is here, and its backup must say what to set.
      if (err instanceof NotFoundError) return { present: false, detail: `no PostgreSQL here: ${err.message}` };
      return { present: true, detail: (err as Error).message };
    }
    const data = layout.dataDir ? `, data ${layout.dataDir}` : '';
    return { present: true, detail: `PostgreSQL ${layout.version} at ${layout.configDir}${data}; ${auth}` };
  }

  async function backup(ctx: BackupContext) {
    const { layout, paths } = await configPathsOf(cfg, host);
    // Before any dump: a required config path that is missing fails the part (writeZip would skip it).
    const zipped = await presentPaths(paths);
    const pg = await connect(ctx.signal, layout);
    const state = await pg.state();
    const standbys = state.standbys ?? [];
    if (state.recovery && cfg.backup_from === 'primary') {
      const from = state.upstream ? `, streaming from ${state.upstream}` : '';
      return { status: 'skipped' as const, reason: `standby (in recovery) at ${cfg.host}:${cfg.port}${from}; the primary is backed up instead (backup_from: standby backs up here)` };
    }
    if (!state.recovery && cfg.backup_from === 'standby' && standbys.length > 0) {
      return { status: 'skipped' as const, reason: `primary with standby(s) ${standbyNames(standbys)} and backup_from: standby; a standby is backed up instead` };
    }
    const dbs = await pg.databases();
    ctx.meta.server_version = state.version;
    ctx.meta.databases = JSON.stringify(dbs);
    if (layout) {
      ctx.meta.config_dir = layout.configDir;
      if (layout.dataDir) ctx.meta.data_dir = layout.dataDir;
    }
    recordReplication(ctx, state);

    ctx.progress(0, 'dumping roles and tablespaces');
    await dumpInto(ctx, pg, globalsArtifact, 'pg_dumpall --globals-only', [pg.bin('pg_dumpall'), '-w', '--globals-only', '-l', conninfo(cfg.database)], true);
    for (const db of dbs) {
      ctx.progress(0, `dumping database '${db}'`);
      // -Fc output is compressed by pg_dump itself; it is stored as it comes.
      const cmd = [pg.bin('pg_dump'), '-w', '-Fc', `--compress=${ctx.compressionLevel}`, '-d', conninfo(db)];
      await dumpInto(ctx, pg, dumpArtifact(db), `pg_dump of database '${db}'`, cmd, false);
    }
    await ctx.addTree(filesArtifact, zipped);
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
    // The dump goes in on stdin: artifacts are root's, 0600, and pg_restore may run as postgres.
    const cmd = [pg.bin('pg_restore'), '-w', '--clean', '--if-exists', '--create', '--exit-on-error', '-d', conninfo(via)];
    const { exit } = await pg.launch(cmd, { input: createReadStream(file, { highWaterMark: 1 << 20 }) });
    const e = await exit;
    if (e.code !== 0) throw pg.failure(`pg_restore of database '${db}'`, e);
    ctx.progress(size, `${exists ? 'recreated' : 'created'} database '${db}'`);
  }

  /** DROP DATABASE fails on a database in use; say so before anything has been changed. */
  function checkUnused(ctx: RestoreContext, facts: RestoreFacts, dbs: string[]): void {
    const busy = facts.sessions;
    const inUse = dbs.filter((d) => busy?.[d]);
    if (inUse.length > 0) {
      // repmgrd keeps a session on repmgr's database on every node of a replicated cluster.
      const repmgrDb = ctx.part.meta.repmgr_database ?? REPMGR_DEFAULTS.repmgr_database;
      const repmgrd = inUse.includes(repmgrDb) ? `; repmgrd holds '${repmgrDb}': run systemctl stop repmgrd on every PostgreSQL node first` : '';
      throw new PreconditionError(
        `database(s) in use: ${inUse.map((d) => `'${d}' (${busy![d]} session(s))`).join(', ')}; stop their clients and retry${repmgrd}; nothing was changed`,
      );
    }
  }

  /**
   * After a whole-cluster restore of a replicated primary: standbys that stream from it received
   * the restore through WAL; the others must be cloned again, and repmgr's records re-registered,
   * as LambdaStack's recovery role (roles/recovery/tasks/postgresql.yml) does. Says exactly what to run.
   */
  function reportReplication(ctx: RestoreContext, facts: RestoreFacts): void {
    const m = ctx.part.meta;
    const now = facts.standbys ?? [];
    const before = standbysOf(m.standbys);
    if (m.replication !== 'true' && now.length === 0 && before.length === 0) return;
    const primary = m.primary ?? ctx.node;
    const priv = m.privileged_user ?? REPMGR_DEFAULTS.privileged_user;
    const db = m.repmgr_database ?? REPMGR_DEFAULTS.repmgr_database;
    const verb = ctx.dryRun ? 'would receive' : 'received';
    ctx.report(
      now.length > 0
        ? `replication: standby(s) ${standbyNames(now)} stream from this primary and ${verb} the restore through WAL`
        : `replication: no standby streams from this primary now`,
    );
    const streaming = new Set(now.map((x) => x.name));
    const lost = before.filter((x) => !streaming.has(x.name));
    const targets = lost.length > 0 ? lost.map((x) => `standby ${standbyNames([x])}`) : now.length === 0 ? ['each standby'] : [];
    const asPg = 'runuser -u postgres --';
    const clone = [
      'systemctl stop repmgrd',
      'systemctl stop postgresql',
      `${asPg} repmgr -h ${primary} -U ${priv} -d ${db} -p ${cfg.port} standby clone --force`,
      'systemctl start postgresql',
      `${asPg} repmgr standby register --force`,
      'systemctl start repmgrd',
      `${asPg} repmgr standby follow`,
    ].join(' && ');
    for (const t of targets) ctx.report(`re-clone ${t} from ${primary}, as root on it: ${clone}`);
    ctx.report(`then on ${primary}, as root, so repmgr's records match the restored cluster: ${asPg} repmgr --superuser=${priv} primary register --force && systemctl start repmgrd`);
  }

  /**
   * A postgresql.conf from another node (or another layout) may name a data_directory this
   * server does not use: the next start would then serve, or initialise, the wrong directory.
   */
  async function checkDataDirectory(ctx: RestoreContext, staged: Map<string, string>, facts: RestoreFacts): Promise<void> {
    for (const [original, file] of staged) {
      if (path.basename(original) !== 'postgresql.conf') continue;
      const named = confSetting(await fsp.readFile(file, 'utf8'), 'data_directory');
      if (named === undefined || path.resolve(named) === path.resolve(facts.data_directory)) continue;
      const from = ctx.part.node === ctx.host ? '' : ` (backed up on ${ctx.part.node})`;
      throw new PreconditionError(
        `restored ${original}${from} sets data_directory '${named}', but the server here runs on '${facts.data_directory}'; the databases were restored, the configuration files were not replaced (restore them by hand after moving the data, or edit data_directory)`,
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
    const pg = await connect(ctx.signal);
    const facts = await pg.json<RestoreFacts>(RESTORE_FACTS);
    if (facts.recovery) {
      const from = facts.upstream ? `, streaming from ${facts.upstream}` : '';
      throw new PreconditionError(`the server at ${cfg.host}:${cfg.port} is a standby (in recovery${from}); restore onto the primary, and this standby follows it`);
    }
    const existing = new Set(facts.databases);
    checkUnused(ctx, facts, targets.filter((d) => existing.has(d)));

    // A single database is restored alone: replaying all roles (and their passwords) or the
    // configuration is not what someone asking for one database expects.
    ctx.changing();
    if (only === undefined) await restoreGlobals(ctx, pg, facts);
    await forEachBounded(targets, cfg.restore_parallel, (db) => restoreDatabase(ctx, pg, db, existing.has(db)));
    if (only === undefined) {
      await restoreFilesThenRun(ctx, { afterRestore: cfg.after_restore_command, validate: (staged) => checkDataDirectory(ctx, staged, facts) });
      reportReplication(ctx, facts);
    }
  }

  async function configPaths(): Promise<string[]> {
    const { paths } = await configPathsOf(cfg, host).catch(() => ({ paths: [] as BackupPath[] }));
    return paths.map((p) => p.path);
  }

  return {
    name: 'postgresql',
    restorePaths,
    detect: () => detect().catch((err: Error) => ({ present: false, detail: err.message })),
    async estimateBytes() {
      const pg = await connect();
      const data = await pg.json<number>(
        'SELECT coalesce(sum(pg_database_size(datname)), 0)::bigint FROM pg_database WHERE NOT datistemplate AND datallowconn',
      );
      return Number(data) + (await duBytes(await configPaths()));
    },
    async health(): Promise<Health> {
      try {
        const s = await (await connect()).state();
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
