import { existsSync, promises as fsp } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { PreconditionError } from '../../common/errors.js';
import type { Component } from './component.js';
import { detectPaths, filesComponent, filesSchema, pathList } from './files.js';

export const kibanaSchema = z
  .object({
    /**
     * Default: the whole config directory the node has, as LambdaStack's own backup role takes it:
     * /etc/kibana (LambdaStack, Open Distro Kibana) or /usr/share/opensearch-dashboards/config
     * (Epiphany 2, OpenSearch Dashboards).
     */
    config_paths: pathList.optional(),
    ...filesSchema,
  })
  .strict();

const LAYOUTS = [
  { dir: '/etc/kibana', file: '/etc/kibana/kibana.yml', what: 'Kibana' },
  { dir: '/usr/share/opensearch-dashboards/config', file: '/usr/share/opensearch-dashboards/config/opensearch_dashboards.yml', what: 'OpenSearch Dashboards' },
];

/**
 * The seed's 1.6: Kibana keeps its state (saved objects, dashboards) in Elasticsearch's .kibana
 * indices, which the elasticsearch part's snapshot holds (restore them with indices=.kibana*);
 * only its config directory lives on the node.
 */
export function kibana(cfg: z.output<typeof kibanaSchema>): Component {
  const layout = LAYOUTS.find((l) => existsSync(l.dir)) ?? LAYOUTS[0]!;
  const paths = cfg.config_paths ?? [layout.dir];
  const files = filesComponent('kibana', paths, {
    afterRestore: cfg.after_restore_command,
    async validate(staged) {
      // Kibana refuses to start on a config it cannot parse; keep the working one instead.
      for (const [orig, file] of staged) {
        if (!/\.ya?ml$/.test(orig)) continue;
        const doc = YAML.parseDocument(await fsp.readFile(file, 'utf8'));
        if (doc.errors.length > 0) throw new PreconditionError(`restored ${orig} is not valid YAML (${doc.errors[0]!.message.split('\n')[0]}); nothing was replaced`);
      }
    },
  });
  return {
    ...files,
    async detect() {
      const found = await detectPaths(layout.what, cfg.config_paths ?? [layout.file]);
      return found.present ? { present: true, detail: `${layout.what}: ${paths.join(', ')}` } : found;
    },
  };
}
