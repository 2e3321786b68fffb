import path from 'node:path';
import { EsClient, type Auth, type Connection } from './client.js';
import type { Config } from './config.js';
import { configuredCaOf, layoutOf, nodeUrlOf, readNodeConfig, rooted, type Layout, type NodeConfig, type NodeEnv } from './lambdastack.js';

/** What this node says of Elasticsearch (layout, config file, address, credentials), read at every use. */

export interface NodeView {
  layout: Layout;
  configFile: string;
  config: NodeConfig;
  conn: Connection;
  /** Files and directories kept beside the snapshot. */
  configPaths: string[];
}


export function configPathsOf(cfg: Config, configFile: string): string[] {
  // A config file found by layout brings its directory, as LambdaStack's backup keeps /etc/elasticsearch/.
  const base = cfg.config_file ? [cfg.config_file] : [path.dirname(configFile)];
  return [...new Set([...base, ...cfg.extra_config_paths, ...(cfg.security_config_dir ? [cfg.security_config_dir] : [])])];
}


/** What the settings and the node say now: read again at every use. */
export async function view(cfg: Config, env: NodeEnv): Promise<NodeView> {
  const { layout, configFile, found } = layoutOf(env, cfg.config_file);
  const config: NodeConfig = found ? await readNodeConfig(configFile) : { problem: 'ENOENT' };
  const url = cfg.url ?? nodeUrlOf(config.settings, env).url;
  const caFile = cfg.ca_file ?? configuredCaOf(config.settings, layout, configFile, env) ?? rooted(env, layout.caFile);
  const auth: Auth =
    cfg.username && cfg.password_file
      ? { kind: 'basic', username: cfg.username, passwordFile: cfg.password_file }
      : cfg.api_key_file
        ? { kind: 'api_key', file: cfg.api_key_file }
        : cfg.client_cert_file && cfg.client_key_file
          ? { kind: 'client_cert', certFile: cfg.client_cert_file, keyFile: cfg.client_key_file, layout: false }
          : { kind: 'client_cert', certFile: rooted(env, layout.adminCertFile), keyFile: rooted(env, layout.adminKeyFile), layout: true };
  return { layout, configFile, config, conn: { url, caFile, auth, requestTimeoutSeconds: cfg.request_timeout_seconds }, configPaths: configPathsOf(cfg, configFile) };
}


export async function connect(cfg: Config, env: NodeEnv): Promise<{ v: NodeView; client: EsClient }> {
  const v = await view(cfg, env);
  return { v, client: new EsClient(v.conn) };
}
