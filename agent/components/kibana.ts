import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const kibanaSchema = z
  .object({
    config_paths: pathList.default(['/etc/kibana/kibana.yml']),
    ...filesSchema,
  })
  .strict();

/** The seed's 1.6: Kibana keeps its state in Elasticsearch; only kibana.yml lives on the node. */
export function kibana(cfg: z.output<typeof kibanaSchema>): Component {
  return filesComponent('kibana', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
