#!/usr/bin/env node
import { Command } from 'commander';
import { VERSION } from '../common/commit.js';
import { exitOnStartError, stopOnSignals } from '../common/daemon.js';
import { mkdirPrivate } from '../common/fsutil.js';
import { createLogger } from '../common/log.js';
import { serverCredentials } from '../common/tls.js';
import { loadAgentConfig } from './config.js';
import { createComponents } from './components/index.js';
import { startAgentServer } from './server.js';

const program = new Command('lsbackup-agent')
  .description('lsbackup agent: backs up and restores the components of this node')
  .requiredOption('-c, --config <file>', 'agent config (YAML)')
  .option('--insecure', 'no TLS (testing only; logs a warning at every start)')
  .version(VERSION)
  // A usage mistake is an input error like a bad config: exit 2, which systemd does not restart.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .parse();

const opts = program.opts<{ config: string; insecure?: boolean }>();

try {
  const cfg = loadAgentConfig(opts.config);
  const insecure = Boolean(opts.insecure || cfg.insecure);
  const log = createLogger('lsbackup-agent', cfg.log_level).child({ node: cfg.node });
  const creds = serverCredentials(cfg.tls, insecure);
  await mkdirPrivate(cfg.state_dir);
  const rt = { node: cfg.node, version: VERSION, stateDir: cfg.state_dir, compressionLevel: cfg.compression_level, components: createComponents(cfg.components), log };
  const { server, port } = await startAgentServer(rt, cfg.listen, creds, insecure);
  if (insecure) log.warn('running WITHOUT TLS (--insecure): any client that reaches this port can read and overwrite backups');
  log.info(`listening on ${cfg.listen.replace(/:\d+$/, '')}:${port}, components: ${[...rt.components.keys()].join(', ') || 'none'}`);
  stopOnSignals(server, log);
} catch (err) {
  exitOnStartError('lsbackup-agent', err);
}
