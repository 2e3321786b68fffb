/**
 * A part's data outside the set (FORMAT.md 1.3): read from the part record as the component
 * declared it; sets before 1.3 are read by the one rule for their elasticsearch parts. Whoever
 * removes sets goes by these entries alone, whatever the component.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest, sealManifest, type Manifest, type Part } from '../common/manifest.js';
import { holdingsOf } from '../coordinator/release.js';

function part(over: Partial<Part> & Pick<Part, 'node' | 'component'>): Record<string, unknown> {
  return { status: 'ok', reason: '', durationMs: 1, bytes: 0, meta: {}, artifacts: [], entries: [], ...over };
}

function manifestText(parts: Record<string, unknown>[], sealed = true): string {
  const failed = parts.some((p) => p.status === 'failed');
  const m = {
    format: 'lsbackup-set/1',
    id: '20261201T120000Z',
    status: failed ? 'partial' : 'complete',
    reasons: failed ? ['lost'] : [],
    startedAt: '2026-12-01T12:00:00.000Z',
    finishedAt: '2026-12-01T12:00:05.000Z',
    buildDir: '/b',
    coordinatorVersion: '0.1.0',
    nodes: { n1: { address: '10.0.0.1:50551' }, n2: { address: '10.0.0.2:50551' } },
    notCovered: [],
    parts,
  };
  return JSON.stringify(sealed ? sealManifest(m) : m);
}

const esMeta = { repository: 'lsbackup-logging', location: '/t/_elasticsearch/logging', snapshot: 'lsbackup-20261201t120000z', es_cluster: 'logging' };
const esExternal = {
  key: JSON.stringify(['/t/_elasticsearch/logging', 'lsbackup-20261201t120000z']),
  what: 'Elasticsearch snapshot lsbackup-20261201t120000z in repository lsbackup-logging (/t/_elasticsearch/logging)',
  byHand: 'DELETE /_snapshot/lsbackup-logging/lsbackup-20261201t120000z',
};

describe('external data of a part', () => {
  test('a set before 1.3 (no external key): its elasticsearch parts naming a snapshot hold it, others hold nothing; the digest still matches', () => {
    for (const sealed of [true, false]) {
      const m = parseManifest(
        manifestText([
          part({ node: 'n1', component: 'elasticsearch', meta: esMeta }),
          part({ node: 'n2', component: 'elasticsearch', status: 'failed', reason: 'lost', meta: esMeta }),
          part({ node: 'n1', component: 'haproxy', meta: { snapshot: 'not an elasticsearch one' } }),
          part({ node: 'n2', component: 'elasticsearch', meta: { repository: 'lsbackup' } }),
        ], sealed),
        'manifest.json',
      );
      assert.deepEqual(m.parts.map((p) => p.external), [[esExternal], [esExternal], [], []]);
      const holdings = holdingsOf(m);
      assert.equal(holdings.length, 1);
      assert.deepEqual(holdings[0]!.data, esExternal);
      assert.deepEqual(holdings[0]!.parts.map((p) => `${p.node}/${p.status}`), ['n1/ok', 'n2/failed'], 'the ok part is asked first');
    }
  });

  test('a 1.3 part is read as it declared, for any component, and never by its meta', () => {
    const declared = { key: 'pg-archive:/srv/wal/shop', what: 'WAL archive of shop in /srv/wal/shop', byHand: 'rm -r /srv/wal/shop' };
    const m = parseManifest(
      manifestText([
        part({ node: 'n1', component: 'postgresql', external: [declared] }),
        // Declared nothing although its meta names a snapshot: it holds nothing outside.
        part({ node: 'n2', component: 'elasticsearch', meta: esMeta, external: [] }),
      ]),
      'manifest.json',
    );
    assert.deepEqual(m.parts.map((p) => p.external), [[declared], []]);
    assert.deepEqual(holdingsOf(m).map((h) => [h.data, h.parts.map((p) => p.component)]), [[declared, ['postgresql']]]);
  });

  test('an entry with an empty key, what or byHand is refused naming the key', () => {
    for (const field of ['key', 'what', 'byHand'] as const) {
      const bad = { ...esExternal, [field]: '' };
      assert.throws(
        () => parseManifest(manifestText([part({ node: 'n1', component: 'elasticsearch', meta: esMeta, external: [bad] })]), 'manifest.json'),
        new RegExp(`^IntegrityError: manifest manifest\\.json: key 'parts\\.0\\.external\\.0\\.${field}': `),
      );
    }
  });

  test('holdingsOf joins parts of several sets by key only', () => {
    const a = { key: 'k1', what: 'one', byHand: 'x' };
    const b = { key: 'k2', what: 'two', byHand: 'y' };
    const m = parseManifest(manifestText([part({ node: 'n1', component: 'rabbitmq', external: [a, b] }), part({ node: 'n2', component: 'grafana', external: [a] })]), 'manifest.json') as Manifest;
    assert.deepEqual(holdingsOf(m).map((h) => [h.data.key, h.parts.map((p) => p.node)]), [['k1', ['n1', 'n2']], ['k2', ['n1']]]);
  });
});
