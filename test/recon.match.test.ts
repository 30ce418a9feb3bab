// Reconciliation end to end on a realistic day through the sandbox channel: payments
// before and after midnight, a refund, a payment whose notification was dropped, an
// amount that differs, a record only the channel has, a fee difference. The sandbox's
// statement comes from its own state; the operator's local file (the modified copy a
// batch reads) is that statement with the differences written in (see `dayFile`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { startStack, merchant, notifySink, waitFor, order, ADMIN_TOKEN, type Stack, type MerchantClient, type NotifySink } from './payment.harness.ts';
import { wechatBill, type StatementInput } from '../src/channel/sandbox/statements.ts';
import { cstDayStart } from '../src/platform/time.ts';
import { createReconService, type Mistake, type ReconService } from '../src/recon/recon.service.ts';
import { bufferReader, fileReader } from '../src/recon/reader.ts';
import { parseYuan } from '../src/recon/parse/amount.ts';

const D1 = '2026-11-20';
const D2 = '2026-11-21';
const at = (date: string, hms: string) => new Date(cstDayStart(date).getTime() + (Number(hms.slice(0, 2)) * 3600 + Number(hms.slice(3, 5)) * 60 + Number(hms.slice(6, 8))) * 1000);

let stack: Stack;
let m: MerchantClient;
let sink: NotifySink;
let nowMs = at(D1, '09:00:00').getTime();
let recon: ReconService;
const opened: Mistake[] = [];
const resolved: Mistake[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'custos-recon-'));
const ids: Record<string, string> = {};

