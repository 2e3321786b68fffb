import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { absolutePath, command } from '../../common/config.js';
import { PreconditionError } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import type { Component } from './component.js';
import { detectPaths, filesComponent, filesSchema, pathList } from './files.js';

export const haproxySchema = z
  .object({
    paths: pathList.default(['/etc/haproxy', '/etc/ssl/haproxy']),
    config_file: z.string().default('/etc/haproxy/haproxy.cfg'),
    /**
     * The config file to check is appended. Default: `haproxy -c -f` when haproxy is on PATH, else
     * the binary of LambdaStack's runc container (runc_rootfs), run on the host through its own loader.
     */
    check_command: command.optional(),
    /** LambdaStack runs HAProxy in a runc container from this rootfs (roles/haproxy_runc). */
    runc_rootfs: absolutePath.default('/opt/runc/haproxy/rootfs'),
    ...filesSchema,
  })
  .strict();

type Config = z.output<typeof haproxySchema>;

function onPath(name: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && existsSync(path.join(d, name)));
}

/**
 * How this node checks a config: LambdaStack's HAProxy is an Alpine (musl) build inside
 * /opt/runc/haproxy/rootfs, which a glibc host cannot exec directly; musl's dynamic loader can be
 * run as a program with the rootfs's libraries, so the check needs neither the container running
 * nor a staged file inside it.
 */
export function haproxyCheck(cfg: Config): { cmd: string[]; how: string } {
  if (cfg.check_command) return { cmd: cfg.check_command, how: 'check_command from agent.yaml' };
  if (onPath('haproxy')) return { cmd: ['haproxy', '-c', '-f'], how: 'haproxy on PATH' };
  const bin = path.join(cfg.runc_rootfs, 'usr/local/sbin/haproxy');
  if (existsSync(bin)) {
    const libDir = path.join(cfg.runc_rootfs, 'lib');
    const loader = existsSync(libDir) ? readdirSync(libDir).find((f) => /^ld-musl-.*\.so\.1$/.test(f)) : undefined;
    if (loader) {
      const libs = [libDir, path.join(cfg.runc_rootfs, 'usr/lib'), path.join(cfg.runc_rootfs, 'usr/local/lib')].join(':');
      return { cmd: [path.join(libDir, loader), '--library-path', libs, bin, '-c', '-f'], how: `the runc container's binary ${bin} through its musl loader` };
    }
    return { cmd: [bin, '-c', '-f'], how: `the runc container's binary ${bin}` };
  }
  return { cmd: ['haproxy', '-c', '-f'], how: `haproxy, which is neither on PATH nor at ${bin}` };
}

/** The seed's step 5: /etc/haproxy and its certificates; an invalid config is never put in place. */
export function haproxy(cfg: Config): Component {
  const files = filesComponent('haproxy', cfg.paths, {
    afterRestore: cfg.after_restore_command,
    async validate(staged, ctx, tree) {
      const cfgFile = staged.get(cfg.config_file);
      if (!cfgFile) return;
      const check = haproxyCheck(cfg);
      try {
        // In the staged tree the config is at its own path, and the certificates and error files
        // it names are the set's: a rebuilt node that lost them still passes. Without a
        // namespace, the staged config is checked against the live files.
        if (tree.run) await tree.run([...check.cmd, cfg.config_file], { signal: ctx.signal });
        else await run([...check.cmd, cfgFile], { signal: ctx.signal });
      } catch (err) {
        throw new PreconditionError(`restored ${cfg.config_file} does not pass '${check.cmd.join(' ')}' (${check.how}): ${(err as Error).message}; nothing was replaced`);
      }
    },
  });
  return {
    ...files,
    async detect() {
      const found = await detectPaths('HAProxy', [cfg.config_file]);
      if (!found.present) return found;
      const runc = existsSync(cfg.runc_rootfs) ? `, runc container ${path.dirname(cfg.runc_rootfs)}` : '';
      return { present: true, detail: `HAProxy: ${cfg.config_file}${runc}; config checked with ${haproxyCheck(cfg).how}` };
    },
  };
}
