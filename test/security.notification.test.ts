// Issue 12, hole 2: a forged channel notification was believed. A notification is now
// only a trigger: the platform asks the channel about the order, refund or transfer
// and applies the channel's answer — so a notification signed with the README's old
// default key, or even with the right key, that claims success while the channel says
// NOTPAY (or PROCESSING) moves no money. No default sandbox key: generated into the
// data folder, required with DATABASE_URL, and the sandbox is off with DATABASE_URL
// unless asked for; the start banner says when it is on.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import {
  startStack, merchant, notifySink, waitFor, order, freePort, sendChannelNotification, SANDBOX_KEY, type Stack, type MerchantClient, type NotifySink,
} from './payment.harness.ts';
import { DEFAULT_FAULTS } from '../src/channel/sandbox/server.ts';
import { SIGNATURE_HEADER, signBody, type SbNotification } from '../src/channel/sandbox/protocol.ts';
import { loadConfig, ConfigError } from '../src/platform/config.ts';
import { resolveSandboxKey, PUBLISHED_DEV_KEY } from '../src/platform/sandbox-key.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const eventId = () => randomBytes(12).toString('hex');
const payClaim = (payOrderId: string, amount: string): SbNotification => ({
  event_id: eventId(), kind: 'pay', out_no: payOrderId, channel_no: `42${randomBytes(8).toString('hex')}`, status: 'SUCCESS', amount,
  success_time: new Date().toISOString(), payer: 'oForger',
});

async function sendSigned(stack: Stack, n: SbNotification, key: string): Promise<{ status: number; text: string }> {
  const text = JSON.stringify(n);
  const res = await fetch(`${stack.url}/api/channel/notify/sandbox`, {
    method: 'POST', body: text, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(key, text) },
  });
  return { status: res.status, text: await res.text() };
}

const q = (stack: Stack) => stack.t.db.kysely;
const orderState = async (s: Stack, id: string) => Number((await sql<{ state: number }>`SELECT state FROM pay_orders WHERE pay_order_id = ${id}`.execute(q(s))).rows[0].state);
const ledgerLike = async (s: Stack, prefix: string) => (await sql<{ id: string; status: number | null }>`SELECT id, status FROM ledger_transfers WHERE id LIKE ${`${prefix}%`} ORDER BY id`.execute(q(s))).rows;
const merchantNotices = async (s: Stack, refId: string) => Number((await sql<{ n: number }>`SELECT count(*)::int4 AS n FROM pay_notifications WHERE ref_id = ${refId}`.execute(q(s))).rows[0].n);

