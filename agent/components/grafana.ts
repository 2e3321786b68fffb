import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { finishMetadata } from '../../common/final-meta.js';
import { absolutePath, command } from '../../common/config.js';
import { IntegrityError, PreconditionError, messageOf } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import { FILE_MODE, duBytes, exists, fsyncPath } from '../../common/fsutil.js';
import { HashingStream } from '../../common/hash.js';
import type { BackupContext, Component, Health, RestoreContext } from './component.js';
import { detectPaths, filesSchema, pathList } from './files.js';

export const grafanaSchema = z
  .object({
    /** Grafana's [paths] data; grafana.db is expected in it ([database] path left at its default). */
    data_dir: absolutePath.default('/var/lib/grafana'),
    /**
     * Grafana's configuration: grafana.ini, its TLS key and certificate, provisioning, ldap.toml
     * (roles/grafana puts all of them under /etc/grafana). Backed up with the data directory.
     */
    config_paths: pathList.default(['/etc/grafana']),
    /** Must return once Grafana has stopped: the database is replaced underneath it. */
    stop_command: command.default(['systemctl', 'stop', 'grafana-server']),
    start_command: command.default(['systemctl', 'start', 'grafana-server']),
    ...filesSchema,
  })
  .strict();

type Config = z.output<typeof grafanaSchema>;

const FILES = 'files';
const DB = 'grafana.db';
/** SQLite's own files beside the database; copying them raw would give a torn database. */
const SIDECARS = ['-wal', '-shm', '-journal'];
/** better-sqlite3 caps the pages per step here; asking for all of them copies in one step. */
const ALL_PAGES = 0x7fffffff;

interface SqliteDb {
  backup(dest: string, opts?: { progress?: (p: { totalPages: number; remainingPages: number }) => number | void }): Promise<{ totalPages: number; remainingPages: number }>;
  pragma(sql: string): unknown;
  close(): void;
}
type SqliteOpen = new (file: string, opts?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => SqliteDb;

const require = createRequire(import.meta.url);
let sqlite: SqliteOpen | undefined;
/** Loaded on first use: only nodes that run Grafana need the native module to load. */
function openDb(file: string, opts: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }): SqliteDb {
  sqlite ??= require('better-sqlite3') as SqliteOpen;
  return new sqlite(file, opts);
}

/**
 * Copies a live SQLite database with the online backup API. All pages are copied in one step,
 * inside one read transaction: stepping in chunks restarts the copy every time Grafana commits,
 * and may never finish on a busy database. A reader in WAL mode does not block Grafana's writes.
 * SQLite itself gives any -wal/-shm it has to create to the database file's owner when run as root.
 */
