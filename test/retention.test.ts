/**
 * The retention policy alone, as restic tests its own (internal/restic/snapshot_policy_test.go):
 * which sets each --keep rule keeps, at the edges of days, ISO weeks, months and years.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dayKey, monthKey, retain, weekKey, type Candidate, type Policy } from '../coordinator/retention.js';

/** A complete set taken at `iso` (UTC), with the id a backup started then would have. */
function set(iso: string): Candidate {
  const time = new Date(iso);
  return { id: time.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z'), status: 'complete', time };
}

const none: Policy = { last: 0, daily: 0, weekly: 0, monthly: 0 };
const kept = (sets: Candidate[], policy: Partial<Policy>) => Object.fromEntries([...retain(sets, { ...none, ...policy })].sort(([a], [b]) => b.localeCompare(a)));

test('ISO week keys: the Thursday of a week decides its year, across year ends with 52 and 53 weeks', () => {
  const cases: [string, string][] = [
    ['2020-12-28T00:00:00Z', '2020-W53'], // Monday of the 53rd week of 2020
    ['2021-01-03T23:59:59Z', '2020-W53'], // its Sunday, already in 2021
    ['2021-01-04T00:00:00Z', '2021-W1'],
    ['2019-12-30T12:00:00Z', '2020-W1'], // a Monday in December that belongs to the next year
    ['2024-12-29T23:59:59Z', '2024-W52'],
    ['2024-12-30T00:00:00Z', '2025-W1'],
    ['2027-01-03T10:00:00Z', '2026-W53'], // 2026 starts on a Thursday: 53 weeks
    ['2027-01-04T10:00:00Z', '2027-W1'],
    ['2022-01-02T00:00:00Z', '2021-W52'],
    ['2023-06-15T00:00:00Z', '2023-W24'],
  ];
  for (const [iso, week] of cases) assert.equal(weekKey(new Date(iso)), week, iso);
});

test('day and month keys are UTC: a set just before midnight UTC is in the old day and month', () => {
  assert.equal(dayKey(new Date('2021-01-31T23:59:59Z')), '2021-01-31');
  assert.equal(dayKey(new Date('2021-02-01T00:00:00Z')), '2021-02-01');
  assert.equal(monthKey(new Date('2021-01-31T23:59:59Z')), '2021-01');
  assert.equal(monthKey(new Date('2021-02-01T00:00:00Z')), '2021-02');
  assert.equal(monthKey(new Date('2020-02-29T12:00:00Z')), '2020-02');
});

test('nothing given, nothing kept', () => {
  assert.deepEqual(kept([], { last: 5, daily: 7, weekly: 4, monthly: 12 }), {});
  assert.deepEqual(kept([], {}), {});
});

test('no rule keeps anything but the newest complete set, which no policy removes', () => {
  const sets = [set('2021-01-01T00:00:00Z'), set('2021-01-02T00:00:00Z')];
  assert.deepEqual(kept(sets, {}), { '20210102T000000Z': 'newest complete' });
});

test('keep-last keeps the n newest, whatever order they come in; more than there are keeps all', () => {
  const sets = ['2021-03-01T10:00:00Z', '2021-03-01T09:00:00Z', '2021-03-02T08:00:00Z', '2021-02-28T23:00:00Z'].map(set);
  assert.deepEqual(kept(sets, { last: 2 }), { '20210302T080000Z': 'last', '20210301T100000Z': 'last' });
  assert.deepEqual(kept([...sets].reverse(), { last: 2 }), kept(sets, { last: 2 }));
  assert.equal(Object.keys(kept(sets, { last: 10 })).length, 4);
});

test('keep-daily keeps the newest set of each of the n newest days that have one; gaps are skipped, not counted', () => {
  const sets = [
    '2021-05-10T18:00:00Z',
    '2021-05-10T06:00:00Z', // same day, older: not kept
    '2021-05-09T23:59:59Z', // newest of its day, one second before midnight
    '2021-05-09T00:00:00Z',
    // no sets on 05-08 and 05-07: those days are not counted
    '2021-05-06T12:00:00Z',
    '2021-05-05T12:00:00Z',
  ].map(set);
  assert.deepEqual(kept(sets, { daily: 3 }), { '20210510T180000Z': 'daily', '20210509T235959Z': 'daily', '20210506T120000Z': 'daily' });
  assert.deepEqual(Object.keys(kept(sets, { daily: 30 })), ['20210510T180000Z', '20210509T235959Z', '20210506T120000Z', '20210505T120000Z']);
});

test('keep-weekly across a year end: the 53rd week of 2020 spans the new year and keeps only its newest set', () => {
  const sets = ['2021-01-05T00:00:00Z', '2021-01-04T00:00:00Z', '2021-01-03T00:00:00Z', '2021-01-01T00:00:00Z', '2020-12-28T00:00:00Z', '2020-12-27T00:00:00Z'].map(set);
  assert.deepEqual(kept(sets, { weekly: 2 }), { '20210105T000000Z': 'weekly', '20210103T000000Z': 'weekly' });
  assert.deepEqual(kept(sets, { weekly: 3 }), { '20210105T000000Z': 'weekly', '20210103T000000Z': 'weekly', '20201227T000000Z': 'weekly' });
});

test('keep-monthly keeps the newest set of each month; a month without sets is not counted', () => {
  const sets = ['2021-03-31T23:59:59Z', '2021-03-01T00:00:00Z', '2021-01-31T23:59:59Z', '2021-01-15T00:00:00Z', '2020-12-31T23:59:59Z'].map(set);
  assert.deepEqual(kept(sets, { monthly: 2 }), { '20210331T235959Z': 'monthly', '20210131T235959Z': 'monthly' });
  assert.deepEqual(kept(sets, { monthly: 3 }), { '20210331T235959Z': 'monthly', '20210131T235959Z': 'monthly', '20201231T235959Z': 'monthly' });
});

test('rules overlap like restic: a set kept by one rule still fills its bucket for the next, and is named by the first rule that keeps it', () => {
  const sets = ['2021-01-10T12:00:00Z', '2021-01-10T08:00:00Z', '2021-01-09T12:00:00Z', '2021-01-03T12:00:00Z', '2020-12-20T12:00:00Z'].map(set);
  // last=1 keeps 01-10 12:00; daily=2 counts that day too and adds only 01-09.
  assert.deepEqual(kept(sets, { last: 1, daily: 2 }), { '20210110T120000Z': 'last', '20210109T120000Z': 'daily' });
  // The weeks: 2021-W1 holds 01-10 and 01-09 (a Sunday and its Saturday), 2020-W53 holds 01-03, 2020-W51 holds 12-20.
  assert.deepEqual(kept(sets, { daily: 1, weekly: 3 }), { '20210110T120000Z': 'daily', '20210103T120000Z': 'weekly', '20201220T120000Z': 'weekly' });
  assert.deepEqual(kept(sets, { last: 1, daily: 1, weekly: 1, monthly: 2 }), { '20210110T120000Z': 'last', '20201220T120000Z': 'monthly' });
});

test('sets taken in the same second by the clock but with different ids: the id decides which is newer', () => {
  const a = { ...set('2021-01-10T12:00:00Z'), id: '20210110T120000Z' };
  const b = { ...set('2021-01-10T12:00:00Z'), id: '20210110T120001Z' };
  assert.deepEqual(kept([a, b], { daily: 1 }), { '20210110T120001Z': 'daily' });
  assert.deepEqual(kept([b, a], { daily: 1 }), { '20210110T120001Z': 'daily' });
});