describe('channel notifications are confirmed with the channel', () => {
  let stack: Stack;
  let m: MerchantClient;
  let sink: NotifySink;
  before(async () => {
    stack = await startStack();
    sink = await notifySink();
    m = await merchant(stack, sink.url, '伪造通知物业');
  });
  after(async () => {
    await stack.close();
    await sink.close();
  });

  test('a success claimed while the channel says NOTPAY pays nothing, whatever key signed it; the genuine one pays once', async () => {
    const created = await m.call('/api/pay/unifiedOrder', order('forged-1', { amount: 50000 }));
    assert.equal(created.status, 200);
    const payOrderId = String(created.body.data?.payOrderId);
    assert.equal(await orderState(stack, payOrderId), 1);

    const oldDefault = await sendSigned(stack, payClaim(payOrderId, '50000'), PUBLISHED_DEV_KEY);
    assert.equal(oldDefault.status, 401, 'the README\'s old default key signs nothing here');
    const rightKey = await sendSigned(stack, payClaim(payOrderId, '50000'), SANDBOX_KEY);
    assert.equal(rightKey.status, 200, 'taken (and acknowledged) as a trigger');
    await stack.platform.payment.poll(0);
    assert.equal(await orderState(stack, payOrderId), 1, 'still waiting for payment: the channel says NOTPAY');
    assert.deepEqual(await ledgerLike(stack, `pay:${payOrderId}`), [], 'no ledger posting');
    assert.equal(await merchantNotices(stack, payOrderId), 0, 'the merchant was told nothing');

    // The payer really pays: the sandbox's own notification pays the order, once.
    const paid = await stack.sandbox.pay(payOrderId);
    await waitFor('paid', async () => (await orderState(stack, payOrderId)) === 2);
    for (let i = 0; i < 2; i += 1) {
      const again = await sendChannelNotification(stack, { ...payClaim(payOrderId, '50000'), channel_no: paid.tradeNo });
      assert.equal(again.status, 200);
    }
    await stack.sandbox.flush();
    assert.deepEqual((await ledgerLike(stack, `pay:${payOrderId}`)).map((r) => r.id), [`pay:${payOrderId}`], 'one posting');
    assert.equal(await merchantNotices(stack, payOrderId), 1);
    const [order1] = (await sql<{ channel_order_no: string }>`SELECT channel_order_no FROM pay_orders WHERE pay_order_id = ${payOrderId}`.execute(q(stack))).rows;
    assert.equal(order1.channel_order_no, paid.tradeNo, 'the channel\'s own trade number, not the forger\'s');
  });

  test('a forged amount cannot pay a different amount; a forged notification for an unknown order changes nothing', async () => {
    const created = await m.call('/api/pay/unifiedOrder', order('forged-2', { amount: 100 }));
    const payOrderId = String(created.body.data?.payOrderId);
    assert.equal((await sendSigned(stack, payClaim(payOrderId, '1'), SANDBOX_KEY)).status, 200);
    assert.equal((await sendSigned(stack, payClaim('P00000000000000000000', '1'), SANDBOX_KEY)).status, 200);
    assert.equal(await orderState(stack, payOrderId), 1);
    assert.deepEqual(await ledgerLike(stack, `pay:${payOrderId}`), []);
  });

  test('when the channel cannot be asked, the notification is not acknowledged (503) and nothing is applied; sent again, it is', async () => {
    const created = await m.call('/api/pay/unifiedOrder', order('forged-3', { amount: 700 }));
    const payOrderId = String(created.body.data?.payOrderId);
    stack.sandbox.faults.notifyDrop = true;
    const paid = await stack.sandbox.pay(payOrderId);
    stack.sandbox.faults.notifyDrop = false;
    stack.sandbox.faults.api5xxNext = 1;
    const n = { ...payClaim(payOrderId, '700'), channel_no: paid.tradeNo };
    const first = await sendChannelNotification(stack, n);
    assert.equal(first.status, 503, first.text);
    assert.match(first.text, /CHANNEL_UNAVAILABLE/);
    assert.equal(await orderState(stack, payOrderId), 1);
    const second = await sendChannelNotification(stack, n);
    assert.equal(second.status, 200);
    assert.equal(await orderState(stack, payOrderId), 2);
    assert.equal((await ledgerLike(stack, `pay:${payOrderId}`)).length, 1);
    Object.assign(stack.sandbox.faults, DEFAULT_FAULTS);
  });

  test('refunds and transfers: a claimed SUCCESS or FAILED while the channel says PROCESSING posts and voids nothing', async () => {
    const created = await m.call('/api/pay/unifiedOrder', order('forged-4', { amount: 10000 }));
    const payOrderId = String(created.body.data?.payOrderId);
    await stack.sandbox.pay(payOrderId);
    await waitFor('paid', async () => (await orderState(stack, payOrderId)) === 2);
    stack.sandbox.faults.asyncDelayMs = 3_600_000; // the channel keeps them PROCESSING
    try {
      const r = await m.call('/api/refund/refundOrder', { payOrderId, mchRefundNo: 'forged-4-r', refundAmount: 3000, currency: 'cny', refundReason: '测试' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const refundOrderId = String(r.body.data?.refundOrderId);
      const t = await m.call('/api/transferOrder', { mchOrderNo: 'forged-4-t', entryType: 'BANK_CARD', amount: 2000, currency: 'cny', accountNo: '6222020000000001', accountName: '张三', transferDesc: '测试' });
      assert.equal(t.status, 200, JSON.stringify(t.body));
      const transferId = String(t.body.data?.transferId);
      for (const status of ['SUCCESS', 'FAILED'] as const) {
        for (const [kind, outNo, amount] of [['refund', refundOrderId, '3000'], ['transfer', transferId, '2000']] as const) {
          const n: SbNotification = { event_id: eventId(), kind, out_no: outNo, channel_no: '50forged', status, amount, success_time: new Date().toISOString(), payer: null };
          assert.equal((await sendChannelNotification(stack, n)).status, 200);
        }
      }
      const refund = (await sql<{ state: number }>`SELECT state FROM pay_refunds WHERE refund_order_id = ${refundOrderId}`.execute(q(stack))).rows[0];
      assert.equal(Number(refund.state), 1, 'the refund is still in progress');
      assert.deepEqual((await ledgerLike(stack, `refund:${refundOrderId}`)).map((x) => [x.id, x.status]), [[`refund:${refundOrderId}`, 1]], 'held, neither posted nor voided');
      const transfer = (await sql<{ state: number }>`SELECT state FROM pay_transfers WHERE transfer_id = ${transferId}`.execute(q(stack))).rows[0];
      assert.equal(Number(transfer.state), 1, 'the transfer is still in progress');
      assert.equal(await merchantNotices(stack, refundOrderId), 0);
      assert.equal(await merchantNotices(stack, transferId), 0);
    } finally {
      Object.assign(stack.sandbox.faults, DEFAULT_FAULTS);
    }
  });
});

describe('the sandbox key', () => {
  test('no default key; generated into the data folder (0600, kept), fresh in memory, required with DATABASE_URL; the old default and short keys refused', async () => {
    assert.equal(loadConfig({ CUSTOS_DATA_DIR: 'memory' }).sandboxKey, null);
    const dir = mkdtempSync(path.join(tmpdir(), 'custos-sbkey-'));
    try {
      const config = loadConfig({ CUSTOS_DATA_DIR: dir });
      const first = await resolveSandboxKey(config);
      assert.equal(first.file, path.join(dir, 'sandbox-key'));
      assert.ok(first.key.length >= 32);
      assert.equal(statSync(first.file as string).mode & 0o777, 0o600);
      assert.equal((await resolveSandboxKey(config)).key, first.key, 'kept across restarts');
      assert.equal(readFileSync(first.file as string, 'utf8').trim(), first.key);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const mem = loadConfig({ CUSTOS_DATA_DIR: 'memory' });
    assert.notEqual((await resolveSandboxKey(mem)).key, (await resolveSandboxKey(mem)).key);
    await assert.rejects(resolveSandboxKey(loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_SANDBOX_KEY: PUBLISHED_DEV_KEY })), ConfigError);
    await assert.rejects(resolveSandboxKey(loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_SANDBOX_KEY: 'short' })), ConfigError);
    const pg = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    assert.equal(loadConfig(pg).sandboxEnabled, false, 'off with DATABASE_URL');
    assert.equal(loadConfig({ ...pg, CUSTOS_SANDBOX: 'on' }).sandboxEnabled, true);
    await assert.rejects(resolveSandboxKey(loadConfig({ ...pg, CUSTOS_SANDBOX: 'on' })), /CUSTOS_SANDBOX_KEY must be set/);
    assert.equal(loadConfig({ CUSTOS_DATA_DIR: 'memory' }).sandboxEnabled, true, 'on with the embedded database');
    assert.throws(() => loadConfig({ CUSTOS_SANDBOX: 'maybe' }), ConfigError);
  });

  test('custos serve: the banner says the sandbox is on; payer actions need its key (custos sandbox pay signs); bad keys stop the start', async () => {
    const custos = (args: string[], env: Record<string, string>) => spawnSync(process.execPath, [path.join(ROOT, 'bin/custos.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env }, encoding: 'utf8', timeout: 60_000,
    });
    const oldKey = custos(['serve'], { CUSTOS_DATA_DIR: 'memory', CUSTOS_SANDBOX_KEY: PUBLISHED_DEV_KEY, PORT: '0' });
    assert.equal(oldKey.status, 2, oldKey.stderr);
    assert.match(oldKey.stderr, /published development key/);
    const pgNoKey = custos(['serve'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', CUSTOS_SANDBOX: 'on', CUSTOS_ADMIN_TOKEN: 'x'.repeat(20), PORT: '0' });
    assert.equal(pgNoKey.status, 2, pgNoKey.stderr);
    assert.match(pgNoKey.stderr, /CUSTOS_SANDBOX_KEY must be set/);

    const dir = mkdtempSync(path.join(tmpdir(), 'custos-serve-'));
    const [port, sandboxPort] = [await freePort(), await freePort()];
    const env = { CUSTOS_DATA_DIR: dir, PORT: String(port), CUSTOS_SANDBOX_PORT: String(sandboxPort), CUSTOS_DEMO: 'off', HOST: '127.0.0.1' };
    let child: ChildProcess | null = null;
    try {
      child = spawn(process.execPath, [path.join(ROOT, 'bin/custos.js'), 'serve'], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (d) => (out += d));
      child.stderr?.on('data', (d) => (out += d));
      await waitFor('the banner', async () => /管理令牌/.test(out), 90_000);
      assert.match(out, /sandbox channel: ON \(testing only: anyone can pay its orders\)/);
      const key = readFileSync(path.join(dir, 'sandbox-key'), 'utf8').trim();
      const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
      const body = JSON.stringify({ out_trade_no: 'cli-pay-1', amount: '100', subject: 's', way_code: 'WX_NATIVE', notify_url: '', expire_s: 600 });
      const made = await fetch(`${sandboxUrl}/v1/orders`, { method: 'POST', body, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(key, body) } });
      assert.equal(made.status, 200, 'the embedded sandbox uses the key of the data folder');
      const unsigned = await fetch(`${sandboxUrl}/v1/sim/orders/cli-pay-1/pay`, { method: 'POST' });
      assert.equal(unsigned.status, 401);
      const paid = custos(['sandbox', 'pay', 'cli-pay-1'], env);
      assert.equal(paid.status, 0, paid.stderr);
      assert.match(paid.stdout, /cli-pay-1: SUCCESS/);
    } finally {
      child?.kill('SIGTERM');
      if (child && child.exitCode === null) await new Promise((resolve) => child?.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
