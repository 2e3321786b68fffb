import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { absolutePath, command } from '../../common/config.js';
import { IntegrityError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import { duBytes, exists, freeBytes, mkdirPrivate, writeFileAtomic } from '../../common/fsutil.js';
import { httpText, isOk } from '../http.js';
import type { BackupContext, Component, RollbackTarget } from './component.js';
import { detectPaths, pathList } from './files.js';
import { getLocal, readyHealth, waitDown, waitReady } from './service-wait.js';

const httpUrl = z
  .string()
  .regex(/^https?:\/\/[^/]+/, 'expected an http(s):// URL')
  .transform((u) => u.replace(/\/+$/, ''));

export const prometheusSchema = z
  .object({
    /** Default: the unit's --web.listen-address (LambdaStack: 0.0.0.0:9090), asked on 127.0.0.1. */
    url: httpUrl.optional(),
    /**
     * Default: what the node says, in this order: the running server's --storage.tsdb.path, the
     * unit file's, Debian's packaged default (/var/lib/prometheus/metrics2) for Debian's unit,
     * and LambdaStack's /var/lib/prometheus.
     */
    tsdb_path: absolutePath.optional(),
    /** Where the ExecStart line that gets --web.enable-admin-api for the snapshot lives. */
    unit_file: absolutePath.default('/etc/systemd/system/prometheus.service'),
    daemon_reload_command: command.default(['systemctl', 'daemon-reload']),
    restart_command: command.default(['systemctl', 'restart', 'prometheus']),
    stop_command: command.default(['systemctl', 'stop', 'prometheus']),
    start_command: command.default(['systemctl', 'start', 'prometheus']),
    config_paths: pathList.default(['/etc/prometheus']),
    /** When false, a Prometheus without the admin API fails its backup instead of being restarted twice. */
    allow_enable_admin_api: z.boolean().default(true),
    /** A large TSDB replays its WAL for minutes before /-/ready answers. */
    ready_timeout_s: z.number().positive().default(300),
  })
  .strict();

export type PrometheusConfig = z.output<typeof prometheusSchema>;

/** LambdaStack's unit runs /usr/local/bin/prometheus with --storage.tsdb.path=/var/lib/prometheus (roles/prometheus). */
const LAMBDASTACK_TSDB = '/var/lib/prometheus';
/** Debian's package: its unit runs /usr/bin/prometheus $ARGS, whose compiled-in default is metrics2. */
const DEBIAN_UNIT = '/lib/systemd/system/prometheus.service';
const DEBIAN_TSDB = '/var/lib/prometheus/metrics2';

/** The value of `--name=value` (or `--name value`) in a unit's last ExecStart=, continuation lines joined. */
export function unitFlag(unit: string, name: string): string | undefined {
  const lines = unit.split('\n');
  let exec = '';
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*ExecStart\s*=/.test(lines[i]!)) continue;
    let logical = lines[i]!;
    while (/\\\s*$/.test(logical) && i + 1 < lines.length) logical = logical.replace(/\\\s*$/, ' ') + lines[++i];
    exec = logical;
  }
  const m = new RegExp(`(?:^|\\s)--${name.replace(/\./g, '\\.')}(?:=|\\s+)("[^"]*"|'[^']*'|\\S+)`).exec(exec);
  return m ? m[1]!.replace(/^(["'])(.*)\1$/, '$2') : undefined;
}

/** Where this node's Prometheus keeps its TSDB and answers, as far as files tell (no network). */
export function nodeFacts(cfg: PrometheusConfig): { unitFile?: string; tsdbPath: string; tsdbFrom: string; url: string; adminApi?: boolean } {
  const unitFile = [cfg.unit_file, DEBIAN_UNIT].find((f) => existsSync(f));
  const unit = unitFile ? readFileSync(unitFile, 'latin1') : '';
  const flagTsdb = unitFile ? unitFlag(unit, 'storage.tsdb.path') : undefined;
  let tsdbPath = cfg.tsdb_path;
  let tsdbFrom = 'agent.yaml';
  if (!tsdbPath && flagTsdb && path.isAbsolute(flagTsdb)) [tsdbPath, tsdbFrom] = [flagTsdb, `--storage.tsdb.path in ${unitFile}`];
  if (!tsdbPath && unitFile === DEBIAN_UNIT) [tsdbPath, tsdbFrom] = [DEBIAN_TSDB, `Debian's default for ${unitFile}`];
  if (!tsdbPath) [tsdbPath, tsdbFrom] = [LAMBDASTACK_TSDB, "LambdaStack's default"];
  let url = cfg.url;
  if (!url) {
    const listen = (unitFile && unitFlag(unit, 'web.listen-address')) || ':9090';
    const m = /^(.*):(\d+)$/.exec(listen);
    const host = !m || ['', '0.0.0.0', '[::]', '::'].includes(m[1]!) ? '127.0.0.1' : m[1]!;
    url = `http://${host}:${m?.[2] ?? '9090'}`;
  }
  return { unitFile, tsdbPath, tsdbFrom, url, adminApi: unitFile ? /\s--web\.enable-admin-api\b/.test(unit) : undefined };
}

export const TSDB_ARTIFACT = 'tsdb';
export const CONFIG_ARTIFACT = 'config';
const ADMIN_FLAG = '--web.enable-admin-api';
/** Names we leave in the TSDB directory; Prometheus only opens ULID-named block directories. */
const OURS = '.lsbackup-';
const UNIT_JOURNAL = 'prometheus-unit-original.json';


/**
 * Adds the admin flag to the last ExecStart= of a unit file (the one systemd runs), at the end
 * of its last continuation line. Decoded as latin1 so every other byte round-trips unchanged.
 */
export function withAdminFlag(unit: Buffer, file: string): Buffer {
  const lines = unit.toString('latin1').split('\n');
  let start = -1;
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*ExecStart\s*=\s*\S/.test(lines[i]!)) start = i;
  }
  if (start < 0) throw new PreconditionError(`${file} has no ExecStart= line to add ${ADMIN_FLAG} to`);
  let end = start;
  while (end < lines.length - 1 && /\\\s*\r?$/.test(lines[end]!)) end++;
  const logical = lines.slice(start, end + 1).join('\n');
  if (/--web\.enable-admin-api\b/.test(logical)) {
    throw new PreconditionError(
      `${file} already has ${ADMIN_FLAG} in ExecStart, yet the running Prometheus has its admin API off; the unit was not reloaded and restarted, or Prometheus is started from elsewhere`,
    );
  }
  const last = lines[end]!;
  const m = /^(.*?)(\s*)(\r?)$/.exec(last)!;
  lines[end] = `${m[1]} ${ADMIN_FLAG}${m[2]}${m[3]}`;
  return Buffer.from(lines.join('\n'), 'latin1');
}

