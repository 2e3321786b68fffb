import { Option, type Command } from 'commander';
import { certsInit, certsIssue } from '../certs.js';
import { collect, print } from '../command-support.js';

export function registerCerts(program: Command): void {
  const certs = program.command('certs').description("the cluster's mTLS certificates");
  certs
    .command('init')
    .description('create the CA that signs every lsbackup certificate')
    .option('--dir <dir>', 'where the CA lives', '/etc/lsbackup/pki')
    .action(async (o: { dir: string }, cmd: Command) => {
      const files = await certsInit(o.dir);
      print(cmd, files, () => `created ${files.join(', ')}`);
    });
  certs
    .command('issue')
    .description('issue a key and certificate for an agent, the coordinator or an operator')
    .argument('<name>', 'certificate name (the node name for an agent)')
    .addOption(new Option('--role <role>', 'what the certificate may do').choices(['agent', 'coordinator', 'operator']).makeOptionMandatory())
    .option('--host <host>', 'address the holder is reached at, for the certificate (repeat)', collect, [])
    .option('--dir <dir>', 'where the CA lives and the files go', '/etc/lsbackup/pki')
    .action(async (name: string, o: { role: 'agent' | 'coordinator' | 'operator'; host: string[]; dir: string }, cmd: Command) => {
      const files = await certsIssue(o.dir, name, o.role, o.host);
      print(cmd, files, () => `issued ${files.join(', ')}`);
    });
}
