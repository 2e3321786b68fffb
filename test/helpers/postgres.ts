/**
 * Throw-away PostgreSQL 15 clusters for component tests: initdb into a temp directory owned by the
 * `postgres` OS user (the server refuses to run as root), a free loopback port, and either password
 * (SCRAM) authentication over TCP with trust on a private socket directory for the test's own
 * queries, or (lambdaStack()) the layout and peer-only socket auth LambdaStack's role sets up.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { run } from '../../common/exec.js';
import { tempDir } from './harness.js';
import { lambdaStackPgHba } from './postgres-lambdastack.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Fails (never skips) with what to install when the machine cannot run a real server. */
export function requirePostgres(): void {
  const missing = ['initdb', 'pg_ctl', 'postgres', 'psql', 'pg_dump', 'pg_dumpall', 'pg_restore', 'pg_basebackup'].filter((b) => !existsSync(path.join(PG_BIN, b)));
  if (missing.length > 0) throw new Error(`PostgreSQL 15 binaries missing from ${PG_BIN} (${missing.join(', ')}): apt-get install postgresql`);
  if (process.getuid?.() !== 0) throw new Error('the PostgreSQL tests start servers as the postgres OS user and must run as root');
}

export { freePort } from '../../demo/cluster.js';
import { freePort } from '../../demo/cluster.js';

async function asPostgres(cmd: string[]): Promise<string> {
  return (await run(['runuser', '-u', 'postgres', '--', ...cmd], { timeoutMs: 60_000 })).stdout;
}

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
/** An ACL as text in a stable order: a restore may list the same grants in another order. */
const sortedAcl = (col: string) => `(SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(${col}) a)`;
export const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** What makes a cluster look like one LambdaStack's postgresql role set up on Debian. */
export interface LambdaStackLayout {
  /** <root>/etc/postgresql: what the component's config_root points at. */
  configRoot: string;
  /** <configRoot>/15/main: postgresql.conf, postgresql-lambdastack.conf, pg_hba.conf, pg_ident.conf. */
  configDir: string;
  /** <root>/var/lib/postgresql/.pgpass, where the repmgr extension writes it. */
  pgpass: string;
}

export class PgCluster {
  private running = false;
  /** Set for a LambdaStack-shaped cluster: peer auth only, so the test's own queries also run as postgres. */
  layout?: LambdaStackLayout;
  private constructor(
    readonly root: string,
    readonly data: string,
    readonly sockDir: string,
    readonly port: number,
  ) {}

  /** pg_ctl's -D: Debian keeps the configuration apart, and pg_ctl finds data_directory through it. */
  private get ctlDir(): string {
    return this.layout?.configDir ?? this.data;
  }

  private static async prepare(name: string): Promise<PgCluster> {
    const root = tempDir(name);
    const sockDir = path.join(root, 'sock');
    await fsp.mkdir(sockDir);
    await run(['chown', '-R', 'postgres:postgres', root]);
    return new PgCluster(root, path.join(root, 'data'), sockDir, await freePort());
  }

  private async configure(): Promise<void> {
    const conf = [
      `port = ${this.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ${quoteLiteral(this.sockDir)}`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      "password_encryption = 'scram-sha-256'",
    ].join('\n');
    await fsp.appendFile(path.join(this.data, 'postgresql.conf'), `\n${conf}\n`);
  }

  /** A new primary whose superuser `postgres` has `superPassword` for TCP logins. */
  static async primary(superPassword: string): Promise<PgCluster> {
    const c = await PgCluster.prepare('pg-primary');
    const pwfile = path.join(c.root, 'pw');
    await fsp.writeFile(pwfile, `${superPassword}\n`, { mode: 0o600 });
    await run(['chown', 'postgres:postgres', pwfile]);
    await asPostgres([
      path.join(PG_BIN, 'initdb'), '-D', c.data, '-U', 'postgres', `--pwfile=${pwfile}`,
      '--auth-local=trust', '--auth-host=scram-sha-256', '--encoding=UTF8', '--no-locale', '--no-sync',
    ]);
    await fsp.rm(pwfile);
    await c.configure();
    await c.start();
    return c;
  }

  /**
   * A streaming standby of `primary` (pg_basebackup -R), on its own port. `name` becomes its
   * cluster_name, which the walreceiver reports as application_name, as repmgr's node_name is.
   */
  static async standbyOf(primary: PgCluster, name?: string): Promise<PgCluster> {
    const c = await PgCluster.prepare('pg-standby');
    await asPostgres([path.join(PG_BIN, 'pg_basebackup'), '-R', '-D', c.data, '-h', primary.sockDir, '-p', String(primary.port), '-U', 'postgres', '--no-sync', '-c', 'fast']);
    await c.configure();
    if (name !== undefined) await fsp.appendFile(path.join(c.data, 'postgresql.conf'), `cluster_name = ${quoteLiteral(name)}\n`);
    await c.start();
    return c;
  }

