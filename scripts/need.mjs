#!/usr/bin/env node
// Checks (and where it can, installs) what `npm run demo` or `npm test` needs, before anything
// runs, so a fresh machine gets either a working run or one message naming what is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const purpose = process.argv[2] ?? 'test';
const programs = {
  demo: { openssl: 'openssl', haproxy: 'haproxy' },
  test: {
    openssl: 'openssl',
    haproxy: 'haproxy',
    '/usr/lib/postgresql/15/bin/postgres': 'postgresql-15',
    'rabbitmq-server': 'rabbitmq-server',
    prometheus: 'prometheus',
    'prometheus-alertmanager': 'prometheus-alertmanager',
    amtool: 'prometheus-alertmanager',
    promtool: 'prometheus',
    ip: 'iproute2',
    'systemd-analyze': 'systemd',
    runuser: 'util-linux',
    nsenter: 'util-linux',
    'systemd-nspawn': 'systemd-container',
    debootstrap: 'debootstrap',
  },
}[purpose];

const has = (p) => (p.startsWith('/') ? existsSync(p) : spawnSync('sh', ['-c', `command -v ${p}`], { stdio: 'ignore' }).status === 0);
const missing = [...new Set(Object.entries(programs).filter(([p]) => !has(p)).map(([, pkg]) => pkg))];

if (missing.length) {
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() === 0 && has('apt-get')) {
    console.error(`lsbackup ${purpose}: installing ${missing.join(', ')} (${line})`);
    // Debian starts services on install; our tests start their own instances instead.
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && (apt-get update -q || true) && ${line}`], { stdio: 'inherit', env });
  } else {
    console.error(`lsbackup ${purpose} needs Debian packages that are not installed: ${missing.join(', ')}\nRun as root: ${line}`);
    process.exit(1);
  }
}

if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) {
  console.error(`lsbackup ${purpose}: installing npm dependencies (npm ci)`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit', cwd: new URL('..', import.meta.url).pathname });
}
