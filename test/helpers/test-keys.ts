import { makeKeys, type BackupKey } from '../../common/keys.js';
import { AgeOpener, parseIdentities } from '../../common/age.js';

/**
 * One operator key per test process, as `lsbackup keys init` makes it: for the encrypted round
 * trip each component test runs beside its unencrypted one (FORMAT.md "Format 4").
 */
let made: Promise<{ key: BackupKey; identity: string; opener: AgeOpener }> | undefined;

export function testKeys(): Promise<{ key: BackupKey; identity: string; opener: AgeOpener }> {
  made ??= makeKeys({ extra: [] }).then((m) => ({ key: m.key, identity: m.identityText, opener: new AgeOpener(parseIdentities(m.identityText, 'the test identity').secretKeys) }));
  return made;
}