interface UnitJournal {
  unitFile: string;
  content: string;
  mode: number;
  uid: number;
  gid: number;
}

interface SnapshotAnswer {
  kind: 'ok' | 'disabled' | 'error';
  name?: string;
  detail: string;
}

/** The seed's 2.1: a TSDB snapshot through the admin API plus /etc/prometheus. */
export function prometheus(settings: PrometheusConfig): Component {
  type Resolved = PrometheusConfig & { url: string; tsdb_path: string };
  // What the node says is read again at every request: Prometheus may be installed or moved after the agent started.
  let facts = nodeFacts(settings);
  let cfg: Resolved = { ...settings, url: facts.url, tsdb_path: facts.tsdbPath };
  const refresh = () => {
    facts = nodeFacts(settings);
    cfg = { ...settings, url: facts.url, tsdb_path: facts.tsdbPath };
  };
  const journalOf = (stateDir: string) => path.join(stateDir, UNIT_JOURNAL);

  const exec = async (cmd: string[], signal?: AbortSignal) => void (await run(cmd, { signal }));

  async function requestSnapshot(signal: AbortSignal): Promise<SnapshotAnswer> {
    const r = await httpText({
      method: 'POST',
      url: new URL(`${cfg.url}/api/v1/admin/tsdb/snapshot`),
      signal,
      // A snapshot of a large head block takes a while to be answered; fetch gave it undici's 300 s.
      timeoutMs: 300_000,
      networkError: (f) => new UnavailableError(`Prometheus at ${cfg.url}: ${f.code || f.message}`),
    });
    const text = r.text;
    let body: { status?: string; error?: string; data?: { name?: string } } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // not JSON: a proxy's error page or an old Prometheus; judged by status below
    }
    if (isOk(r.status) && body.status === 'success' && body.data?.name) return { kind: 'ok', name: body.data.name, detail: '' };
    const detail = `HTTP ${r.status}: ${(body.error ?? text).trim().slice(0, 300)}`;
    if (r.status === 404 || r.status === 405 || /admin APIs disabled/i.test(body.error ?? text)) return { kind: 'disabled', detail };
    return { kind: 'error', detail };
  }

  async function flags(signal?: AbortSignal): Promise<Record<string, string> | undefined> {
    try {
      const r = await getLocal(`${cfg.url}/api/v1/status/flags`, signal);
      if (!isOk(r.status)) return undefined;
      return (JSON.parse(r.text) as { data?: Record<string, string> }).data;
    } catch {
      return undefined;
    }
  }

  /** The snapshot lands under the TSDB path Prometheus runs with; a tsdb_path that differs would break restore too. */
  async function liveTsdbPath(signal: AbortSignal): Promise<string> {
    const live = (await flags(signal))?.['storage.tsdb.path'];
    if (!live || !path.isAbsolute(live)) return cfg.tsdb_path;
    const real = async (p: string) => fsp.realpath(p).catch(() => path.resolve(p));
    if ((await real(live)) !== (await real(cfg.tsdb_path))) {
      // Only a path the operator wrote down is worth an error; a guessed one yields to the server.
      if (!settings.tsdb_path) {
        cfg = { ...cfg, tsdb_path: live };
        return live;
      }
      throw new PreconditionError(`Prometheus at ${cfg.url} runs with --storage.tsdb.path=${live}, but tsdb_path is ${cfg.tsdb_path}; set tsdb_path to ${live}`);
    }
    return cfg.tsdb_path;
  }

  async function writeUnit(file: string, content: Buffer, j: Pick<UnitJournal, 'mode' | 'uid' | 'gid'>): Promise<void> {
    await writeFileAtomic(file, content, j.mode & 0o7777);
    await fsp.chown(file, j.uid, j.gid);
  }

  async function revertUnit(j: UnitJournal, stateDir: string, signal: AbortSignal): Promise<void> {
    await writeUnit(j.unitFile, Buffer.from(j.content, 'base64'), j);
    await exec(cfg.daemon_reload_command, signal);
    await exec(cfg.restart_command, signal);
    await waitReady(cfg.url, cfg.ready_timeout_s, 'Prometheus', signal);
    const on = (await flags(signal))?.['web.enable-admin-api'];
    if (on === 'true') throw new PreconditionError(`${j.unitFile} was restored, yet Prometheus still runs with ${ADMIN_FLAG}`);
    await fsp.rm(journalOf(stateDir), { force: true });
  }

  /** An agent that died between enabling and reverting left the original unit in its state dir. */
  async function revertLeftover(ctx: BackupContext): Promise<void> {
    const file = journalOf(ctx.stateDir);
    if (!(await exists(file))) return;
    const j = JSON.parse(await fsp.readFile(file, 'utf8')) as UnitJournal;
    ctx.log.warn(`an earlier backup left ${j.unitFile} with ${ADMIN_FLAG}; putting the original back first`);
    await revertUnit(j, ctx.stateDir, ctx.signal);
  }

  /**
   * Turns the admin API on the way the seed does (flag in the unit, daemon-reload, restart), runs
   * `fn`, and always puts the unit's original bytes back and restarts, whatever `fn` did.
   */
  async function withAdminApi<T>(ctx: BackupContext, fn: () => Promise<T>): Promise<T> {
    let original: Buffer;
    try {
      original = await fsp.readFile(cfg.unit_file);
    } catch (err) {
      throw new PreconditionError(`the admin API is off and unit_file ${cfg.unit_file} cannot be read to turn it on: ${messageOf(err)}`);
    }
    const st = await fsp.stat(cfg.unit_file);
    const edited = withAdminFlag(original, cfg.unit_file);
    const journal: UnitJournal = { unitFile: cfg.unit_file, content: original.toString('base64'), mode: st.mode, uid: st.uid, gid: st.gid };
    await mkdirPrivate(ctx.stateDir);
    await writeFileAtomic(journalOf(ctx.stateDir), JSON.stringify(journal));
    ctx.progress(0, `admin API is off: restarting Prometheus with ${ADMIN_FLAG} for the snapshot`);

    let result: T | undefined;
    let failure: unknown;
    try {
      await writeUnit(cfg.unit_file, edited, st);
      await exec(cfg.daemon_reload_command, ctx.signal);
      await exec(cfg.restart_command, ctx.signal);
      await waitReady(cfg.url, cfg.ready_timeout_s, 'Prometheus', ctx.signal);
      result = await fn();
    } catch (err) {
      failure = err;
    }
    // Reverting must run even after a cancel, so it does not use ctx.signal.
    try {
      await revertUnit(journal, ctx.stateDir, new AbortController().signal);
    } catch (err) {
      const before = failure ? `${messageOf(failure)}; then ` : 'snapshot taken, but ';
      throw new PreconditionError(
        `${before}reverting ${cfg.unit_file} failed: ${messageOf(err)}. Prometheus may still run with ${ADMIN_FLAG}; the original unit is in ${journalOf(ctx.stateDir)} and the next backup puts it back`,
      );
    }
    ctx.progress(0, 'admin API turned off again');
    if (failure) throw failure;
    return result as T;
  }

  async function takeSnapshot(ctx: BackupContext, tsdb: string, taken: { dir?: string; name?: string }): Promise<void> {
    const snapshots = path.join(tsdb, 'snapshots');
    const before = new Set(await fsp.readdir(snapshots).catch(() => [] as string[]));
    const once = async (): Promise<SnapshotAnswer> => {
      const a = await requestSnapshot(ctx.signal);
      if (a.kind === 'ok') {
        taken.name = a.name;
        taken.dir = path.join(snapshots, a.name!);
      }
      return a;
    };
    let answer = await once();
    if (answer.kind === 'disabled') {
      if (!cfg.allow_enable_admin_api) {
        throw new PreconditionError(`Prometheus at ${cfg.url} has its admin API off (${answer.detail}) and allow_enable_admin_api is false; start it with ${ADMIN_FLAG}`);
      }
      answer = await withAdminApi(ctx, once);
      ctx.meta.admin_api = 'enabled for the snapshot, then reverted';
    } else {
      ctx.meta.admin_api = 'already on';
    }
    if (answer.kind !== 'ok') {
      // Prometheus does not clean up a snapshot that failed half way; say what it left rather than guess.
      const left = (await fsp.readdir(snapshots).catch(() => [] as string[])).filter((n) => !before.has(n));
      const leftover = left.length ? `; it left ${left.map((n) => path.join(snapshots, n)).join(', ')}` : '';
      throw new UnavailableError(`Prometheus at ${cfg.url} refused the snapshot (${answer.detail})${leftover}`);
    }
    if (!(await exists(taken.dir!))) {
      throw new PreconditionError(`Prometheus reported snapshot ${taken.name}, but ${taken.dir} does not exist; is tsdb_path (${tsdb}) the directory it writes to?`);
    }
  }

  return {
    name: 'prometheus',
    get restorePaths() {
      return [cfg.tsdb_path, ...cfg.config_paths];
    },
    async detect() {
      refresh();
      const found = await detectPaths('Prometheus', [...(facts.unitFile ? [facts.unitFile] : [cfg.unit_file]), path.join(cfg.config_paths[0] ?? '/etc/prometheus', 'prometheus.yml')]);
      if (!found.present) return found;
      const admin = facts.adminApi === undefined ? '' : facts.adminApi ? ', admin API on' : ', admin API off (turned on for each snapshot)';
      return { present: true, detail: `Prometheus at ${cfg.url}, unit ${facts.unitFile ?? 'none'}, TSDB ${cfg.tsdb_path} (${facts.tsdbFrom})${admin}` };
    },
    async estimateBytes() {
      refresh();
      const skip = (p: string) => p === path.join(cfg.tsdb_path, 'snapshots') || p === path.join(cfg.tsdb_path, 'wal') || path.basename(p).startsWith(OURS);
      return (await duBytes([cfg.tsdb_path], skip)) + (await duBytes(cfg.config_paths));
    },
    health: () => readyHealth(cfg.url, 'Prometheus'),

    async backup(ctx) {
      refresh();
      await revertLeftover(ctx);
      const tsdb = await liveTsdbPath(ctx.signal);
      const taken: { dir?: string; name?: string } = {};
      try {
        await takeSnapshot(ctx, tsdb, taken);
        ctx.meta.snapshot = taken.name!;
        ctx.meta.snapshot_dir = taken.dir!;
        ctx.progress(0, `copying snapshot ${taken.name}`);
        // TSDB chunks are compressed already; deflating them again costs CPU for nothing.
        // A new directory of hard links to the same block files every night: matched without ctime (FORMAT.md "Format 3").
        await ctx.addTree(TSDB_ARTIFACT, [taken.dir!], { level: 0, linked: true });
      } finally {
        // The snapshot is hard links into live blocks: left behind, it pins their disk space forever.
        if (taken.dir) await fsp.rm(taken.dir, { recursive: true, force: true }).catch((err) => ctx.log.warn(`could not remove ${taken.dir}: ${messageOf(err)}`));
      }
      await ctx.addTree(CONFIG_ARTIFACT, cfg.config_paths);
      return { status: 'ok' };
    },

    async restore(ctx) {
      refresh();
      const config = ctx.treeArtifact(CONFIG_ARTIFACT);
      const tsdbArchive = ctx.treeArtifact(TSDB_ARTIFACT);
      const restoreConfig = async () => {
        if (config) await ctx.restoreFiles({ archive: config });
      };
      if (!tsdbArchive) {
        await restoreConfig();
        return;
      }
      const snapDir = ctx.part.meta.snapshot_dir;
      if (!snapDir) throw new IntegrityError(`the prometheus part of ${ctx.backupId} does not record its snapshot directory (meta.snapshot_dir)`);
      const entries = await ctx.entries(tsdbArchive);
      const tsdb = cfg.tsdb_path;
      const staging = path.join(tsdb, `${OURS}restore-${ctx.backupId}`);
      // The archive names entries after where the snapshot lay at backup time, so "put it back where
      // it was" does not fit: they go to a staging directory swapped in as the TSDB root.
      const toStaging = { archive: tsdbArchive, roots: [{ from: snapDir, to: staging }] };
      const odd = entries.find((e) => e.type !== 'file' && e.type !== 'dir');
      if (odd) throw new PermissionError(`refusing ${odd.type} '${odd.path}': a TSDB snapshot holds only files and directories`);

      if (ctx.dryRun) {
        ctx.progress(0, `would stop Prometheus, move the contents of ${tsdb} aside and put snapshot ${ctx.part.meta.snapshot ?? ''} (${entries.length} entries) there`);
        // Checked as the real restore checks it, and shown where each entry ends up once swapped in.
        await ctx.restoreFiles({ ...toStaging, roots: [{ from: snapDir, to: tsdb }] });
        await restoreConfig();
        return;
      }

      const need = entries.reduce((s, e) => s + e.size, 0);
      const tsdbIsNew = !(await exists(tsdb));
      if (tsdbIsNew) await fsp.mkdir(tsdb, { recursive: true, mode: 0o755 });
      const free = await freeBytes(tsdb);
      if (free < need) throw new PreconditionError(`${tsdb} has ${free} bytes free, the snapshot needs ${need}; nothing was changed`);

      // Extracted and verified while Prometheus still runs: its downtime is only the swap.
      await fsp.rm(staging, { recursive: true, force: true });
      try {
        await ctx.restoreFiles(toStaging);
        // The snapshot's own root entry gave the staging directory its owner and mode; a TSDB root made just now takes them.
        if (tsdbIsNew) await copyOwnerAndMode(staging, tsdb);
        await restoreConfig();
      } catch (err) {
        await fsp.rm(staging, { recursive: true, force: true });
        throw err;
      }

      try {
        await exec(cfg.stop_command, ctx.signal);
        await waitDown(cfg.url, 30, 'Prometheus');
      } catch (err) {
        await fsp.rm(staging, { recursive: true, force: true });
        throw err;
      }
      let swapError: unknown;
      let rollbackDir = '';
      try {
        rollbackDir = await swapIn(tsdb, staging, await ctx.rollbackTarget(tsdb));
      } catch (err) {
        swapError = err;
      }
      try {
        await exec(cfg.start_command);
        await waitReady(cfg.url, cfg.ready_timeout_s, 'Prometheus', ctx.signal);
      } catch (err) {
        const kept = rollbackDir ? `; the data it replaced is in ${rollbackDir}` : '';
        throw new UnavailableError(`${swapError ? `${messageOf(swapError)}; ` : ''}Prometheus did not come back after the restore: ${messageOf(err)}${kept}`);
      }
      if (swapError) throw swapError;
      ctx.restarted(`Prometheus (${cfg.start_command.join(' ')})`);
      if (rollbackDir) {
        const entries = isTsdbEntryPattern;
        await ctx.keptRollback(rollbackDir, {
          replaced: `the TSDB in ${tsdb}`,
          howTo: `${cfg.stop_command.join(' ')} && find ${tsdb} -mindepth 1 -maxdepth 1 -regextype egrep -regex '${entries}' -exec rm -rf {} + && mv ${rollbackDir}/* ${tsdb}/ && ${cfg.start_command.join(' ')}`,
        });
      }
    },
  };

}

