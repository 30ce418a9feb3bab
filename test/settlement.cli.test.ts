// `custos settle run`: a batch from the command line, JSON output, and bad input as
// a non-zero exit with one clear line (nothing written).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { cliStore } from './helpers.ts';

const root = path.resolve(import.meta.dirname, '..');

function custos(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, [path.join(root, 'bin/custos.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', CUSTOS_SANDBOX_URL: 'http://127.0.0.1:9', ...env }, encoding: 'utf8', timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('custos settle run: a batch for a date (twice: the same batch); a future or malformed date exits 2 with one line', async () => {
  const { dir, pgUrl, drop } = await cliStore('custos-settle-cli-');
  const env: Record<string, string> = pgUrl ? { DATABASE_URL: pgUrl, CUSTOS_ADMIN_TOKEN: 'cli-test-token-123456', CUSTOS_MASTER_KEY: 'a'.repeat(64) } : { CUSTOS_DATA_DIR: dir };
  try {
    const first = custos(['settle', 'run', '--date', '2026-11-20', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const out = JSON.parse(first.stdout);
    assert.equal(out.batchId, 'B20261120');
    assert.equal(out.settleDate, '2026-11-20');
    assert.equal(out.settlements, 0);
    const again = custos(['settle', 'run', '--date', '2026-11-20'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /batch B20261120 \(2026-11-20\): 0 settlements/);

    const future = custos(['settle', 'run', '--date', '2099-01-05'], env);
    assert.equal(future.code, 2);
    assert.equal(future.stderr.trim().split('\n').length, 1);
    assert.match(future.stderr, /不能结算未来日期 .*2099-01-05/);
    const bad = custos(['settle', 'run', '--date', '2026-02-30'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /YYYY-MM-DD/);
    const missing = custos(['settle', 'run'], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--date is required/);
    const unknown = custos(['settle', 'pay'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown settle command/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await drop();
  }
});
