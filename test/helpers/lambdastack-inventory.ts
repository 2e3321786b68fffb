/**
 * LambdaStack's inventory (test/fixtures/lambdastack) with a test's own hosts put into it: each
 * host line goes under the groups it serves, the fixture's made-up hosts leave every group in
 * `replaced` (so nothing is asked of hosts that do not exist), and all else stays as LambdaStack
 * wrote it: the 25 groups, their order, [all:vars].
 */
export function placeHosts(text: string, hosts: { line: string; groups: string[] }[], replaced: string[], rewrite: (line: string) => string = (l) => l): string {
  const out: string[] = [];
  let group = '';
  for (const line of text.split('\n')) {
    const head = /^\[([^\]]+)\]$/.exec(line.trim());
    if (head) {
      group = head[1]!;
      out.push(line);
      for (const h of hosts) if (h.groups.includes(group)) out.push(h.line);
      continue;
    }
    if (/^\S+ ansible_host=/.test(line) && replaced.includes(group)) continue;
    out.push(rewrite(line));
  }
  return out.join('\n');
}
