import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import { shown } from '../common/quote.js';
import { run } from '../common/exec.js';
import { mkdirPrivate } from '../common/fsutil.js';
import type { Role } from '../common/tls.js';

/**
 * The cluster's own small CA, made with openssl: a CA, then one key and certificate per agent,
 * coordinator and operator. The certificate's OU carries the role the services authorize.
 */
export async function certsInit(dir: string, days = 3650): Promise<string[]> {
  await mkdirPrivate(dir);
  const key = path.join(dir, 'ca.key');
  const crt = path.join(dir, 'ca.crt');
  if (await fsp.stat(crt).catch(() => undefined)) throw new InputError(`${crt} exists already; a new CA would orphan every issued certificate`);
  await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', String(days), '-subj', '/CN=lsbackup CA/O=lsbackup', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await fsp.chmod(key, 0o600);
  await fsp.chmod(crt, 0o600);
  return [key, crt];
}

export async function certsIssue(dir: string, name: string, role: Role, hosts: string[], days = 825): Promise<string[]> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new InputError(`certificate name '${shown(name)}' may hold only letters, digits, '.', '_' and '-'`);
  if (!['agent', 'coordinator', 'operator'].includes(role)) throw new InputError(`role '${role}' is not one of agent, coordinator, operator`);
  const caKey = path.join(dir, 'ca.key');
  const caCrt = path.join(dir, 'ca.crt');
  if (!(await fsp.stat(caKey).catch(() => undefined))) throw new InputError(`no CA in ${dir}: run 'lsbackup certs init --dir ${dir}' first`);
  const key = path.join(dir, `${name}.key`);
  const crt = path.join(dir, `${name}.crt`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  // The name is always a SAN: clients that reach a daemon by IP verify it by name (see common/proto.ts).
  const san = [...new Set([name, ...hosts])].map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`));
  await fsp.writeFile(ext, [`subjectAltName=${san.join(',')}`, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', ''].join('\n'));
  try {
    await run(['openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}/OU=${role}/O=lsbackup`]);
    await run(['openssl', 'x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-CAcreateserial', '-out', crt, '-days', String(days), '-extfile', ext]);
    // openssl creates the certificate and the CA's serial file with the umask's mode (0644);
    // pki/ is owner-only throughout, like the set directories.
    for (const f of [key, crt, path.join(dir, 'ca.srl')]) await fsp.chmod(f, 0o600);
  } finally {
    await fsp.rm(csr, { force: true });
    await fsp.rm(ext, { force: true });
  }
  return [key, crt];
}
