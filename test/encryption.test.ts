/**
 * Format 4, encrypted sets (FORMAT.md "Format 4"), in-process with the real files component and
 * Debian's `age`: an exact round trip with either of two identities; nothing readable in the
 * target (a known password, a private-key line, a file name); a wrong identity refused in one
 * line with nothing written; every piece opened by `age -d`; dedup across sets of one key; a
 * rotation that keeps old sets readable; a changed piece, a forged piece and a manifest whose
 * SHA-256s were recomputed all refused; prune keeps what encrypted sets name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { filesComponent } from '../agent/components/files.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { treeState as snapshotTree } from './helpers/tree-state.js';
import { AgeOpener, AgeSealer, parseIdentities } from '../common/age.js';
import { makeKeys } from '../common/keys.js';
import { MANIFEST, manifestDigest, setDir } from '../common/manifest.js';
import { storeOfTarget, storedFiles, PIECE_SIZE } from '../common/store.js';
import { verifySet } from '../coordinator/sets.js';
import { collectGarbage } from '../coordinator/store-gc.js';

const PASSWORD = 'Sup3r-S3cret-pg-password-9f2c';
const KEY_LINE = 'MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDl0lsbackuptest';
const SECRET_NAME = 'customer-acme-prod.pem';

function requireAge(): void {
  try {
    execFileSync('age', ['--version'], { stdio: 'pipe' });
  } catch {
    assert.fail("Debian's age CLI is needed for this test: apt-get install age");
  }
}

/** An identity as `age-keygen` writes it: the second, escrow, identity. */
function ageKeygen(dir: string, name: string): { file: string; recipient: string } {
  const file = path.join(dir, name);
  execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
  const recipient = /# public key: (age1[0-9a-z]+)/.exec(readFileSync(file, 'utf8'))![1]!;
  return { file, recipient };
}

/** Every byte under `dir`, gzip members unpacked where they are gzip: what someone with the target can read. */
async function readableText(dir: string): Promise<string> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(p.slice(dir.length));
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const data = await fsp.readFile(p);
        out.push(data.toString('latin1'));
        try {
          out.push(gunzipSync(data).toString('latin1'));
        } catch {
          // not gzip: its bytes are above
        }
      }
    }
  };
  await walk(dir);
  return out.join('\n');
}

const pieceCount = (target: string) => [...storedFiles(storeOfTarget(target))].length;

