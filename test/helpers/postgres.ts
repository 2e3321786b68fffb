/**
 * Throw-away PostgreSQL 15 clusters for component tests: initdb into a temp directory owned by the
 * `postgres` OS user (the server refuses to run as root), a free loopback port, password (SCRAM)
 * authentication over TCP and trust on a private socket directory for the test's own queries.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { run } from '../../common/exec.js';
import { tempDir } from './harness.js';

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

export class PgCluster {
  private running = false;
  private constructor(
    readonly root: string,
    readonly data: string,
    readonly sockDir: string,
    readonly port: number,
  ) {}

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

  /** A streaming standby of `primary` (pg_basebackup -R), on its own port. */
  static async standbyOf(primary: PgCluster): Promise<PgCluster> {
    const c = await PgCluster.prepare('pg-standby');
    await asPostgres([path.join(PG_BIN, 'pg_basebackup'), '-R', '-D', c.data, '-h', primary.sockDir, '-p', String(primary.port), '-U', 'postgres', '--no-sync', '-c', 'fast']);
    await c.configure();
    await c.start();
    return c;
  }

  async start(): Promise<void> {
    await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.data, '-l', path.join(this.root, 'server.log'), '-w', '-t', '30', 'start']);
    this.running = true;
  }

  /** Stops the server, keeping its files, as an outage would. */
  async stop(): Promise<void> {
    await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.data, '-m', 'fast', '-w', 'stop']);
    this.running = false;
  }

  /** Stops the server and removes its files; safe to call on a half-started cluster. */
  async destroy(): Promise<void> {
    if (this.running) {
      await asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', this.data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      this.running = false;
    }
    await fsp.rm(this.root, { recursive: true, force: true });
  }

  /** Runs SQL as the superuser over the trusted socket; returns psql's unaligned, tuples-only output. */
  async sql(db: string, text: string): Promise<string> {
    const dbname = `dbname='${db.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    const cmd = [path.join(PG_BIN, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.sockDir, '-p', String(this.port), '-U', 'postgres', '-d', dbname, '-f', '-'];
    return (await run(cmd, { input: text, timeoutMs: 60_000 })).stdout.trim();
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
