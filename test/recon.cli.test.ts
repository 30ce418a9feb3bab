// `custos recon run|mistakes|resolve` as an operator runs them: --json prints exactly
// one object of the documented shape, a re-run prints the same, a rejected file or a
// bad flag exits non-zero with one clear line, a resolution needs a reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cliStore } from './helpers.ts';
import { wechatBill } from '../src/channel/sandbox/statements.ts';
import { cstDayStart } from '../src/platform/time.ts';

const root = path.resolve(import.meta.dirname, '..');

function custos(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, [path.join(root, 'bin/custos.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', CUSTOS_MASTER_KEY: '0'.repeat(64), CUSTOS_ADMIN_TOKEN: 'cli-test-token-0123456789', ...env }, encoding: 'utf8', timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const KEYS = ['batchId', 'channel', 'billDate', 'channelRecords', 'platformRecords', 'matched', 'poolAdded', 'poolResolved', 'autoFixed', 'mistakes', 'channelTotalFen', 'platformTotalFen'];

test('recon run --json: shape, same result on re-run, exit codes; mistakes and resolve', async () => {
  const { dir, pgUrl, drop } = await cliStore('custos-recon-cli-');
  const env: Record<string, string> = pgUrl ? { CUSTOS_DATA_DIR: dir, DATABASE_URL: pgUrl } : { CUSTOS_DATA_DIR: dir };
  try {
    const day = '2026-11-18';
    const at = cstDayStart(day);
    const bill = wechatBill({
      billDate: day, feeRate: '0.006', refunds: [],
      payments: [{ outTradeNo: 'P-CLI-UNKNOWN', tradeNo: '42CLI', amountFen: 2500n, wayCode: 'WX_NATIVE', subject: '物业费', payer: null, successAt: new Date(at.getTime() + 3600_000), createdAt: at }],
    });
    const file = path.join(dir, 'bill.csv');
    writeFileSync(file, bill);

    const first = custos(['recon', 'run', '--channel', 'sandbox', '--date', day, '--file', file, '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'exactly one JSON object');
    const out = JSON.parse(lines[0]);
    assert.deepEqual(Object.keys(out), KEYS);
    assert.equal(out.channel, 'sandbox');
    assert.equal(out.billDate, day);
    assert.equal(out.channelRecords, 1);
    assert.equal(out.platformRecords, 0);
    assert.deepEqual(out.mistakes, { PLATFORM_MISSING: 1 });
    assert.equal(out.channelTotalFen, '2500');
    assert.equal(out.platformTotalFen, '0');

    const again = custos(['recon', 'run', '--channel', 'sandbox', '--date', day, '--file', file, '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), out, 're-running gives the same result');

    const table = custos(['recon', 'run', '--channel', 'sandbox', '--date', day, '--file', file], env);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /已勾对 \/ matched/);

    // a file whose summary disagrees: nothing imported, one line, non-zero
    const bad = path.join(dir, 'bad.csv');
    writeFileSync(bad, bill.replace('`1,`25.00', '`2,`25.00'));
    const rejected = custos(['recon', 'run', '--channel', 'sandbox', '--date', '2026-11-19', '--file', bad, '--json'], env);
    assert.equal(rejected.code, 1);
    assert.equal(rejected.stdout, '');
    assert.equal(rejected.stderr.trim().split('\n').length, 1);
    assert.match(rejected.stderr, /RECON_FILE_REJECTED.*BILL_SUMMARY_MISMATCH/);

    const noDate = custos(['recon', 'run', '--channel', 'sandbox'], env);
    assert.equal(noDate.code, 2);
    assert.match(noDate.stderr, /--date/);
    const unknown = custos(['recon', 'run', '--channel', 'paypal', '--date', day, '--file', file], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /RECON_CHANNEL_UNKNOWN/);
    const missingFile = custos(['recon', 'run', '--channel', 'sandbox', '--date', '2026-11-17', '--file', path.join(dir, 'nope.csv')], env);
    assert.equal(missingFile.code, 1);
    assert.equal(missingFile.stderr.trim().split('\n').length, 1);

    const listed = custos(['recon', 'mistakes', '--state', 'open', '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const [m] = JSON.parse(listed.stdout).mistakes as Array<{ id: string; type: string }>;
    assert.equal(m.type, 'PLATFORM_MISSING');
    const noReason = custos(['recon', 'resolve', m.id, '--side', 'channel'], env);
    assert.equal(noReason.code, 2);
    assert.match(noReason.stderr, /--reason/);
    const done = custos(['recon', 'resolve', m.id, '--side', 'channel', '--reason', '渠道确认收款', '--by', 'ops-zhang'], env);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /posted recon:m/);
    const twice = custos(['recon', 'resolve', m.id, '--side', 'platform', '--reason', 'again'], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /RECON_MISTAKE_NOT_OPEN/);
    const verify = custos(['ledger', 'verify', '--json'], env);
    assert.equal(verify.code, 0);
    assert.equal(JSON.parse(verify.stdout).balanced, true);
  } finally {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  }
});
