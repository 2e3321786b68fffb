import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const elasticsearchSchema = z
  .object({
    config_paths: pathList.default(['/etc/elasticsearch/elasticsearch.yml']),
    ...filesSchema,
  })
  .strict();

export function elasticsearch(cfg: z.output<typeof elasticsearchSchema>): Component {
  return filesComponent('elasticsearch', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
