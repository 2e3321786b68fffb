#!/usr/bin/env node
import { VERSION } from '../common/commit.js';
import { daemonOptions, exitOnStartError, listenError, stopOnSignals } from '../common/daemon.js';
import { mkdirPrivate } from '../common/fsutil.js';
import { createLogger } from '../common/log.js';
import { serverCredentials } from '../common/tls.js';
import { loadAgentConfig } from './config.js';
import { createComponents } from './components/index.js';
import { startAgentServer } from './server.js';
import { recoverAtStart } from './recovery.js';
import { pruneRollbacks } from './rollbacks.js';
import { Estimates } from './estimates.js';

const opts = daemonOptions('lsbackup-agent', 'lsbackup agent: backs up and restores the components of this node');

try {
  const cfg = loadAgentConfig(opts.config);
  const insecure = Boolean(opts.insecure || cfg.insecure);
  const log = createLogger('lsbackup-agent', cfg.log_level).child({ node: cfg.node });
  const creds = serverCredentials(cfg.tls, insecure);
  await mkdirPrivate(cfg.state_dir);
  // A previous run of this agent may have been killed half-way: its temp files, half copies and
  // orphan artifacts go before anything new starts.
  await recoverAtStart(cfg.state_dir, log);
  await pruneRollbacks(cfg.state_dir, cfg.rollback_keep_days, log);
  const { all, configured } = createComponents(cfg.components, cfg.detect);
  const rt = { node: cfg.node, version: VERSION, stateDir: cfg.state_dir, compressionLevel: cfg.compression_level, rollbackKeepDays: cfg.rollback_keep_days, estimates: new Estimates(), components: all, configured, log };
  const { server, port } = await startAgentServer(rt, cfg.listen, creds, insecure).catch((err: unknown) => {
    throw listenError(err, cfg.listen, opts.config);
  });
  if (insecure) log.warn('running WITHOUT TLS (--insecure): any client that reaches this port can read and overwrite backups');
  log.info(`listening on ${cfg.listen.replace(/:\d+$/, '')}:${port}, components: ${[...configured].join(', ') || 'none configured'}${cfg.detect ? ' (the others are looked for on this node at each request)' : ''}`);
  stopOnSignals(server, log);
} catch (err) {
  exitOnStartError('lsbackup-agent', err);
}
