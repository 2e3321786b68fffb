import { z } from 'zod';
import { command } from '../../common/config.js';
import { PreconditionError } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const haproxySchema = z
  .object({
    paths: pathList.default(['/etc/haproxy', '/etc/ssl/haproxy']),
    config_file: z.string().default('/etc/haproxy/haproxy.cfg'),
    /** The config file to check is appended. */
    check_command: command.default(['haproxy', '-c', '-f']),
    ...filesSchema,
  })
  .strict();

/** The seed's step 5: /etc/haproxy and its certificates; an invalid config is never put in place. */
export function haproxy(cfg: z.output<typeof haproxySchema>): Component {
  return filesComponent('haproxy', cfg.paths, {
    markers: [cfg.config_file],
    afterRestore: cfg.after_restore_command,
    async validate(staged, ctx) {
      const cfgFile = staged.get(cfg.config_file);
      if (!cfgFile) return;
      try {
        await run([...cfg.check_command, cfgFile], { signal: ctx.signal });
      } catch (err) {
        throw new PreconditionError(`restored ${cfg.config_file} does not pass '${cfg.check_command.join(' ')}': ${(err as Error).message}; nothing was replaced`);
      }
    },
  });
}