  /**
   * A cluster as LambdaStack's postgresql role leaves it on Debian (roles/postgresql/defaults/main.yml,
   * templates/*.j2): configuration in <root>/etc/postgresql/15/main owned by postgres with mode 0600,
   * data in <root>/var/lib/postgresql/15/main, pg_hba.conf exactly as the template renders (peer on
   * the socket, md5 over TCP), and no password for postgres. What a test cannot copy: the port is a
   * free one (the template sets none, so 5432), the socket directory is private to the test
   * (Debian's is /var/run/postgresql) and the server listens on loopback only (the template: '*').
   */
  static async lambdaStack(): Promise<PgCluster> {
    const root = tempDir('pg-lambdastack');
    const configRoot = path.join(root, 'etc/postgresql');
    const configDir = path.join(configRoot, '15/main');
    const data = path.join(root, 'var/lib/postgresql/15/main');
    const sockDir = path.join(root, 'run/postgresql');
    for (const d of [configDir, data, sockDir]) await fsp.mkdir(d, { recursive: true });
    await run(['chown', '-R', 'postgres:postgres', root]);
    await fsp.chmod(data, 0o700);
    const c = new PgCluster(root, data, sockDir, await freePort());
    c.layout = { configRoot, configDir, pgpass: path.join(root, 'var/lib/postgresql/.pgpass') };
    await asPostgres([path.join(PG_BIN, 'initdb'), '-D', data, '-U', 'postgres', '--auth-local=peer', '--auth-host=md5', '--encoding=UTF8', '--no-locale', '--no-sync']);
    // pg_createcluster's move: the configuration lives in /etc, the data directory keeps none of it.
    await fsp.rename(path.join(data, 'pg_ident.conf'), path.join(configDir, 'pg_ident.conf'));
    for (const f of ['postgresql.conf', 'pg_hba.conf']) await fsp.rm(path.join(data, f));
    const conf = [
      '# Ansible managed',
      '# The settings roles/postgresql/templates/postgresql.conf.j2 renders, with the port, socket and listen address of a test.',
      `data_directory = ${quoteLiteral(data)}`,
      `hba_file = ${quoteLiteral(path.join(configDir, 'pg_hba.conf'))}`,
      `ident_file = ${quoteLiteral(path.join(configDir, 'pg_ident.conf'))}`,
      `port = ${c.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ${quoteLiteral(sockDir)}`,
      'max_connections = 100',
      'password_encryption = md5',
      "include = 'postgresql-lambdastack.conf'\t# LambdaStack managed configuration that overrides settings above",
      '',
    ].join('\n');
    const lambdaStackConf = ['# Ansible managed', "listen_addresses = '127.0.0.1'", 'ssl = off', '# test speed, not LambdaStack:', 'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', ''].join('\n');
    const files: [string, string][] = [
      ['postgresql.conf', conf],
      ['postgresql-lambdastack.conf', lambdaStackConf],
      ['pg_hba.conf', lambdaStackPgHba()],
    ];
    for (const [name, text] of files) await fsp.writeFile(path.join(configDir, name), text);
    for (const name of [...files.map(([n]) => n), 'pg_ident.conf']) {
      await fsp.chmod(path.join(configDir, name), 0o600);
      await run(['chown', 'postgres:postgres', path.join(configDir, name)]);
    }
    await c.start();
    return c;
  }

  async start(): Promise<void> {
    await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.ctlDir, '-l', path.join(this.root, 'server.log'), '-w', '-t', '30', 'start']);
    this.running = true;
  }

  /** Stops the server, keeping its files, as an outage would. */
  async stop(): Promise<void> {
    await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.ctlDir, '-m', 'fast', '-w', 'stop']);
    this.running = false;
  }

  /** Stops the server and removes its files; safe to call on a half-started cluster. */
  async destroy(): Promise<void> {
    if (this.running) {
      await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.ctlDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      this.running = false;
    }
    await fsp.rm(this.root, { recursive: true, force: true });
  }

  /**
   * Runs SQL as the superuser over the socket (trusted, or peer as the OS user postgres on a
   * LambdaStack-shaped cluster); returns psql's unaligned, tuples-only output.
   */
  async sql(db: string, text: string): Promise<string> {
    const dbname = `dbname='${db.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const psql = [path.join(PG_BIN, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.sockDir, '-p', String(this.port), '-U', 'postgres', '-d', dbname, '-f', '-'];
    const cmd = this.layout ? ['runuser', '-u', 'postgres', '--', ...psql] : psql;
    return (await run(cmd, { input: text, timeoutMs: 60_000, cwd: '/' })).stdout.trim();
  }

  /**
   * One line per table in every non-template database: an md5 over all rows in primary-key
   * order, the row count and the table's grants, so any lost or changed row or privilege shows.
   */
  async tableSums(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const dbs = (await this.sql('postgres', "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")).split('\n');
    for (const db of dbs) {
      const tables = (await this.sql(db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"))
        .split('\n')
        .filter(Boolean);
      for (const t of tables) {
        out[`${db} ${t}`] = await this.sql(db, `SELECT md5(string_agg(x::text, E'\\n' ORDER BY x.id)) || ' ' || count(*) || ' ' || coalesce((SELECT ${sortedAcl('relacl')} FROM pg_class WHERE oid = ${quoteLiteral(t)}::regclass), '-') FROM ${t} x`);
      }
    }
    return out;
  }

  /** Roles with their password hashes and attributes, memberships, and each database's owner and grants. */
  async globalsSnapshot(): Promise<string> {
    return this.sql(
      'postgres',
      `SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
         SELECT 'role ' || rolname || ' ' || coalesce(rolpassword, '-') || ' ' || rolsuper || rolcanlogin || rolinherit || ' ' || coalesce(array_to_string(s.setconfig, ','), '') AS line
           FROM pg_authid a LEFT JOIN pg_db_role_setting s ON s.setrole = a.oid AND s.setdatabase = 0 WHERE rolname NOT LIKE 'pg\\_%'
         UNION ALL
         SELECT 'member ' || r.rolname || ' in ' || g.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname NOT LIKE 'pg\\_%'
         UNION ALL
         SELECT 'db ' || datname || ' ' || pg_get_userbyid(datdba) || ' ' || coalesce(${sortedAcl('datacl')}, '-') FROM pg_database
       ) t`,
    );
  }
}