async function copyOwnerAndMode(from: string, to: string): Promise<void> {
  const st = await fsp.stat(from);
  await fsp.chown(to, st.uid, st.gid);
  await fsp.chmod(to, st.mode & 0o7777);
}

/**
 * What Prometheus keeps in its TSDB root: ULID-named blocks (and their .tmp-* forms while being
 * written), the WAL, the head chunks, its lock and query log. LambdaStack's root is
 * /var/lib/prometheus, which also holds Alertmanager's data (/var/lib/prometheus/alertmanager):
 * anything else in the root is not the TSDB's and a restore leaves it where it is.
 */
export function isTsdbEntry(name: string): boolean {
  return /^[0-9A-HJKMNP-TV-Z]{26}(\.tmp-.*)?$/.test(name) || ['wal', 'chunks_head', 'lock', 'queries.active'].includes(name);
}

/** isTsdbEntry as a find -regex, for the roll-back command the operator is given. */
const isTsdbEntryPattern = '.*/([0-9A-HJKMNP-TV-Z]{26}(\\.tmp-.*)?|wal|chunks_head|lock|queries\\.active)';

/**
 * Moves the TSDB's entries of the root (blocks, wal, chunks_head, lock) into the rollback
 * directory (under the agent's state_dir when it is on the same file system), then the staged
 * snapshot up into the root. Renames only: instant, and no copy of a TSDB that may be hundreds
 * of GiB. On failure, what was moved goes back.
 */
