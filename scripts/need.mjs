#!/usr/bin/env node
// Checks (and where it can, installs) what `npm run demo` or `npm test` needs, before anything
// runs, so a fresh machine gets either a working run or one message naming what is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

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
    'ansible-playbook': 'ansible-core',
    'ssh-keygen': 'openssh-client',
    // Exact metadata (docs/FORMAT.md): xattrs and ACLs are read and set with these, mtimes to the ns with python3.
    getfattr: 'attr',
    setfattr: 'attr',
    setfacl: 'acl',
    python3: 'python3',
    // Encrypted sets (docs/FORMAT.md "Format 4") are checked against the age reference tool.
    age: 'age',
    'age-keygen': 'age',
  },
}[purpose];

const has = (p) => (p.startsWith('/') ? existsSync(p) : spawnSync('sh', ['-c', `command -v ${p}`], { stdio: 'ignore' }).status === 0);
const missing = [...new Set(Object.entries(programs).filter(([p]) => !has(p)).map(([, pkg]) => pkg))];

if (missing.length) {
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() === 0 && has('apt-get')) {
    console.error(`lsbackup ${purpose}: installing ${missing.join(', ')} (${line})`);
    // Debian starts services on install; our tests start their own instances instead. The
    // policy-rc.d that stops it is taken away again (or the one the machine had put back), so
    // later installs on this machine start their services as usual.
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const policy = '/usr/sbin/policy-rc.d';
    const saved = existsSync(policy) ? readFileSync(policy) : undefined;
    try {
      writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
      execFileSync('sh', ['-c', `(apt-get update -q || true) && ${line}`], { stdio: 'inherit', env });
    } finally {
      if (saved) writeFileSync(policy, saved);
      else rmSync(policy, { force: true });
    }
  } else {
    console.error(`lsbackup ${purpose} needs Debian packages that are not installed: ${missing.join(', ')}\nRun as root: ${line}`);
    process.exit(1);
  }
}

if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) {
  console.error(`lsbackup ${purpose}: installing npm dependencies (npm ci)`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit', cwd: new URL('..', import.meta.url).pathname });
}
