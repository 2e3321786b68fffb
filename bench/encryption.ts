/**
 * Bench item 14 (issue 15, encryption at rest): the same data backed up and restored in this
 * process, once unencrypted (format 3) and once encrypted to one age recipient (format 4), each
 * into a fresh target (first backups both: format 4.0 has no parent). The target is ≤ 1.10x:
 * ChaCha20-Poly1305 runs at GB/s per core, next to hashing, deflate and the file system.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { filesComponent } from '../agent/components/files.js';
import { makeKeys } from '../common/keys.js';
import { backupLocal, restoreLocal, runtimeOf } from '../test/helpers/harness.js';
import { KiB, MiB, makeTextSet } from './data.js';
import { fmtBytes } from './measure.js';
import type { BenchKit } from './scale-files.js';

export async function encryptionCost(kit: BenchKit): Promise<void> {
  const total = Math.max(64 * KiB, Math.round(512 * MiB * kit.scale));
  kit.log(`item 14: generating ${fmtBytes(total)} of text files`);
  const data = await makeTextSet(path.join(kit.tmp, 'src-enc', 'data'), total, { min: KiB, max: Math.min(16 * MiB, Math.floor(total / 4)) });
  const made = await makeKeys({ extra: [] });
  const stateDir = path.join(kit.tmp, 'state-enc');
  await fsp.mkdir(stateDir, { recursive: true });
  const rt = runtimeOf([filesComponent('haproxy', [data.root])], stateDir);
  const plainTarget = path.join(kit.tmp, 'sets-plain');
  const sealedTarget = path.join(kit.tmp, 'sets-sealed');
  const ids = { plain: '', sealed: '' };
  const backup = (target: string, which: 'plain' | 'sealed') => ({
    setup: () => kit.rmrf(target),
    run: () =>
      kit.inProcess(async () => {
        const b = await backupLocal(rt, target, [], which === 'sealed' ? { key: made.key } : { format: 3 });
        if (b.manifest.status !== 'complete') throw new Error(`backup ${b.manifest.status}: ${b.manifest.reasons.join('; ')}`);
        ids[which] = b.id;
      }),
  });
  const [sealed, plain] = await kit.rounds([backup(sealedTarget, 'sealed'), backup(plainTarget, 'plain')]);
  kit.timeRow(`14. back up ${fmtBytes(data.bytes)} text (${data.files} files) encrypted (age, format 4) vs unencrypted (format 3)`, sealed!.ms, plain!.ms, 1.1, '≤ 1.10', { oursCpu: sealed!.cpu, baseCpu: plain!.cpu, bytes: data.bytes });

  const wipe = async () => {
    await kit.rmrf(data.root);
    await kit.rmrf(path.join(stateDir, 'rollback'));
  };
  const restore = (target: string, which: 'plain' | 'sealed') => ({
    setup: wipe,
    run: () =>
      kit.inProcess(async () => {
        const { results } = await restoreLocal(rt, target, ids[which], which === 'sealed' ? { identity: made.identityText } : {});
        const bad = results.filter((x) => x.status !== 'ok');
        if (bad.length) throw new Error(`restore failed: ${bad.map((x) => x.reason).join('; ')}`);
      }),
  });
  const [rSealed, rPlain] = await kit.rounds([restore(sealedTarget, 'sealed'), restore(plainTarget, 'plain')]);
  kit.timeRow(`14. restore the same ${fmtBytes(data.bytes)}, encrypted vs unencrypted`, rSealed!.ms, rPlain!.ms, 1.1, '≤ 1.10', { oursCpu: rSealed!.cpu, baseCpu: rPlain!.cpu, bytes: data.bytes });
  await kit.rmrf(path.join(stateDir, 'rollback'));
}