async function swapIn(tsdb: string, staging: string, target: RollbackTarget): Promise<string> {
  const rollback = target.dir;
  const old = (await fsp.readdir(tsdb)).filter((n) => !n.startsWith(OURS) && isTsdbEntry(n));
  const moved: string[] = [];
  const placed: string[] = [];
  try {
    for (const n of old) {
      await fsp.rename(path.join(tsdb, n), path.join(rollback, n));
      moved.push(n);
    }
    for (const n of await fsp.readdir(staging)) {
      await fsp.rename(path.join(staging, n), path.join(tsdb, n));
      placed.push(n);
    }
    await fsp.rmdir(staging);
  } catch (err) {
    const undo: string[] = [];
    for (const n of placed) await fsp.rename(path.join(tsdb, n), path.join(staging, n)).catch(() => undo.push(path.join(tsdb, n)));
    for (const n of moved) await fsp.rename(path.join(rollback, n), path.join(tsdb, n)).catch(() => undo.push(path.join(rollback, n)));
    await fsp.rm(staging, { recursive: true, force: true });
    if (undo.length === 0) await target.discard();
    const state = undo.length ? `could not move back ${undo.join(', ')}` : 'the old data was moved back';
    throw new IntegrityError(`swapping the snapshot into ${tsdb} failed: ${messageOf(err)}; ${state}`);
  }
  if (moved.length === 0) {
    await target.discard();
    return '';
  }
  await target.seal();
  return rollback;
}
