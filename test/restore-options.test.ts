/**
 * Restore options are checked from their schemas, before a restore reads its set or takes the
 * target's lock: a typo in `--option` is one line at once, not a failed component after minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { InputError } from '../common/errors.js';
import { createLogger } from '../common/log.js';
import { checkRestoreOptions, parseRestoreOptions } from '../common/restore-options.js';
import { AgentPool } from '../coordinator/agents.js';
import { runRestore } from '../coordinator/restore.js';
import { lockFileOf } from '../coordinator/target.js';
import { tempDir } from './helpers/harness.js';

test('the options each component takes pass; a component sees only its own', () => {
  checkRestoreOptions({});
  checkRestoreOptions({ database: 'shop', messages: 'true', definitions: 'false', indices: 'logs-*,metrics', rename_suffix: '-restored', elasticsearch_config: 'true' });
  checkRestoreOptions({ close_existing: 'false', rename_suffix: '-r' });
  assert.deepEqual(parseRestoreOptions('rabbitmq', { messages: 'true', database: 'shop', indices: 'x' }), { messages: 'true' });
  assert.deepEqual(parseRestoreOptions('postgresql', { messages: 'true', database: 'shop' }), { database: 'shop' });
  assert.deepEqual(parseRestoreOptions('elasticsearch', {}), {});
});

test('an unknown key, a bad value or two options that exclude each other are one-line input errors naming them', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ colour: 'red' }, /^unknown option 'colour' \(known: database, messages, definitions, rename_suffix, close_existing, include_global_state, indices, elasticsearch_config\)$/],
    [{ messages: 'yes' }, /^option messages=yes: expected true or false$/],
    [{ definitions: 'TRUE' }, /^option definitions=TRUE: expected true or false$/],
    [{ rename_suffix: 'Upper' }, /^option rename_suffix=Upper: use lowercase letters, digits and _ \. \+ - only$/],
    [{ database: '' }, /^option database=: expected a database name$/],
    [{ rename_suffix: '-x', close_existing: 'true' }, /^elasticsearch options: give rename_suffix or close_existing=true, not both$/],
    [{ 'bad\u001b[2Jkey': '1' }, /^unknown option 'bad\\x1b\[2Jkey'/],
  ];
  for (const [options, msg] of cases) {
    assert.throws(() => checkRestoreOptions(options), (err: unknown) => err instanceof InputError && msg.test(err.message) && !err.message.includes('\n'), JSON.stringify(options));
  }
});

test('the coordinator refuses a wrong option before it reads the set or takes the lock, in well under a second', async () => {
  const target = tempDir('target');
  // No set, no agent: anything the restore did before checking its options would fail differently.
  const pool = new AgentPool(grpc.credentials.createInsecure(), 1_000);
  try {
    const started = Date.now();
    await assert.rejects(
      runRestore(
        { pool, log: createLogger('test', 'error'), agentPort: 1 },
        { target, backupId: '20250101T000000Z', node: 'node1', components: [], dryRun: false, force: false, buildDir: '', options: { messages: 'maybe' } },
        () => assert.fail('no progress for a refused request'),
        new AbortController().signal,
      ),
      (err: unknown) => err instanceof InputError && /^option messages=maybe: expected true or false$/.test(err.message),
    );
    assert.ok(Date.now() - started < 1_000, `refused after ${Date.now() - started} ms`);
    await assert.rejects(fsp.stat(lockFileOf(target)), { code: 'ENOENT' }, 'no lock file was made');
    assert.deepEqual(await fsp.readdir(path.join(target)), []);
  } finally {
    pool.close();
  }
});
