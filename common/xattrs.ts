import { CommandError } from './errors.js';
import { firstLines, run } from './exec.js';

/** An entry's extended attributes: name to base64 value (FORMAT.md, `xattrs`). */
export type Xattrs = Record<string, string>;

/** What a tree's attributes are read with; the C locale keeps getfattr's quoting to ASCII escapes. */
const GETFATTR = ['getfattr', '-R', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '-h', '-P'];
const C_LOCALE = { ...process.env, LC_ALL: 'C' };

/** getfattr and setfattr write a name's backslash, newline and other control bytes as \ooo (other bytes as they are). */
function unquote(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function quote(s: string): string {
  return s.replace(/[\x00-\x20\\\x7f]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

/** Parses `getfattr -d -e base64` output: `# file: <path>` blocks of `name=0s<base64>` lines. */
export function parseDump(text: string): Map<string, Xattrs> {
  const out = new Map<string, Xattrs>();
  let current: Xattrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = {};
      out.set(unquote(line.slice(8)), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const value = line.slice(eq + 1);
      current[unquote(line.slice(0, eq))] = value.startsWith('0s') ? value.slice(2) : '';
    }
  }
  return out;
}

/**
 * Every file, directory and symlink under `root` that has extended attributes (ACLs and SELinux
 * labels included), read by one getfattr for the whole tree: one process per file would cost
 * more than the archiving. Symlinks are not followed. undefined when getfattr is not installed.
 */
export async function readTreeXattrs(root: string): Promise<Map<string, Xattrs> | undefined> {
  let r;
  try {
    r = await run([...GETFATTR, '--', root], { env: C_LOCALE, check: false });
  } catch (err) {
    if (err instanceof CommandError && /command not found/.test(err.message)) return undefined;
    throw err;
  }
  // A file removed while the tree is walked (a Grafana session, a journal) is not in the archive either.
  const problems = r.stderr.split('\n').filter((l) => l.trim() && !/No such file or directory$/.test(l));
  if (r.code !== 0 && (problems.length > 0 || !r.stderr.trim())) {
    throw new CommandError(`getfattr -R ${root} failed (exit ${r.code}): ${firstLines(problems.join('\n') || r.stdout)}`);
  }
  return parseDump(r.stdout);
}

/** The dump setfattr --restore reads, for the given paths (it skips `name=0s` with nothing after it: empty values are written `""`). */
export function formatDump(items: { path: string; xattrs: Xattrs }[]): string {
  return items
    .map(({ path, xattrs }) => `# file: ${quote(path)}\n${Object.entries(xattrs).map(([k, v]) => `${k}=${v ? `0s${v}` : '""'}\n`).join('')}\n`)
    .join('');
}

/**
 * Sets the recorded attributes on the given paths (not through symlinks) with one setfattr.
 * false when setfattr is not installed, so the caller can say what was not restored.
 */
export async function writeXattrs(items: { path: string; xattrs: Xattrs }[]): Promise<boolean> {
  const some = items.filter((i) => Object.keys(i.xattrs).length > 0);
  if (some.length === 0) return true;
  try {
    await run(['setfattr', '-h', '--restore=-'], { env: C_LOCALE, input: formatDump(some) });
    return true;
  } catch (err) {
    if (err instanceof CommandError && /command not found/.test(err.message)) return false;
    throw err;
  }
}
