// The command line: exit codes, one clear line on errors, ledger verify --json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cliStore } from './helpers.ts';
import { openDatabase } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { createLedger } from '../src/ledger/index.ts';
import { systemClock } from '../src/platform/clock.ts';

const root = path.resolve(import.meta.dirname, '..');

function custos(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, [path.join(root, 'bin/custos.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('help, unknown commands and bad flags', () => {
  const help = custos(['help'], {});
  assert.equal(help.code, 0);
  assert.match(help.stdout, /custos serve/);
  const unknown = custos(['fly'], {});
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr.trim().split('\n').length, 1);
  assert.match(unknown.stderr, /unknown command "fly"/);
  const badFlag = custos(['ledger', 'verify', '--bogus'], {});
  assert.equal(badFlag.code, 2);
  assert.equal(badFlag.stderr.trim().split('\n').length, 1);
  const badEnv = custos(['migrate'], { PORT: 'eighty' });
  assert.equal(badEnv.code, 2);
  assert.match(badEnv.stderr, /PORT must be a whole number/);
});

test('migrate is idempotent; ledger verify --json reports balance and exits non-zero when unbalanced', async () => {
  const { dir, pgUrl, drop } = await cliStore('custos-cli-');
  const env: Record<string, string> = pgUrl ? { DATABASE_URL: pgUrl } : { CUSTOS_DATA_DIR: dir };
  try {
    const first = custos(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    const total = readdirSync(path.join(root, 'migrations')).filter((f) => f.endsWith('.sql')).length;
    assert.match(first.stdout, new RegExp(`migrations applied: ${total} `));
    const second = custos(['migrate'], env);
    assert.match(second.stdout, new RegExp(`migrations applied: 0 .*already applied: ${total}`));

    const db = await openDatabase({ databaseUrl: env.DATABASE_URL ?? null, dataDir: env.CUSTOS_DATA_DIR ?? null });
    await migrate(db);
    const ledger = createLedger({ db, clock: systemClock });
    await ledger.createAccounts([{ id: 'x', ledger: 1, code: 1, flags: 0, ref: null, metadata: null }, { id: 'y', ledger: 1, code: 1, flags: 0, ref: null, metadata: null }]);
    await ledger.createTransfers([{ id: 'tx', debit_account_id: 'x', credit_account_id: 'y', amount: 5n, ledger: 1, code: 1, flags: 0, pending_id: null, timeout_s: 0, ref: null, metadata: null }]);
    await db.close();

    const ok = custos(['ledger', 'verify', '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const report = JSON.parse(ok.stdout);
    assert.equal(report.balanced, true);
    assert.equal(report.transfers_applied, '1');

    const tamper = await openDatabase({ databaseUrl: env.DATABASE_URL ?? null, dataDir: env.CUSTOS_DATA_DIR ?? null });
    await tamper.kysely.updateTable('ledger_accounts').set({ debits_posted: 6n as never }).where('id', '=', 'x').execute();
    await tamper.close();
    const bad = custos(['ledger', 'verify', '--json'], env);
    assert.equal(bad.code, 1);
    const badReport = JSON.parse(bad.stdout);
    assert.equal(badReport.balanced, false);
    assert.equal(badReport.accounts_mismatched[0].id, 'x');
    const human = custos(['ledger', 'verify'], env);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /NOT balanced/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await drop();
  }
});

test('merchant create --json prints mchNo, appId and appSecret; bad arguments exit 2 with one line', async () => {
  const { dir, pgUrl, drop } = await cliStore('custos-cli-m-');
  const env: Record<string, string> = pgUrl ? { DATABASE_URL: pgUrl, CUSTOS_MASTER_KEY: 'a'.repeat(64) } : { CUSTOS_DATA_DIR: dir };
  try {
    const made = custos(['merchant', 'create', '--name', '某某物业服务有限公司', '--json'], env);
    assert.equal(made.code, 0, made.stderr);
    const m = JSON.parse(made.stdout);
    assert.deepEqual(Object.keys(m).sort(), ['appId', 'appSecret', 'mchNo']);
    assert.match(m.mchNo, /^M\d{17}$/);
    assert.ok(m.appSecret.length >= 24);
    const noName = custos(['merchant', 'create'], env);
    assert.equal(noName.code, 2);
    assert.equal(noName.stderr.trim().split('\n').length, 1);
    const badUrl = custos(['merchant', 'create', '--name', 'x', '--notify-url', 'ftp://nope'], env);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /notifyUrl/);
    const badResend = custos(['notify', 'resend', 'abc'], env);
    assert.equal(badResend.code, 2);
    const noSuch = custos(['notify', 'resend', '999999'], { ...env, CUSTOS_ADMIN_TOKEN: 'cli-test-token-123456', CUSTOS_SANDBOX: 'off', LOG_LEVEL: 'silent' });
    assert.equal(noSuch.code, 2, noSuch.stderr);
    assert.match(noSuch.stderr, /no notification 999999/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await drop();
  }
});
