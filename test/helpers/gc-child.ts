/**
 * A process that runs one garbage collection of a store and nothing else, for the kill test:
 * `node gc-child.js <target> <now ms> <grace ms>`. It says `go` just before it starts and `done`
 * when it has finished, so the test knows whether its SIGKILL landed in the middle.
 */
import { collectGarbage } from '../../coordinator/store-gc.js';

const [target, nowMs, graceMs] = process.argv.slice(2);
process.stdout.write('go\n');
await collectGarbage(target!, { graceMs: Number(graceMs), dryRun: false, now: new Date(Number(nowMs)) });
process.stdout.write('done\n');
