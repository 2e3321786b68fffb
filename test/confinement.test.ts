/**
 * checkConfinement when entries are restored somewhere else than where they were archived
 * (Prometheus: snapshot dir -> staging dir): destinations map under `to`, and nothing may land
 * outside `to`, including a symlink back at the original `from` location.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry } from '../common/manifest.js';
import { checkConfinement } from '../agent/restore-files.js';
import { PermissionError } from '../common/errors.js';

const from = '/snap/S';
const to = '/stage/T';
const roots = [{ from, to }];

const entry = (p: string, over: Partial<Entry> = {}): Entry => ({ archive: 'a.zip', name: p.slice(1), path: p, type: 'file', size: 4, sha256: '', mode: 0o100644, uid: 0, gid: 0, mtimeNs: '0', linkTarget: '', ...over });
const link = (p: string, linkTarget: string) => entry(p, { type: 'symlink', linkTarget });
const valid = [entry(from, { type: 'dir' }), entry(`${from}/d`, { type: 'dir' }), entry(`${from}/d/f`), link(`${from}/d/l`, '../d/f')];

function assertRefused(bad: Entry, message: RegExp): void {
  assert.throws(
    () => checkConfinement([...valid, bad], roots),
    (err) => err instanceof PermissionError && message.test(err.message),
  );
}

describe('checkConfinement with from !== to', () => {
  test('a valid tree maps to the same relative places under to', () => {
    const dest = checkConfinement(valid, roots);
    assert.deepEqual(valid.map((e) => dest.get(e)), [to, `${to}/d`, `${to}/d/f`, `${to}/d/l`]);
  });

  test("'..' in a path/name is refused", () => {
    assertRefused(entry(`${from}/../evil`), /refusing entry '\/snap\/S\/\.\.\/evil': not a plain absolute path/);
  });

  test('an absolute name is refused', () => {
    assertRefused(entry(`${from}/d/g`, { name: `${from}/d/g` }), /refusing entry '\/snap\/S\/d\/g': its name does not match its path/);
  });

  test('a name that does not match its path is refused', () => {
    assertRefused(entry(`${from}/d/g`, { name: 'etc/passwd' }), /refusing entry 'etc\/passwd': its name does not match its path \/snap\/S\/d\/g/);
  });

  test('an entry outside every from is refused, including a sibling prefix', () => {
    assertRefused(entry('/etc/passwd'), /refusing entry '\/etc\/passwd': outside the component's paths \/snap\/S$/);
    assertRefused(entry('/snap/S2/f'), /refusing entry '\/snap\/S2\/f': outside the component's paths/);
  });

  test('a relative symlink pointing out of to is refused', () => {
    assertRefused(link(`${from}/d/out`, '../../x'), /refusing symlink '\/snap\/S\/d\/out' -> '\.\.\/\.\.\/x': it points outside \/stage\/T$/);
  });

  test('an absolute symlink pointing back at the original from location is refused', () => {
    assertRefused(link(`${from}/d/back`, `${from}/d/f`), /refusing symlink '\/snap\/S\/d\/back' -> '\/snap\/S\/d\/f': it points outside \/stage\/T$/);
  });
});