test('format 4: encrypted round trip with either recipient, nothing readable in the target, wrong identity and tampering refused, rotation and prune', async () => {
  requireAge();
  const keysDir = tempDir('enc-keys');
  const escrow = ageKeygen(keysDir, 'escrow.txt');
  const made = await makeKeys({ extra: [escrow.recipient] });
  const identityA = made.identityText;
  await fsp.writeFile(path.join(keysDir, 'identity.txt'), identityA, { mode: 0o600 });
  const key = made.key;
  assert.equal(key.recipients.length, 2);

  const root = tempDir('enc-src');
  const conf = path.join(root, 'conf');
  await fsp.mkdir(path.join(conf, 'certs'), { recursive: true });
  await fsp.writeFile(path.join(conf, 'pgpass'), `*:5432:*:postgres:${PASSWORD}\n`, { mode: 0o600 });
  await fsp.writeFile(path.join(conf, 'certs', SECRET_NAME), `-----BEGIN PRIVATE KEY-----\n${KEY_LINE}\n-----END PRIVATE KEY-----\n`, { mode: 0o600 });
  for (let i = 0; i < 50; i++) await fsp.writeFile(path.join(conf, `f${i}.cfg`), `option_${i} = ${'v'.repeat(i)}\n`);
  await fsp.writeFile(path.join(conf, 'big.bin'), Buffer.alloc(PIECE_SIZE + 4321, 7));
  await fsp.symlink('f1.cfg', path.join(conf, 'current.cfg'));
  await fsp.link(path.join(conf, 'f2.cfg'), path.join(conf, 'f2-link.cfg'));
  await fsp.utimes(path.join(conf, 'f3.cfg'), 1_600_000_000.123456, 1_600_000_000.123456);
  const before = await snapshotTree(conf);
  const rt = runtimeOf([filesComponent('haproxy', [conf])]);
  const target = tempDir('enc-target');
  const openerA = new AgeOpener(parseIdentities(identityA, 'A').secretKeys);

  // 1. The set: format 4, encrypted listings and meta, clear piece lists, the clear record without meta.
  const first = await backupLocal(rt, target, [], { key, opener: openerA });
  assert.equal(first.manifest.status, 'complete', first.manifest.reasons.join('; '));
  assert.equal(first.manifest.format, 'lsbackup-set/4');
  assert.deepEqual(first.manifest.encryption, { recipients: key.recipients, keyId: key.keyId });
  const written = JSON.parse(readFileSync(path.join(setDir(target, first.id), MANIFEST), 'utf8')) as { integrity: { mac?: string } };
  assert.match(written.integrity.mac ?? '', /^[0-9a-f]{64}$/);
  const part = first.manifest.parts[0]!;
  assert.deepEqual(part.artifacts.map((a) => [path.basename(a.path), a.kind]).sort(), [['files.pieces.gz', 'pieces'], ['files.tree.jsonl.gz.age', 'tree'], ['meta.json.age', 'meta']]);
  assert.deepEqual(part.meta, {});
  assert.ok(part.entries.some((e) => e.path.endsWith(SECRET_NAME)), 'the listing opens with the identity');

  // 2. Nothing readable: not the password, not the key line, not a file name; every file owner-only.
  const visible = await readableText(target);
  for (const secret of [PASSWORD, KEY_LINE, SECRET_NAME, 'option_7', conf]) assert.ok(!visible.includes(secret), `'${secret}' is readable in the target`);
  const modes = execFileSync('find', [target, '-type', 'f', '-not', '-perm', '0600'], { encoding: 'utf8' }).trim();
  assert.equal(modes, '', `files not 0600: ${modes}`);

  // 3. Debian's age opens every piece and the listing with either identity; zcat gives the bytes.
  const pgpassLine = part.entries.find((e) => e.path.endsWith('pgpass'))!;
  const pieceFile = storeOfTarget(target).pieceFile(pgpassLine.pieces![0]!);
  for (const id of [path.join(keysDir, 'identity.txt'), escrow.file]) {
    const plain = gunzipSync(execFileSync('age', ['-d', '-i', id, pieceFile]));
    assert.equal(plain.toString(), `*:5432:*:postgres:${PASSWORD}\n`);
  }
  const listingFile = path.join(setDir(target, first.id), part.artifacts.find((a) => a.kind === 'tree')!.path);
  assert.ok(gunzipSync(execFileSync('age', ['-d', '-i', escrow.file, listingFile])).toString().includes(SECRET_NAME));
  const metaFile = path.join(setDir(target, first.id), part.artifacts.find((a) => a.kind === 'meta')!.path);
  assert.doesNotThrow(() => JSON.parse(execFileSync('age', ['-d', '-i', escrow.file, metaFile], { encoding: 'utf8' })));

  // 4. Round trip with the operator's identity, then with the escrow identity (which names no key id: --key-id).
  // What a restore killed while it held decrypted streams left in the state dir goes at the next run; this one leaves none.
  await fsp.mkdir(path.join(rt.stateDir, 'opened-killed'));
  await fsp.writeFile(path.join(rt.stateDir, 'opened-killed', '0'), 'a decrypted dump');
  await fsp.rm(conf, { recursive: true });
  const r1 = await restoreLocal(rt, target, first.id, { identity: identityA });
  assert.equal(r1.results[0]!.status, 'ok', r1.results[0]!.reason);
  assert.deepEqual(await snapshotTree(conf), before);
  assert.deepEqual((await fsp.readdir(rt.stateDir)).filter((n) => n.startsWith('opened-')), []);
  await fsp.rm(conf, { recursive: true });
  const escrowText = readFileSync(escrow.file, 'utf8');
  await assert.rejects(restoreLocal(rt, target, first.id, { identity: escrowText }), /does not name.*--key-id/);
  const r2 = await restoreLocal(rt, target, first.id, { identity: escrowText, keyIds: [key.keyId] });
  assert.equal(r2.results[0]!.status, 'ok', r2.results[0]!.reason);
  assert.deepEqual(await snapshotTree(conf), before);

  // 5. A wrong identity: one line, nothing written; without one: one line saying how.
  const stranger = ageKeygen(keysDir, 'stranger.txt');
  await fsp.rm(conf, { recursive: true });
  for (const [identity, why] of [
    [readFileSync(stranger.file, 'utf8'), /is not encrypted to this identity/],
    ['', /is encrypted \(to age1.*pass --identity/],
  ] as const) {
    await assert.rejects(restoreLocal(rt, target, first.id, { identity, keyIds: [key.keyId] }), (err: Error) => {
      assert.match(err.message, why);
      assert.ok(!err.message.includes('\n'), err.message);
      return true;
    });
    assert.equal(await fsp.stat(conf).catch(() => undefined), undefined, 'a refused restore writes nothing');
  }
  await restoreLocal(rt, target, first.id, { identity: identityA });

  // 6. Dedup: a second set under the same key writes no piece (4.0 reads every file, writes none).
  const pieces1 = pieceCount(target);
  const second = await backupLocal(rt, target, [], { key });
  assert.equal(second.manifest.status, 'complete', second.manifest.reasons.join('; '));
  assert.equal(pieceCount(target), pieces1, 'no piece written twice');

  // 7. Rotation: a new key for the same identity; new sets store everything again under new ids, old sets stay readable.
  const rotated = await makeKeys({ identityText: identityA, extra: [] });
  const third = await backupLocal(rt, target, [], { key: rotated.key });
  assert.equal(third.manifest.encryption?.keyId, rotated.key.keyId);
  assert.equal(pieceCount(target), pieces1 * 2, 'a new key shares no piece with the old');
  for (const id of [first.id, third.id]) {
    await fsp.rm(conf, { recursive: true });
    const r = await restoreLocal(rt, target, id, { identity: rotated.identityText });
    assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
    assert.deepEqual(await snapshotTree(conf), before);
  }

  // 8. Verify without the identity: MAC, artifacts, pieces exist.
  const ok = await verifySet(target, first.id, () => undefined, { backupKey: key });
  assert.equal(ok.status, 'ok', (ok.reasons ?? []).join('; '));
  const deep = await verifySet(target, first.id, () => undefined, { identity: identityA });
  assert.equal(deep.status, 'ok', (deep.reasons ?? []).join('; '));

  // 9. Tampering. (a) A changed byte in a piece: age's tag refuses it.
  const pieceBytes = await fsp.readFile(pieceFile);
  const flipped = Buffer.from(pieceBytes);
  flipped[flipped.length - 20]! ^= 1;
  await fsp.writeFile(pieceFile, flipped);
  const failedWith = async (why: RegExp) => {
    const r = await restoreLocal(rt, target, first.id, { identity: identityA });
    assert.equal(r.results[0]!.status, 'failed');
    assert.match(r.results[0]!.reason, why);
    assert.deepEqual(await snapshotTree(conf), before, 'a refused part replaces nothing');
  };
  await failedWith(/pgpass.*(changed or damaged|fails its authentication)/);
  // verify with the identity reads the piece and names it with the file; without, it can only see the piece is there.
  const named = await verifySet(target, first.id, () => undefined, { identity: identityA });
  assert.equal(named.status, 'failed');
  assert.match((named.reasons ?? []).join('\n'), /pgpass: piece [0-9a-f]{64} was changed or damaged/);
  // (b) A piece forged with the public recipients (a valid age file, other content): its keyed id refuses it.
  await fsp.writeFile(pieceFile, new AgeSealer(key.recipients).seal(gzipSync(Buffer.from(`*:5432:*:postgres:${'A'.repeat(PASSWORD.length)}\n`))));
  await failedWith(/pgpass.*does not hash to its name/);
  await fsp.writeFile(pieceFile, pieceBytes);
  // Without the identity, verify reads the clear piece lists: a piece gone from the store is named.
  await fsp.rename(pieceFile, `${pieceFile}.away`);
  const gone = await verifySet(target, first.id, () => undefined, { backupKey: key });
  assert.equal(gone.status, 'failed');
  assert.match((gone.reasons ?? []).join('\n'), new RegExp(`files\\.pieces\\.gz: piece ${pgpassLine.pieces![0]} is missing from the store`));
  await fsp.rename(`${pieceFile}.away`, pieceFile);
  // (c) A manifest changed and its SHA-256 recomputed (here: a part's reason): the MAC refuses it, in restore and verify.
  const manifestFile = path.join(setDir(target, first.id), MANIFEST);
  const original = await fsp.readFile(manifestFile, 'utf8');
  const forged = JSON.parse(original) as { parts: { reason: string }[]; integrity: { sha256: string; mac: string } };
  forged.parts[0]!.reason = 'forged';
  forged.integrity.sha256 = manifestDigest(forged);
  await fsp.writeFile(manifestFile, JSON.stringify(forged, null, 2));
  await assert.rejects(restoreLocal(rt, target, first.id, { identity: identityA }), /MAC is not the one of key/);
  const refused = await verifySet(target, first.id, () => undefined, { backupKey: key });
  assert.equal(refused.status, 'failed');
  assert.match((refused.reasons ?? []).join('\n'), /MAC is not the one of key/);
  await fsp.writeFile(manifestFile, original);

  // 10. Prune's collection reads the clear piece lists: with the first two sets gone, the third's pieces stay and restore.
  await fsp.rm(setDir(target, first.id), { recursive: true });
  await fsp.rm(setDir(target, second.id), { recursive: true });
  for (let round = 0; round < 2; round++) {
    const gc = await collectGarbage(target, { graceMs: 0, dryRun: false, now: new Date(Date.now() + 10_000 * (round + 1)) });
    assert.equal(gc.skipped, undefined, gc.skipped);
  }
  assert.equal(pieceCount(target), pieces1, "the old key's pieces are freed, the third set's stay");
  await fsp.rm(conf, { recursive: true });
  const r3 = await restoreLocal(rt, target, third.id, { identity: rotated.identityText });
  assert.equal(r3.results[0]!.status, 'ok', r3.results[0]!.reason);
  assert.deepEqual(await snapshotTree(conf), before);
});
