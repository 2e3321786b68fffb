import { promises as fsp } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { PreconditionError } from '../../common/errors.js';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const kibanaSchema = z
  .object({
    config_paths: pathList.default(['/etc/kibana/kibana.yml']),
    ...filesSchema,
  })
  .strict();

/**
 * The seed's 1.6: Kibana keeps its state (saved objects, dashboards) in Elasticsearch's .kibana
 * indices, which the elasticsearch part's snapshot holds (restore them with indices=.kibana*);
 * only kibana.yml and its neighbours live on the node.
 */
export function kibana(cfg: z.output<typeof kibanaSchema>): Component {
  return filesComponent('kibana', cfg.config_paths, {
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
}
