import { z } from 'zod';
import { absolutePath, command } from '../../../common/config.js';
import { filesSchema, pathList } from '../files.js';

/** The component's settings in agent.yaml (docs/OPERATIONS.md, elasticsearch). */

function isHttpsUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && !u.username && !u.password;
  } catch {
    return false;
  }
}

export const elasticsearchSchema = z
  .object({
    /**
     * Any node of the cluster; the snapshot and restore APIs act on the whole cluster. Default: this
     * node as LambdaStack binds it, https://<network.host or host name>:<http.port or 9200>.
     */
    url: z.string().refine(isHttpsUrl, 'expected an https:// URL without credentials in it (use username and password_file)').optional(),
    /**
     * The CA that signed the cluster's HTTP certificate; certificates are always checked. Default:
     * the config file's ssl.http.pemtrustedcas_filepath, else /etc/elasticsearch/lambdastack-root-ca.pem
     * (OpenSearch layout: /usr/share/opensearch/config/epiphany-root-ca.pem).
     */
    ca_file: absolutePath.optional(),
    username: z.string().min(1).optional(),
    /** Read at every use, so a rotated password needs no agent restart. */
    password_file: absolutePath.optional(),
    /** Holds `id:api_key` or its base64 form, as the create API key API returns it. */
    api_key_file: absolutePath.optional(),
    /**
     * A client certificate (mTLS) whose DN the security plugin knows, and its key. Without any
     * credentials set, the admin certificate LambdaStack creates is used:
     * /etc/elasticsearch/lambdastack-admin.pem and lambdastack-admin-key.pem.
     */
    client_cert_file: absolutePath.optional(),
    client_key_file: absolutePath.optional(),
    /**
     * The node's config file; it must list the snapshot location in path.repo. Default: LambdaStack's
     * /etc/elasticsearch/elasticsearch.yml, or Epiphany v2's /usr/share/opensearch/config/opensearch.yml
     * where that is the one on the node. Unset, the whole config directory is backed up (as
     * LambdaStack's own backup does: certificates, jvm.options); set, only this file and extra_config_paths.
     */
    config_file: absolutePath.optional(),
    /** More node files to keep beside config_file (jvm.options, certificates). */
    extra_config_paths: pathList.default([]),
    /** The OpenSearch/Open Distro security plugin's config directory (securityconfig/), backed up as files. */
    security_config_dir: absolutePath.optional(),
    /**
     * The cluster runs the OpenSearch/Open Distro security plugin (LambdaStack always does): its
     * index is kept out of snapshots and restores, and a restore never includes the global state.
     */
    security_plugin: z.boolean().default(true),
    /** Default: lsbackup-<es_cluster> (one repository per cluster of the inventory), lsbackup without that fact. */
    repository: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/, 'expected a lowercase repository name')
      .optional(),
    /**
     * Where the fs repository lives; every master and data node must mount it at this same path.
     * Defaults to <target>/_elasticsearch/<es_cluster> beside the backup sets on the shared location
     * (<target>/_elasticsearch without the es_cluster fact).
     */
    repository_location: absolutePath.optional(),
    /** user[:group] Elasticsearch runs as; a repository directory the agent creates is given to it. */
    repository_owner: z.string().min(1).optional(),
    /** Register the repository read-only: for a cluster that restores another cluster's snapshots. */
    readonly: z.boolean().default(false),
    /**
     * Let the agent add the location to path.repo in config_file, then run reload_command: one node
     * at a time (a lock beside the repository on the shared location), with shard allocation held
     * to primaries while the node is down, as LambdaStack's rolling upgrade does.
     */
    allow_config_edit: z.boolean().default(false),
    /** Restarts this node so it reads path.repo (e.g. systemctl restart elasticsearch). */
    reload_command: command.optional(),
    reload_timeout_seconds: z.number().positive().default(300),
    snapshot_timeout_seconds: z.number().positive().default(3600),
    restore_timeout_seconds: z.number().positive().default(3600),
    request_timeout_seconds: z.number().positive().default(60),
    ...filesSchema,
  })
  .strict()
  .refine((c) => [c.username, c.api_key_file, c.client_cert_file].filter(Boolean).length <= 1, {
    message: 'give one of username/password_file, api_key_file or client_cert_file/client_key_file',
    path: ['api_key_file'],
  })
  .refine((c) => !c.username === !c.password_file, { message: 'username and password_file go together', path: ['password_file'] })
  .refine((c) => !c.client_cert_file === !c.client_key_file, { message: 'client_cert_file and client_key_file go together', path: ['client_key_file'] })
  .refine((c) => !c.allow_config_edit || c.reload_command, { message: 'allow_config_edit needs a reload_command: Elasticsearch reads path.repo only at start', path: ['reload_command'] });

export type Config = z.output<typeof elasticsearchSchema>;