async function copyConsistently(src: string, dest: string): Promise<number> {
  const db = openDb(src, { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    const r = await db.backup(dest, { progress: () => ALL_PAGES });
    return r.totalPages;
  } finally {
    db.close();
  }
}

function checkIntegrity(file: string, original: string): void {
  let rows: { integrity_check: string }[];
  try {
    const db = openDb(file, { fileMustExist: true });
    try {
      rows = db.pragma('integrity_check') as { integrity_check: string }[];
    } finally {
      db.close();
    }
  } catch (err) {
    // SQLite refuses to read some damage at all ("database disk image is malformed").
    throw new IntegrityError(`the copy of ${original} fails PRAGMA integrity_check: ${messageOf(err)}`);
  }
  if (rows.length !== 1 || rows[0]!.integrity_check !== 'ok') {
    throw new IntegrityError(`the copy of ${original} fails PRAGMA integrity_check: ${rows.slice(0, 5).map((r) => r.integrity_check).join('; ')}`);
  }
}

async function removeDbFiles(file: string): Promise<void> {
  for (const f of [file, ...SIDECARS.map((s) => file + s)]) await fsp.rm(f, { force: true });
}

/**
 * The seed's 2.2: /var/lib/grafana. grafana.db is copied consistently with SQLite's backup API
 * and stored as its own artifact; the rest of the directory goes into a zip, without png/
 * (rendered images, not worth keeping) and without the database's files.
 */
export function grafana(cfg: Config): Component {
  const dataDir = path.resolve(cfg.data_dir);
  const dbFile = path.join(dataDir, DB);
  const png = path.join(dataDir, 'png');
  const skipped = new Set([png, dbFile, ...SIDECARS.map((s) => dbFile + s)]);
  const exclude = (p: string) => skipped.has(p);

  async function backup(ctx: BackupContext) {
    const st = await fsp.stat(dbFile).catch((err: NodeJS.ErrnoException) => {
      throw new PreconditionError(`${dbFile}: ${err.code === 'ENOENT' ? 'not found (is data_dir right, and does Grafana use SQLite?)' : err.message}`);
    });
    // The copy goes to the agent's own disk first: it is checked before it becomes an artifact.
    const tmp = path.join(ctx.stateDir, `grafana-${ctx.backupId}-${process.pid}.db`);
    await removeDbFiles(tmp);
    try {
      ctx.progress(0, `copying ${dbFile} with SQLite's backup API`);
      const pages = await copyConsistently(dbFile, tmp);
      checkIntegrity(tmp, dbFile);
      await fsp.chmod(tmp, FILE_MODE);
      await ctx.addTree(FILES, [dataDir, ...cfg.config_paths], { exclude });
      await ctx.addStream(DB, createReadStream(tmp, { highWaterMark: 1 << 20 }));
      Object.assign(ctx.meta, {
        db_uid: String(st.uid),
        db_gid: String(st.gid),
        db_mode: (st.mode & 0o7777).toString(8),
        db_pages: String(pages),
        db_integrity: 'ok',
      });
    } finally {
      await removeDbFiles(tmp);
    }
    return { status: 'ok' as const };
  }

  /** Puts grafana.db back beside a stopped Grafana, checked against the manifest as it is copied. */
  async function putDatabase(ctx: RestoreContext): Promise<void> {
    const artPath = `${ctx.part.node}/${ctx.part.component}/${DB}`;
    const artifact = ctx.streamArtifact(DB);
    if (!artifact) throw new IntegrityError(`backup ${ctx.backupId} has no ${artPath}`);
    const meta = ctx.part.meta;
    const uid = Number(meta.db_uid);
    const gid = Number(meta.db_gid);
    const mode = parseInt(meta.db_mode ?? '', 8);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || !Number.isInteger(mode)) {
      throw new IntegrityError(`the grafana part of backup ${ctx.backupId} lacks the owner and mode of ${DB} (db_uid, db_gid, db_mode)`);
    }
    await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dataDir, `.${DB}.lsbackup-restore-${ctx.backupId}`);
    const hashing = new HashingStream((n) => ctx.progress(n));
    try {
      await pipeline(createReadStream(artifact.file, { highWaterMark: 1 << 20 }), hashing, createWriteStream(tmp, { mode: FILE_MODE }));
      const sha = hashing.digest();
      if (hashing.bytes !== artifact.size || sha !== artifact.sha256) {
        throw new IntegrityError(`${artPath}: read ${hashing.bytes} bytes with sha256 ${sha.slice(0, 12)}…, manifest says ${artifact.size} bytes ${artifact.sha256.slice(0, 12)}…`);
      }
      await fsyncPath(tmp);
      try {
        await fsp.chown(tmp, uid, gid);
      } catch (err) {
        // Only root can give files away; as another user, keep our own ownership rather than fail.
        if ((err as NodeJS.ErrnoException).code !== 'EPERM' || process.getuid?.() === 0) throw err;
      }
      await fsp.chmod(tmp, mode);
      // A -wal left by the replaced database would be replayed into the restored one. The
      // rollback copy restoreFiles made of the data directory still holds them.
      for (const s of SIDECARS) await fsp.rm(dbFile + s, { force: true });
      await fsp.rename(tmp, dbFile);
      await fsyncPath(dataDir);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    // Putting the database in touched the directory; give it back its recorded time.
    const dirEntry = (await ctx.entries(ctx.treeArtifact(FILES))).find((e) => e.path === dataDir && e.type === 'dir');
    if (dirEntry) await finishMetadata([{ path: dataDir, mtimeNs: dirEntry.mtimeNs, keepAccessAcl: true, keepDefaultAcl: true }]);
  }

  async function restore(ctx: RestoreContext) {
    const archive = ctx.treeArtifact(FILES);
    if (ctx.dryRun) {
      await ctx.restoreFiles({ archive });
      ctx.report(`dry run: would run '${cfg.stop_command.join(' ')}', restore the files above and ${dbFile}, then run '${cfg.start_command.join(' ')}'`);
      return;
    }
    await run(cfg.stop_command, { signal: ctx.signal });
    let failure: unknown;
    try {
      await ctx.restoreFiles({ archive });
      await putDatabase(ctx);
    } catch (err) {
      failure = err;
    }
    // Grafana comes back either way: a failed restore has replaced nothing or everything but the database.
    try {
      await run(cfg.start_command, { signal: ctx.signal });
    } catch (err) {
      if (!failure) throw err;
      ctx.log.error(`'${cfg.start_command.join(' ')}' failed too: ${messageOf(err)}`);
    }
    if (failure) throw failure;
    ctx.restarted(`Grafana: '${cfg.stop_command.join(' ')}', then '${cfg.start_command.join(' ')}'`);
    if (cfg.after_restore_command) {
      await run(cfg.after_restore_command, { signal: ctx.signal });
      ctx.restarted(`'${cfg.after_restore_command.join(' ')}' (after_restore_command)`);
    }
  }

  return {
    name: 'grafana',
    restorePaths: [dataDir, ...cfg.config_paths],
    detect: () => detectPaths('Grafana', [path.join(dataDir, DB), '/etc/grafana/grafana.ini']),
    estimateBytes: async () => (await duBytes([dataDir], (p) => p === png || (p !== dbFile && skipped.has(p)))) + (await duBytes(cfg.config_paths)),
    async health(): Promise<Health> {
      if (!(await exists(dataDir))) return { status: 'down', detail: `${dataDir} does not exist` };
      if (!(await exists(dbFile))) return { status: 'down', detail: `${dbFile} does not exist` };
      return { status: 'ok', detail: `${dataDir} with ${DB} present` };
    },
    backup,
    restore,
  };
}
