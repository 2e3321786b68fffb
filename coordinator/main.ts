#!/usr/bin/env node
import { StopRegistry } from '../common/stops.js';
import { daemonOptions, exitOnStartError, listenError, stopOnSignals } from '../common/daemon.js';
import { createLogger } from '../common/log.js';
import { clientCredentials, serverCredentials } from '../common/tls.js';
import { AgentPool } from './agents.js';
import { loadCoordinatorConfig } from './config.js';
import { Metrics } from './metrics.js';
import { startCoordinatorServer } from './server.js';
import { readBackupKey } from '../common/keys.js';
import { InputError, messageOf } from '../common/errors.js';

const opts = daemonOptions('lsbackup-coordinator', 'lsbackup coordinator: reads the inventory, fans work out to the agents, commits backup sets');

try {
  const cfg = loadCoordinatorConfig(opts.config);
  const insecure = Boolean(opts.insecure || cfg.insecure);
  const log = createLogger('lsbackup-coordinator', cfg.log_level);
  const creds = serverCredentials(cfg.tls, insecure);
  // The coordinator's own certificate (role coordinator) is also what agents accept.
  const pool = new AgentPool(clientCredentials(cfg.tls, insecure), cfg.agent_timeout_s * 1000);
  const metrics = cfg.metrics_listen ? new Metrics() : undefined;
  const backupKey = cfg.backup_key_file
    ? await readBackupKey(cfg.backup_key_file).catch((err: unknown) => {
        throw new InputError(`config file ${opts.config}: key 'backup_key_file': ${messageOf(err)}`);
      })
    : undefined;
  const { server, port } = await startCoordinatorServer({ pool, log, agentPort: cfg.agent_port, spaceMargin: cfg.space_margin, storeGraceMs: cfg.store_grace_s * 1000, setFormat: cfg.set_format, backupKey, unencrypted: cfg.unencrypted, insecure, metrics, stops: new StopRegistry() }, cfg.listen, creds).catch((err: unknown) => {
    throw listenError(err, cfg.listen, opts.config);
  });
  if (metrics && cfg.metrics_listen) {
    await metrics.serve(cfg.metrics_listen);
    log.info(`metrics on http://${cfg.metrics_listen}/metrics`);
  }
  if (backupKey) log.info(`new sets are encrypted to ${backupKey.recipients.join(', ')} (key ${backupKey.keyId.slice(0, 16)}…)`);
  else if (cfg.unencrypted) log.warn('new sets are NOT encrypted (unencrypted: true)');
  else log.warn(`no backup_key_file in ${opts.config}: backups are refused until one is set ('lsbackup keys init') or unencrypted: true says otherwise`);
  if (insecure) log.warn('running WITHOUT TLS (--insecure): anyone who reaches this port can start backups and restores');
  log.info(`listening on ${cfg.listen.replace(/:\d+$/, '')}:${port}`);
  stopOnSignals(server, log);
} catch (err) {
  exitOnStartError('lsbackup-coordinator', err);
}
