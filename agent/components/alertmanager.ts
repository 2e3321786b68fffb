import { existsSync, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { absolutePath, command } from '../../common/config.js';
import { CommandError, IntegrityError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { firstLines, run } from '../../common/exec.js';
import { duBytes } from '../../common/fsutil.js';
import type { StagedTree } from '../staged-tree.js';
import type { Component, RestoreContext } from './component.js';
import { httpText, isOk, type NetworkFailure } from '../http.js';
import { detectPaths, pathList } from './files.js';
import { readyHealth, waitDown, waitReady } from './service-wait.js';

export const alertmanagerSchema = z
  .object({
    url: z
      .string()
      .regex(/^https?:\/\/[^/]+/, 'expected an http(s):// URL')
      .transform((u) => u.replace(/\/+$/, ''))
      .default('http://localhost:9093'),
    /** LambdaStack's and Debian's layout: the config sits beside Prometheus's (Debian adds a templates directory). */
    config_paths: pathList.default(['/etc/prometheus/alertmanager.yml', '/etc/prometheus/alertmanager_templates']),
    /** The file amtool checks before a restore puts it in place. */
    config_file: absolutePath.default('/etc/prometheus/alertmanager.yml'),
    /** --storage.path: the silences and nflog snapshots. */
    data_dir: absolutePath.default('/var/lib/prometheus/alertmanager'),
    /** The staged config file is appended. */
    check_command: command.default(['amtool', 'check-config']),
    /** Default: systemctl stop/start of the unit the node has: LambdaStack's alertmanager, or Debian's prometheus-alertmanager. */
    stop_command: command.optional(),
    start_command: command.optional(),
    ready_timeout_s: z.number().positive().default(60),
  })
  .strict();

export type AlertmanagerConfig = z.output<typeof alertmanagerSchema>;

/** LambdaStack writes alertmanager.service (roles/prometheus templates/alertmanager.service.j2); Debian ships prometheus-alertmanager. */
const UNITS = [
  { name: 'alertmanager', files: ['/etc/systemd/system/alertmanager.service', '/lib/systemd/system/alertmanager.service'] },
  { name: 'prometheus-alertmanager', files: ['/lib/systemd/system/prometheus-alertmanager.service', '/etc/systemd/system/prometheus-alertmanager.service'] },
];

/** The unit this node runs Alertmanager with; LambdaStack's name when none is installed yet. */
export function alertmanagerUnit(): { name: string; file?: string } {
  for (const u of UNITS) {
    const file = u.files.find((f) => existsSync(f));
    if (file) return { name: u.name, file };
  }
  return { name: 'alertmanager' };
}

export const CONFIG_ARTIFACT = 'config';
export const DATA_ARTIFACT = 'data';
export const SILENCES_ARTIFACT = 'silences.json';

interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual?: boolean;
}

/** A silence as GET /api/v2/silences returns it. */
export interface Silence {
  id: string;
  status: { state: 'active' | 'pending' | 'expired' };
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

/**
 * The seed's 2.3, plus the data directory so silences survive a restore. Alertmanager writes its
 * silences file only every --data.maintenance-interval (15 min) and at shutdown, so the directory
 * of a running server lags; the silences are also exported through the API at backup time and
 * the restore brings the server back to that list.
 */
export function alertmanager(cfg: AlertmanagerConfig): Component {
  const api = `${cfg.url}/api/v2`;

  async function call(method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; text: string }> {
    return httpText({
      method,
      url: new URL(url),
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      signal,
      timeoutMs: 30_000,
      // The failure rides along as the cause: a refused connection (a stopped Alertmanager) is told from the rest by it, not by its text.
      networkError: (f) => new UnavailableError(`Alertmanager at ${cfg.url}: ${f.code || f.message}`, { cause: f }),
    });
  }

  async function listSilences(signal?: AbortSignal): Promise<Silence[]> {
    const r = await call('GET', `${api}/silences`, undefined, signal);
    const text = r.text;
    if (!isOk(r.status)) throw new UnavailableError(`GET ${api}/silences: HTTP ${r.status}: ${text.trim().slice(0, 300)}`);
    return JSON.parse(text) as Silence[];
  }

  /**
   * Makes the running server's silences match the exported list: live ones that the data
   * directory lacked are created again (Alertmanager gives them new ids; it refuses to create a
   * silence under a given id), and ones that had been expired by then are expired again.
   */
  async function reconcile(ctx: RestoreContext, wanted: Silence[]): Promise<void> {
    const live = new Map((await listSilences(ctx.signal)).map((s) => [s.id, s]));
    const now = Date.now();
    let created = 0;
    let expired = 0;
    for (const s of wanted) {
      const current = live.get(s.id);
      if (s.status.state === 'expired' || Date.parse(s.endsAt) <= now) {
        if (current && current.status.state !== 'expired') {
          const r = await call('DELETE', `${api}/silence/${encodeURIComponent(s.id)}`, undefined, ctx.signal);
          if (!isOk(r.status)) throw new UnavailableError(`expiring silence ${s.id}: HTTP ${r.status}: ${r.text.trim()}`);
          expired++;
        }
        continue;
      }
      if (current && current.status.state !== 'expired') continue;
      const { matchers, startsAt, endsAt, createdBy, comment } = s;
      const r = await call('POST', `${api}/silences`, { matchers, startsAt, endsAt, createdBy, comment }, ctx.signal);
      const text = r.text;
      if (!isOk(r.status)) throw new UnavailableError(`re-creating silence ${s.id} (${comment}): HTTP ${r.status}: ${text.trim().slice(0, 300)}`);
      created++;
    }
    if (created || expired) ctx.progress(0, `silences newer than the data directory: ${created} created again, ${expired} expired again`);
  }

  async function validate(staged: Map<string, string>, ctx: RestoreContext, tree: StagedTree): Promise<void> {
    const stagedFile = staged.get(cfg.config_file);
    if (!stagedFile) return;
    // amtool reads the templates the config names: in the staged tree they are the set's own.
    const file = tree.run ? cfg.config_file : stagedFile;
    const r = await (tree.run ?? run)([...cfg.check_command, file], { signal: ctx.signal, check: false });
    if (r.code !== 0) {
      // amtool names the problem on stdout ("FAILED: undefined receiver ...") and only sums up on stderr.
      const why = firstLines((r.stdout + r.stderr).split(file).join(cfg.config_file), 4);
      throw new PreconditionError(`restored ${cfg.config_file} does not pass '${cfg.check_command.join(' ')}': ${why}; nothing was replaced`);
    }
  }

  return {
    name: 'alertmanager',
    restorePaths: [...cfg.config_paths, cfg.data_dir],
    async detect() {
      const unit = alertmanagerUnit();
      const found = await detectPaths('Alertmanager', [cfg.config_file, ...(unit.file ? [unit.file] : [])]);
      return found.present ? { present: true, detail: `Alertmanager at ${cfg.url}, unit ${unit.file ?? 'none'}, config ${cfg.config_file}, data ${cfg.data_dir}` } : found;
    },
    estimateBytes: () => duBytes([...cfg.config_paths, cfg.data_dir]),
    health: () => readyHealth(cfg.url, 'Alertmanager'),

    async backup(ctx) {
      await ctx.addTree(CONFIG_ARTIFACT, cfg.config_paths);
      await ctx.addTree(DATA_ARTIFACT, [cfg.data_dir]);
      // Exported after the data directory was read, so the list is the newer of the two.
      let silences: Silence[];
      try {
        silences = await listSilences(ctx.signal);
      } catch (err) {
        if (!(err instanceof UnavailableError) || !(err.cause as NetworkFailure | undefined)?.refused) throw err;
        // A stopped Alertmanager wrote its silences at shutdown: the data directory is current.
        ctx.log.warn(`Alertmanager is not running (${err.message}); its data directory alone holds the silences`);
        ctx.meta.silences = 'not exported: Alertmanager was not running';
        return { status: 'ok' };
      }
      await ctx.addStream(SILENCES_ARTIFACT, Readable.from([Buffer.from(JSON.stringify(silences, null, 2) + '\n')]));
      ctx.meta.silences = String(silences.filter((s) => s.status.state !== 'expired').length);
      return { status: 'ok' };
    },

    async restore(ctx) {
      const arch = (f: string) => `${ctx.part.node}/${ctx.part.component}/${f}`;
      const has = (f: string) => ctx.streamArtifact(f) !== undefined;
      let wanted: Silence[] | undefined;
      if (has(SILENCES_ARTIFACT)) {
        try {
          wanted = JSON.parse(await fsp.readFile(ctx.artifactFile(SILENCES_ARTIFACT), 'utf8')) as Silence[];
        } catch (err) {
          throw new IntegrityError(`${arch(SILENCES_ARTIFACT)} is not a silence list: ${messageOf(err)}`);
        }
      }
      // The config is checked and replaced while Alertmanager runs (it reads it only at start), so
      // a config amtool refuses leaves the server, its config and its data untouched.
      const config = ctx.treeArtifact(CONFIG_ARTIFACT);
      const data = ctx.treeArtifact(DATA_ARTIFACT);
      if (config) await ctx.restoreFiles({ archive: config, validate: (staged, tree) => validate(staged, ctx, tree) });
      if (!data) return;
      if (ctx.dryRun) {
        ctx.progress(0, `would stop Alertmanager, restore ${cfg.data_dir}, start it${wanted ? ` and bring back ${wanted.filter((s) => s.status.state !== 'expired').length} silence(s)` : ''}`);
        await ctx.restoreFiles({ archive: data });
        return;
      }

      // Stopped first: Alertmanager writes its silences file at shutdown and would overwrite ours.
      await run(cfg.stop_command ?? ['systemctl', 'stop', alertmanagerUnit().name], { signal: ctx.signal });
      await waitDown(cfg.url, 30, 'Alertmanager');
      let failure: unknown;
      try {
        await ctx.restoreFiles({ archive: data });
      } catch (err) {
        failure = err;
      }
      try {
        await run(cfg.start_command ?? ['systemctl', 'start', alertmanagerUnit().name]);
        await waitReady(cfg.url, cfg.ready_timeout_s, 'Alertmanager', ctx.signal);
      } catch (err) {
        throw new CommandError(`${failure ? `${messageOf(failure)}; ` : ''}Alertmanager did not come back: ${messageOf(err)}`);
      }
      if (failure) throw failure;
      ctx.restarted('Alertmanager (its data directory was replaced)');
      if (wanted) await reconcile(ctx, wanted);
    },
  };
}
