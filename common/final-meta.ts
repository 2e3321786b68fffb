import { existsSync, promises as fsp } from 'node:fs';
import { spawn } from 'node:child_process';
import { CommandError } from './errors.js';

export interface FinalMeta {
  path: string;
  /** Nanoseconds since the epoch, as the manifest's decimal string. */
  mtimeNs: string;
  /** Whether the entry records its own ACLs: those it does not record are inherited ones, and go. */
  keepAccessAcl: boolean;
  keepDefaultAcl: boolean;
}

/*
 * The last metadata pass of a restore: drop ACLs a new inode inherited from its directory's
 * default ACL but its entry does not record, then set the mtime. Why python3: Node 20 sets times
 * only as seconds in a double (fs.utimes/lutimes), which at today's epoch (1.7e9 s) keeps about 240 ns: every restored file came back 1-2 µs off. utimensat
 * is not exposed, `touch -h -d @s.ns` costs a process per file, and os.utime(ns=...,
 * follow_symlinks=False) is utimensat itself. Measured on a loaded 2-core test machine, 40,000
 * paths: one python3 pass (ACL drop and utime) 2.5 s, Node's lutimes one by one 3.8 s, touch 54 ms
 * per file (36 min); python3 starts in about 0.3 s there. Every LambdaStack node has python3:
 * Ansible, which deploys LambdaStack, needs it on every managed node.
 * Records go in NUL-separated (a path may hold any byte but NUL), in order: mtime, the ACL
 * names to drop if present (space-separated), path.
 */
const FINISH = `
import errno, os, sys
fields = sys.stdin.buffer.read().split(b"\\0")
failed = 0
for i in range(0, len(fields) - 2, 3):
    ns = int(fields[i])
    path = fields[i + 2]
    try:
        for name in fields[i + 1].split():
            try:
                os.removexattr(path, name, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    raise
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
    except OSError as e:
        failed += 1
        if failed <= 3:
            sys.stderr.write("%s: %s\\n" % (os.fsdecode(path), e.strerror))
sys.exit(1 if failed else 0)
`;

/**
 * The system's python3 first (what Ansible runs on the node): a python3 on PATH may be a version
 * manager's shim (pyenv), a shell script that takes a second or more to start under load.
 */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const ACCESS_ACL = 'system.posix_acl_access';
const DEFAULT_ACL = 'system.posix_acl_default';

function viaPython(items: FinalMeta[]): Promise<'done' | 'no python3'> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', FINISH], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve('no python3') : reject(new CommandError(`python3: ${err.message}`))));
    child.on('close', (code) => (code === 0 ? resolve('done') : reject(new CommandError(`setting restored mtimes and ACLs failed: ${stderr.trim().split('\n').join(' | ') || `python3 exit ${code}`}`))));
    child.stdin.on('error', () => undefined);
    const drop = (i: FinalMeta) => [i.keepAccessAcl ? '' : ACCESS_ACL, i.keepDefaultAcl ? '' : DEFAULT_ACL].join(' ');
    child.stdin.end(Buffer.concat(items.flatMap((i) => [Buffer.from(`${i.mtimeNs}\0${drop(i)}\0`), Buffer.from(i.path), Buffer.from('\0')])));
  });
}

/** Seconds as a double: what Node can set, to the microsecond. */
const secondsOf = (ns: string) => Number(BigInt(ns) / 1000n) / 1e6;

/**
 * Gives each path (a symlink itself, not what it points to) its recorded mtime and atime, exactly,
 * in the order given (a directory after what is inside it), after dropping inherited ACLs.
 * Without python3, times to the microsecond and inherited ACLs kept, and `onApproximate` is told.
 */
export async function finishMetadata(items: FinalMeta[], onApproximate?: (line: string) => void): Promise<void> {
  if (items.length === 0) return;
  if ((await viaPython(items)) === 'done') return;
  onApproximate?.('python3 not found: restored mtimes are exact to the microsecond only, and ACLs inherited from a directory stay');
  for (const i of items) {
    const t = secondsOf(i.mtimeNs);
    await fsp.lutimes(i.path, t, t);
  }
}
