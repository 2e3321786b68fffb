import path from 'node:path';
import type { Command } from 'commander';
import { absTarget } from '../command-support.js';

// The playbook code is loaded when one of these runs: it reads inventories and plans, which
// every other CLI call would otherwise load at its start.
const RUNS = [
  ['deploy', 'install or upgrade lsbackup on every host of the inventory (agents), and the coordinator and daily timer here, with ansible-playbook', async () => (await import('../deploy.js')).deploy],
  ['undeploy', 'take lsbackup off the hosts of the inventory and this master; backups and the CA stay', async () => (await import('../deploy.js')).undeploy],
] as const;

/** deploy and undeploy: the same options, one playbook each. */
export function registerDeploy(program: Command): void {
  for (const [name, what, load] of RUNS) {
    program
      .command(name)
      .description(what)
      .requiredOption('-b, --build-dir <dir>', "the cluster's LambdaStack build directory (inventory, manifest.yml, SSH key)")
      .requiredOption('-t, --target <path>', 'shared backup location, mounted at the same path on every host')
      .option('--pki <dir>', 'the cluster CA on this master', '/etc/lsbackup/pki')
      .option('--coordinator-address <ip>', "this master's address as the agents and operators see it")
      .option('--backup-key <file>', "deploy: the backup-key.json of 'lsbackup keys init' (made off the cluster); new sets are encrypted to its recipients")
      .option('--unencrypted', 'deploy: back up in the clear (no --backup-key)')
      .action(async (o: { buildDir: string; target: string; pki: string; coordinatorAddress?: string; backupKey?: string; unencrypted?: boolean }) => {
        const log = (line: string) => process.stdout.write(`${line}\n`);
        const run = await load();
        const r = await run({ buildDir: o.buildDir, target: absTarget(o.target), pki: path.resolve(o.pki), coordinatorAddress: o.coordinatorAddress, backupKey: o.backupKey, unencrypted: o.unencrypted, log });
        if (r.code !== 0) process.stderr.write(`${program.name()}: ${name} failed: ansible-playbook exited ${r.code} (its output is above)\n`);
        process.exitCode = r.code === 0 ? 0 : 1;
      });
  }
}