before(async () => {
  // The platform's own reconciliation service (its hooks also hold the funds in settlement), with test hooks after them.
  stack = await startStack({ sandboxNow: () => new Date(nowMs), recon: {
    onMistakeOpened: async (tx, mistake) => {
      // Inside the transaction that opened it: the mistake row is visible there.
      const seen = await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_mistakes WHERE id = ${mistake.id}`.execute(tx);
      assert.equal(seen.rows[0].n, 1n);
      opened.push(mistake);
    },
    onMistakeResolved: async (_tx, mistake) => {
      resolved.push(mistake);
    },
  } });
  sink = await notifySink();
  m = await merchant(stack, sink.url);
  recon = stack.platform.recon.service;
});
after(async () => {
  await stack.close();
  await sink.close();
});

const db = () => stack.t.db.kysely;
const orderState = async (id: string) => (await sql<{ state: number; recovered_by: string | null }>`SELECT state, recovered_by FROM pay_orders WHERE pay_order_id = ${id}`.execute(db())).rows[0];

async function payAt(name: string, when: Date, amount = 10000): Promise<string> {
  nowMs = when.getTime();
  const created = await m.call('/api/pay/unifiedOrder', order(`recon-${name}`, { amount }));
  assert.equal(created.body.code, 0, JSON.stringify(created.body));
  const id = String(created.body.data?.payOrderId);
  ids[name] = id;
  await stack.sandbox.pay(id);
  return id;
}

/** The statement text with one row's fee changed (and the summary's fee total with it). */
function patchFee(text: string, payOrderId: string, feeE5: bigint): string {
  const lines = text.split('\r\n');
  const header = lines[0].split(',');
  const feeAt = header.indexOf('手续费');
  const idAt = header.indexOf('商户订单号');
  let delta = 0n;
  for (let i = 1; i < lines.length; i += 1) {
    const f = lines[i].split(',');
    if (f[idAt] === '`' + payOrderId && f.length === header.length) {
      delta = feeE5 - parseYuan(f[feeAt].slice(1), 5);
      f[feeAt] = '`' + e5ToYuan(feeE5);
      lines[i] = f.join(',');
    }
  }
  const sumAt = lines.findIndex((l) => l.startsWith('总交易单数'));
  const sumHeader = lines[sumAt].split(',');
  const s = lines[sumAt + 1].split(',');
  const k = sumHeader.indexOf('手续费总金额');
  s[k] = '`' + e5ToYuan(parseYuan(s[k].slice(1), 5) + delta);
  lines[sumAt + 1] = s.join(',');
  return lines.join('\r\n');
}

function e5ToYuan(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  return `${neg ? '-' : ''}${a / 100000n}.${(a % 100000n).toString().padStart(5, '0')}`;
}

function writeFile(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

test('a realistic day: the batch reports exactly the differences; the next day clears the pool', async () => {
  // --- day 1 -----------------------------------------------------------------------------
  const a = await payAt('A', at(D1, '10:00:00'));
  await waitFor('A paid', async () => (await orderState(a)).state === 2);
  // A is refunded in part the same day
  const refund = await m.call('/api/refund/refundOrder', { payOrderId: a, mchRefundNo: 'recon-A-r1', refundAmount: 3000, currency: 'cny', refundReason: '多缴退还' });
  assert.equal(refund.body.code, 0, JSON.stringify(refund.body));
  const refundId = String(refund.body.data?.refundOrderId);
  await waitFor('refund settled', async () => (await sql<{ state: number }>`SELECT state FROM pay_refunds WHERE refund_order_id = ${refundId}`.execute(db())).rows[0]?.state === 2);
  // C: paid at the channel, but its notification is lost (we still say paying)
  stack.sandbox.faults.notifyDrop = true;
  const c = await payAt('C', at(D1, '12:00:00'));
  await stack.sandbox.flush();
  stack.sandbox.faults.notifyDrop = false;
  assert.equal((await orderState(c)).state, 1);
  const d = await payAt('D', at(D1, '14:00:00'));
  const f = await payAt('F', at(D1, '16:00:00'), 20000);
  // B: paid at 23:59:58; the channel puts it in the next day's file (its cut-off differs)
  const b = await payAt('B', at(D1, '23:59:58'));
  for (const id of [d, f, b]) await waitFor(`${id} paid`, async () => (await orderState(id)).state === 2);

  const day1: StatementInput = stack.sandbox.statementInput(D1);
  assert.equal(day1.payments.filter((p) => p.outTradeNo === c).length, 1, 'the channel has C');
  // the operator's copy: B moves to day 2, D's amount differs, E is a payment we never saw
  day1.payments = day1.payments.filter((p) => p.outTradeNo !== b).map((p) => (p.outTradeNo === d ? { ...p, amountFen: p.amountFen + 50n } : p));
  day1.payments.push({ outTradeNo: 'P20261120150000000UNKNOWN', tradeNo: '4200000000202611201234567890', amountFen: 12345n, wayCode: 'WX_NATIVE', subject: '物业费', payer: 'oX', successAt: at(D1, '15:00:00'), createdAt: at(D1, '14:59:00') });
  const file1 = writeFile('day1.csv', patchFee(wechatBill(day1), f, 99000n)); // F: 0.99000 instead of 1.20000

  const s1 = await recon.runDay({ channel: 'sandbox', billDate: D1, reader: fileReader(file1, 'wechat'), source: file1 });
  assert.equal(s1.channelRecords, 6, 'A, C, D, E, F, refund of A');
  assert.equal(s1.matched, 3, 'A, F and the refund agree on status and amount');
  assert.equal(s1.poolAdded, 1, 'B waits in the pool');
  assert.equal(s1.poolResolved, 0);
  assert.deepEqual(s1.mistakes, { AMOUNT_OVER: 1, FEE_MISMATCH: 1, PLATFORM_MISSING: 1, PLATFORM_STATUS_BEHIND: 1 });
  assert.equal(s1.autoFixed, 2, 'C marked paid, F fee adjusted');
  assert.equal(s1.openMistakes, 2);
  assert.equal(s1.channelTotalFen, String(10000 + 10000 + 10050 + 12345 + 20000 - 3000));
  assert.equal(s1.platformTotalFen, String(10000 + 10000 + 10000 + 20000 + 10000 - 3000), 'A, B, C (recovered), D, F less the refund');

  // both records are pointed at
  const mistakes = await recon.listMistakes({ batchId: s1.batchId });
  const over = mistakes.find((x) => x.type === 'AMOUNT_OVER');
  assert.equal(over?.pay_order_id, d);
  assert.equal(over?.channel_amount_fen, 10050n);
  assert.equal(over?.platform_amount_fen, 10000n);
  assert.notEqual(over?.row_no, null);
  const missing = mistakes.find((x) => x.type === 'PLATFORM_MISSING');
  assert.equal(missing?.ref_id, 'P20261120150000000UNKNOWN');
  assert.notEqual(missing?.row_no, null);
  const fee = mistakes.find((x) => x.type === 'FEE_MISMATCH');
  assert.equal(fee?.state, 'auto_fixed');
  assert.equal(fee?.expected_fee_e5, 120000n);
  assert.equal(fee?.channel_fee_e5, 99000n);
  const adj = await sql<{ channel_fee_e5: bigint }>`SELECT channel_fee_e5 FROM recon_fee_adjustments WHERE ref_id = ${f}`.execute(db());
  assert.equal(adj.rows[0].channel_fee_e5, 99000n, 'the fee record takes the channel figure');
  const feeAudit = await recon.listDecisions({ mistakeId: fee?.id });
  assert.equal(feeAudit.length, 1);
  assert.equal(feeAudit[0].action, 'auto_fee_adjust');

  // C was recovered through the normal success path: posted, notified, marked recon
  const cNow = await orderState(c);
  assert.equal(cNow.state, 2);
  assert.equal(cNow.recovered_by, 'recon');
  const posting = await sql<{ amount: bigint }>`SELECT amount FROM ledger_transfers WHERE id = ${'pay:' + c}`.execute(db());
  assert.equal(posting.rows[0].amount, 10000n);
  await waitFor('merchant notified of C', async () => sink.received.find((n) => n.payOrderId === c && n.state === '2'));
  const behind = mistakes.find((x) => x.type === 'PLATFORM_STATUS_BEHIND');
  assert.equal(behind?.state, 'auto_fixed');
  assert.equal((await recon.listDecisions({ mistakeId: behind?.id }))[0].action, 'auto_mark_paid');

  // holds: exactly the two open mistakes were announced, with merchant and amount
  assert.deepEqual(opened.map((x) => x.type).sort(), ['AMOUNT_OVER', 'PLATFORM_MISSING']);
  assert.equal(opened.find((x) => x.type === 'AMOUNT_OVER')?.mchNo, m.mchNo);
  assert.equal(opened.find((x) => x.type === 'AMOUNT_OVER')?.amountFen, 10000n);
  const holds = await recon.openHoldsByMerchant();
  assert.deepEqual(holds.map((h) => [h.mch_no, h.amount_fen]), [[m.mchNo, 10000n]]);
  // …and settlement holds exactly that money back until the mistake is resolved
  const overMistake = opened.find((x) => x.type === 'AMOUNT_OVER') as Mistake;
  const settleHolds = await sql<{ ref: string; mch_no: string; amount_fen: bigint; reason: string; state: string }>`SELECT ref, mch_no, amount_fen, reason, state FROM settle_holds ORDER BY ref`.execute(db());
  assert.deepEqual(settleHolds.rows, [{ ref: `recon:${overMistake.id}`, mch_no: m.mchNo, amount_fen: 10000n, reason: 'recon', state: 'open' }]);
  const pool = await recon.listPool({ state: 'open' });
  assert.deepEqual(pool.map((p) => p.ref_id), [b]);

  // re-running is safe and gives the same result; creating it again is refused
  const again = await recon.runDay({ channel: 'sandbox', billDate: D1, reader: fileReader(file1, 'wechat') });
  assert.deepEqual(again, s1);
  await assert.rejects(recon.createBatch({ channel: 'sandbox', billDate: D1 }), (e: Error & { code?: string; status?: number }) => e.code === 'RECON_BATCH_EXISTS' && e.status === 409);
  assert.equal(opened.length, 2, 'no hold announced twice');

  // --- day 2: B arrives, G is new ---------------------------------------------------------
  const g = await payAt('G', at(D2, '09:00:00'));
  await waitFor('G paid', async () => (await orderState(g)).state === 2);
  const day2 = stack.sandbox.statementInput(D2);
  const bRow = stack.sandbox.statementInput(D1).payments.find((p) => p.outTradeNo === b);
  assert.ok(bRow);
  day2.payments.push({ ...bRow, successAt: at(D2, '00:00:01') });
  const s2 = await recon.runDay({ channel: 'sandbox', billDate: D2, reader: bufferReader(wechatBill(day2), 'wechat') });
  assert.equal(s2.channelRecords, 2);
  assert.equal(s2.matched, 2);
  assert.equal(s2.poolResolved, 1, 'B leaves the pool');
  assert.equal(s2.poolAdded, 0);
  assert.deepEqual(s2.mistakes, {});
  assert.deepEqual(await recon.listPool({ state: 'open' }), []);

  const verify = await stack.platform.ledger.verify();
  assert.equal(verify.balanced, true);
});

test('manual resolution through the admin API: reason required, audited, ledger balanced, holds released', async () => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const list = await fetch(`${stack.url}/v1/admin/recon/mistakes?state=open`, { headers: auth });
  assert.equal(list.status, 200);
  const open = ((await list.json()) as { mistakes: Array<{ id: string; type: string }> }).mistakes;
  assert.deepEqual(open.map((x) => x.type).sort(), ['AMOUNT_OVER', 'PLATFORM_MISSING']);
  const missing = open.find((x) => x.type === 'PLATFORM_MISSING') as { id: string };

  const noReason = await fetch(`${stack.url}/v1/admin/recon/mistakes/${missing.id}/resolve`, { method: 'POST', headers: auth, body: JSON.stringify({ side: 'channel', reason: ' ' }) });
  assert.equal(noReason.status, 400);
  assert.equal(((await noReason.json()) as { code: string }).code, 'RECON_REASON_REQUIRED');
  const badSide = await fetch(`${stack.url}/v1/admin/recon/mistakes/${missing.id}/resolve`, { method: 'POST', headers: auth, body: JSON.stringify({ side: 'both', reason: 'x y' }) });
  assert.equal(((await badSide.json()) as { code: string }).code, 'RECON_SIDE_INVALID');
  const unauth = await fetch(`${stack.url}/v1/admin/recon/mistakes`, {});
  assert.equal(unauth.status, 401);
  assert.equal((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_decisions WHERE action LIKE 'resolve%'`.execute(db())).rows[0].n, 0n, 'a rejected request changes nothing');

  // through the service with hooks (same tables): the channel's record stands
  const result = await recon.resolve(BigInt(missing.id), { side: 'channel', reason: '渠道确认收款，订单丢失 / channel confirmed the money', actor: 'ops-li' });
  assert.equal(result.mistake.state, 'resolved');
  assert.equal(result.decision.actor, 'ops-li');
  assert.match(result.decision.before_json, /"state":"open"/);
  assert.match(result.decision.after_json, /"side":"channel"/);
  const t = await sql<{ debit_account_id: string; credit_account_id: string; amount: bigint }>`SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers WHERE id = ${'recon:m' + missing.id}`.execute(db());
  assert.deepEqual(t.rows[0], { debit_account_id: 'ch:sandbox:clearing', credit_account_id: 'recon:suspense', amount: 12345n });
  assert.deepEqual(resolved.map((x) => x.type), ['PLATFORM_MISSING']);

  const twice = await fetch(`${stack.url}/v1/admin/recon/mistakes/${missing.id}/resolve`, { method: 'POST', headers: auth, body: JSON.stringify({ side: 'platform', reason: 'again' }) });
  assert.equal(twice.status, 409);
  assert.equal(((await twice.json()) as { code: string }).code, 'RECON_MISTAKE_NOT_OPEN');

  // the amount difference: ours stands (no money moves), via the API
  const overId = (open.find((x) => x.type === 'AMOUNT_OVER') as { id: string }).id;
  const ok = await fetch(`${stack.url}/v1/admin/recon/mistakes/${overId}/resolve`, { method: 'POST', headers: auth, body: JSON.stringify({ side: 'platform', reason: '渠道将更正账单 / the channel will correct its file', operator: 'ops-wang' }) });
  assert.equal(ok.status, 200, await ok.clone().text());
  const decisions = (await (await fetch(`${stack.url}/v1/admin/recon/decisions?mistakeId=${overId}`, { headers: auth })).json()) as { decisions: Array<{ actor: string; transfer_ids: string | null }> };
  assert.equal(decisions.decisions[0].actor, 'ops-wang');
  assert.equal(decisions.decisions[0].transfer_ids, null);
  assert.deepEqual(await recon.openHoldsByMerchant(), []);
  const released = await sql<{ state: string }>`SELECT state FROM settle_holds WHERE ref = ${'recon:' + overId}`.execute(db());
  assert.deepEqual(released.rows, [{ state: 'released' }], 'settlement releases the hold with the mistake');

  const batches = (await (await fetch(`${stack.url}/v1/admin/recon/batches?channel=sandbox`, { headers: auth })).json()) as { batches: Array<{ batch_id: string; bill_date: string; summary: { matched: number } }> };
  assert.deepEqual(batches.batches.map((x) => x.bill_date), [D2, D1]);
  const one = (await (await fetch(`${stack.url}/v1/admin/recon/batches/${batches.batches[1].batch_id}`, { headers: auth })).json()) as { summary: { matched: number; poolAddedFen: string } };
  assert.equal(one.summary.matched, 3);
  assert.equal(one.summary.poolAddedFen, '10000');
  const dup = await fetch(`${stack.url}/v1/admin/recon/batches`, { method: 'POST', headers: auth, body: JSON.stringify({ channel: 'sandbox', billDate: D1 }) });
  assert.equal(dup.status, 409);
  assert.equal(((await dup.json()) as { code: string }).code, 'RECON_BATCH_EXISTS');
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('a rejected file imports nothing and the batch says why; a good file then runs it', async () => {
  const D = '2026-11-25';
  const good = wechatBill({ billDate: D, feeRate: '0.006', payments: [], refunds: [] });
  const lines = wechatBill({
    billDate: D, feeRate: '0.006', refunds: [],
    payments: [{ outTradeNo: 'P-X', tradeNo: 'T-X', amountFen: 500n, wayCode: 'WX_NATIVE', subject: 's', payer: null, successAt: at(D, '10:00:00'), createdAt: at(D, '10:00:00') }],
  }).split('\r\n');
  lines[lines.length - 2] = lines[lines.length - 2].replace('`1,`5.00', '`1,`5.01'); // the summary disagrees
  const file = writeFile('bad.csv', lines.join('\r\n'));
  await assert.rejects(recon.runDay({ channel: 'sandbox', billDate: D, reader: fileReader(file, 'wechat') }), (e: Error & { code?: string }) => e.code === 'RECON_FILE_REJECTED' && /BILL_SUMMARY_MISMATCH/.test(e.message));
  const [batch] = await recon.listBatches({ channel: 'sandbox', state: 'rejected' });
  assert.equal(batch.bill_date, D);
  assert.equal(batch.reject_code, 'BILL_SUMMARY_MISMATCH');
  assert.equal((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_channel_rows WHERE batch_id = ${batch.batch_id}`.execute(db())).rows[0].n, 0n);
  const rerun = await recon.runBatch(batch.batch_id, bufferReader(good, 'wechat'));
  assert.equal(rerun.state, 'done');
  assert.equal(rerun.channelRecords, 0);
});

test('pool TTL: a payment the channel never reports becomes CHANNEL_MISSING after 3 days', async () => {
  // A fresh channel code so the other tests' pool does not interfere.
  const ttl = createReconService({
    db: stack.t.db, ledger: stack.platform.ledger, markPaid: stack.platform.payment.orders.markPaid,
    channels: { sandbox: { ifCode: 'sandbox', mchAccount: 'ttl-account', format: 'wechat', feeRate: '0.006' } },
  });
  const day = '2026-12-01';
  const h = await payAt('H', at(day, '11:00:00'));
  await waitFor('H paid', async () => (await orderState(h)).state === 2);
  const empty = (d: string) => bufferReader(wechatBill({ billDate: d, feeRate: '0.006', payments: [], refunds: [] }), 'wechat');
  const s0 = await ttl.runDay({ channel: 'sandbox', billDate: day, reader: empty(day) });
  assert.equal(s0.poolAdded, 1);
  for (const d of ['2026-12-02', '2026-12-03']) {
    const s = await ttl.runDay({ channel: 'sandbox', billDate: d, reader: empty(d) });
    assert.deepEqual(s.mistakes, {}, `still waiting on ${d}`);
  }
  const s3 = await ttl.runDay({ channel: 'sandbox', billDate: '2026-12-04', reader: empty('2026-12-04') });
  assert.deepEqual(s3.mistakes, { CHANNEL_MISSING: 1 });
  const [cm] = await ttl.listMistakes({ batchId: s3.batchId });
  assert.equal(cm.pay_order_id, h);
  assert.equal(cm.mch_no, m.mchNo);
  assert.equal((await ttl.listPool({ state: 'expired' })).map((p) => p.ref_id).includes(h), true);
  // the channel's side: we were never paid; the merchant's credit is reversed, balanced
  const r = await ttl.resolve(cm.id, { side: 'channel', reason: '渠道确认未收款 / the channel never received it', actor: 'ops' });
  assert.equal(r.decision.transfer_ids, `recon:m${cm.id}`);
  const t = await sql<{ debit_account_id: string; credit_account_id: string; amount: bigint }>`SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers WHERE id = ${'recon:m' + cm.id}`.execute(db());
  assert.deepEqual(t.rows[0], { debit_account_id: `mch:${m.mchNo}:pending`, credit_account_id: 'ch:sandbox:clearing', amount: 10000n });
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('early: a payment the channel reports the day before our success date matches there and is not pooled on our day', async () => {
  const early = createReconService({
    db: stack.t.db, ledger: stack.platform.ledger, markPaid: stack.platform.payment.orders.markPaid,
    channels: { sandbox: { ifCode: 'sandbox', mchAccount: 'early-account', format: 'wechat', feeRate: '0.006' } },
  });
  const [e1, e2] = ['2026-12-20', '2026-12-21'];
  // paid 3 s after midnight by our clock; the channel's day ended later, so its e1 file has it
  const p = await payAt('EARLY', at(e2, '00:00:03'));
  await waitFor('EARLY paid', async () => (await orderState(p)).state === 2);
  const row = stack.sandbox.statementInput(e2).payments.find((x) => x.outTradeNo === p);
  assert.ok(row);
  const file = (d: string, payments: StatementInput['payments']) => bufferReader(wechatBill({ billDate: d, feeRate: '0.006', payments, refunds: [] }), 'wechat');
  const s1 = await early.runDay({ channel: 'sandbox', billDate: e1, reader: file(e1, [{ ...row, successAt: at(e1, '23:59:59') }]) });
  assert.deepEqual(s1.mistakes, {}, 'the channel row finds our order');
  assert.equal(s1.matched, 1);
  assert.equal(s1.poolAdded, 0);
  const pooled = await sql<{ state: string; bill_date: string; added_batch_id: string; amount_fen: bigint }>`SELECT state, to_char(bill_date, 'YYYY-MM-DD') AS bill_date, added_batch_id, amount_fen FROM recon_pool WHERE ref_id = ${p}`.execute(db());
  assert.deepEqual(pooled.rows, [{ state: 'matched', bill_date: e1, added_batch_id: s1.batchId, amount_fen: 10000n }]);
  const s2 = await early.runDay({ channel: 'sandbox', billDate: e2, reader: file(e2, []) });
  assert.equal(s2.poolAdded, 0, 'our day does not wait for it again');
  assert.deepEqual(s2.mistakes, {});
  assert.equal((await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_pool WHERE ref_id = ${p}`.execute(db())).rows[0].n, 1n);
});

test('the daily job: the statement is fetched from the sandbox over HTTP, stored, parsed and matched', async () => {
  nowMs = at('2026-12-06', '10:00:00').getTime();
  const s = await stack.platform.recon.runDaily('sandbox', '2026-12-01');
  assert.equal(s.channelRecords, 1, 'H, paid that day');
  assert.equal(s.matched, 1);
  assert.deepEqual(s.mistakes, {});
  const [batch] = await recon.listBatches({ channel: 'sandbox' });
  assert.match(String((await recon.getBatch(s.batchId)).batch.source), /^file:\d+$/);
  assert.ok(batch);
  // through the job queue (the cron's target): one job per channel and day
  await stack.platform.jobs.send('recon-daily', { channel: 'sandbox', billDate: '2026-12-02' });
  const done = await waitFor('the job ran the batch', async () => (await recon.listBatches({ channel: 'sandbox', state: 'done' })).find((b) => b.bill_date === '2026-12-02' && b.mch_account === '1900000109'), 60_000);
  assert.equal(done.state, 'done');
});

test('supervision through the admin API: a bank CSV statement, stored and parsed, against the ledger', async () => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const ledger = stack.platform.ledger;
  await ledger.createAccounts([
    { id: 'sup:api', ledger: 1, code: 1101, flags: 0, ref: null, metadata: null },
    { id: 'fund:api', ledger: 1, code: 2101, flags: 0, ref: null, metadata: null },
  ]);
  const tr = (id: string, debit: string, credit: string, amount: bigint, ref: string | null) =>
    ({ id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, flags: 0, pending_id: null, timeout_s: 0, ref, metadata: null });
  assert.deepEqual(await ledger.createTransfers([tr('api-dep', 'sup:api', 'fund:api', 5000n, 'BK-1'), tr('api-pay', 'fund:api', 'sup:api', 1500n, null)]), ['ok', 'ok']);
  const mapped = await fetch(`${stack.url}/v1/admin/recon/bank-accounts/6217000099990001`, { method: 'PUT', headers: auth, body: JSON.stringify({ ledgerAccountId: 'sup:api', normalSide: 'debit' }) });
  assert.equal(mapped.status, 200);
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  const csv = ['交易日期,交易时间,流水号,借方发生额,贷方发生额,余额,对方户名,摘要', `${today},10:00:00,BK-1,,50.00,50.00,某业主,缴存`, `${today},11:00:00,BK-2,15.00,,35.00,某施工队,维修支出`, `${today},12:00:00,BK-3,,2.00,37.00,银行,利息`].join('\r\n') + '\r\n';
  // The API reads only its inbox: the statement's bytes are uploaded there first.
  const uploaded = await fetch(`${stack.url}/v1/admin/recon/files`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: csv });
  assert.equal(uploaded.status, 201);
  const { file } = (await uploaded.json()) as { file: string };
  const res = await fetch(`${stack.url}/v1/admin/recon/supervision`, { method: 'POST', headers: auth, body: JSON.stringify({ bankAccountNo: '6217000099990001', billDate: today, file }) });
  const body = (await res.json()) as { matched: number; mistakes: Record<string, number>; blocked: boolean; bankClosingFen: string; ledgerClosingFen: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.matched, 2);
  assert.deepEqual(body.mistakes, { SUPERVISION_BALANCE_MISMATCH: 1, SUPERVISION_LEDGER_MISSING: 1 });
  assert.equal(body.blocked, true);
  assert.equal(body.bankClosingFen, '3700');
  assert.equal(body.ledgerClosingFen, '3500');
  assert.equal(await stack.platform.recon.service.isAccountBlocked('sup:api'), true);
});
