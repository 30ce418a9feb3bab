// Property: for random platform records (paid and unpaid orders, refunds) and a
// channel file derived from them with random perturbations (dropped, amount ±,
// fee changed, status, unknown records), the set-wise classification reports exactly
// the injected differences, as a plain in-memory oracle computes them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sql } from 'kysely';
import { openTestDb, type TestDb } from './helpers.ts';
import { createLedger } from '../src/ledger/index.ts';
import { systemClock } from '../src/platform/clock.ts';
import { cstDayStart } from '../src/platform/time.ts';
import { applyRate } from '../src/platform/money.ts';
import { createReconService } from '../src/recon/recon.service.ts';
import type { ChannelRecord } from '../src/recon/parse/wechat.ts';
import type { PayOrderRow } from '../src/payment/payment.repo.ts';

const DAY = '2026-11-20';
const RATE = '0.006';
let t: TestDb;
before(async () => {
  t = await openTestDb();
});
after(async () => {
  await t.close();
});

type Perturb = 'none' | 'drop' | 'amount_up' | 'amount_down' | 'fee' | 'revoked';
interface Plat { paid: boolean; amount: number; refund: number | null; perturb: Perturb; refundPerturb: 'none' | 'drop' | 'amount_up' | 'fee' }

const platArb = fc.record({
  paid: fc.boolean(),
  amount: fc.integer({ min: 100, max: 1_000_000 }),
  refund: fc.option(fc.integer({ min: 1, max: 99 }), { nil: null }),
  perturb: fc.constantFrom<Perturb>('none', 'none', 'none', 'drop', 'amount_up', 'amount_down', 'fee', 'revoked'),
  refundPerturb: fc.constantFrom<'none' | 'drop' | 'amount_up' | 'fee'>('none', 'none', 'drop', 'amount_up', 'fee'),
});

let run = 0;

for (const feeBy of ['rate', 'function'] as const) test(`classification finds exactly the injected differences (fast-check against an in-memory oracle; fees by ${feeBy})`, async () => {
  await fc.assert(fc.asyncProperty(fc.array(platArb, { minLength: 0, maxLength: 25 }), fc.integer({ min: 0, max: 3 }), async (plats: Plat[], extras: number) => {
    run += 1;
    const ifCode = `pt${run}`;
    const start = cstDayStart(DAY);
    const fixedToPaid: string[] = [];
    const recon = createReconService({
      db: t.db, ledger: createLedger({ db: t.db, clock: systemClock }),
      channels: { p: { ifCode, mchAccount: `acct${run}`, format: 'wechat', feeRate: RATE } },
      // the injected fee function (settlement's channel cost rules later): same rate, checked page by page
      expectedChannelFeeE5: feeBy === 'function' ? (o) => applyRate(o.amountFen, RATE) * 1000n : undefined,
      // The oracle checks classification only: the success path is the payment center's
      // (tested in recon.match.test.ts); here it reports the order as still unpaid.
      markPaid: async (id) => {
        fixedToPaid.push(id);
        return { state: 1 } as PayOrderRow;
      },
    });
    const records: ChannelRecord[] = [];
    const expected: Record<string, number> = {};
    const add = (type: string) => (expected[type] = (expected[type] ?? 0) + 1);
    let matched = 0;
    let pooled = 0;
    for (const [i, p] of plats.entries()) {
      const id = `${ifCode}-O${i}`;
      const amount = BigInt(p.amount);
      const refundAmount = p.paid && p.refund !== null ? (amount * BigInt(p.refund)) / 100n || 1n : null;
      await sql`INSERT INTO pay_orders (pay_order_id, mch_no, app_id, mch_order_no, way_code, if_code, amount, currency, subject, body, state, request_hash, expired_at, success_at)
        VALUES (${id}, 'M1', 'A1', ${id}, 'WX_NATIVE', ${ifCode}, ${amount}, 'cny', 's', 'b', ${p.paid ? 2 : 1}, 'h', ${start}, ${p.paid ? new Date(start.getTime() + 3600_000 + i) : null})`.execute(t.db.kysely);
      if (refundAmount !== null) {
        await sql`INSERT INTO pay_refunds (refund_order_id, pay_order_id, mch_no, app_id, mch_refund_no, if_code, pay_amount, refund_amount, currency, refund_reason, state, request_hash, success_at)
          VALUES (${id + 'R'}, ${id}, 'M1', 'A1', ${id + 'R'}, ${ifCode}, ${amount}, ${refundAmount}, 'cny', 'r', 2, 'h', ${new Date(start.getTime() + 7200_000 + i)})`.execute(t.db.kysely);
      }
      // payment row
      const fee = applyRate(amount, RATE) * 1000n;
      const pay = (amt: bigint, feeE5: bigint, status = 'SUCCESS') => records.push({ kind: 'payment', payOrderId: id, channelOrderNo: `C${i}`, refundOrderId: null, channelRefundNo: null, amountFen: amt, feeE5, status, time: `${DAY} 10:00:00` });
      if (p.perturb === 'drop') {
        if (p.paid) { pooled += 1; }
      } else if (p.perturb === 'revoked') {
        pay(amount, 0n, 'REVOKED');
        if (p.paid) add('PLATFORM_STATUS_AHEAD');
      } else if (!p.paid) {
        pay(p.perturb === 'amount_up' ? amount + 1n : p.perturb === 'amount_down' ? amount - 1n : amount, fee);
        add('PLATFORM_STATUS_BEHIND');
      } else if (p.perturb === 'amount_up') {
        pay(amount + 7n, fee);
        add('AMOUNT_OVER');
      } else if (p.perturb === 'amount_down') {
        pay(amount - 7n, fee);
        add('AMOUNT_UNDER');
      } else if (p.perturb === 'fee') {
        pay(amount, fee + 1000n);
        add('FEE_MISMATCH');
        matched += 1;
      } else {
        pay(amount, fee);
        matched += 1;
      }
      if (refundAmount !== null) {
        const rfee = -applyRate(refundAmount, RATE) * 1000n;
        const refund = (amt: bigint, feeE5: bigint) => records.push({ kind: 'refund', payOrderId: id, channelOrderNo: `C${i}`, refundOrderId: id + 'R', channelRefundNo: `CR${i}`, amountFen: amt, feeE5, status: 'REFUND', time: `${DAY} 11:00:00` });
        if (p.refundPerturb === 'drop') pooled += 1;
        else if (p.refundPerturb === 'amount_up') { refund(refundAmount + 3n, rfee); add('REFUND_AMOUNT_OVER'); }
        else if (p.refundPerturb === 'fee') { refund(refundAmount, rfee - 1000n); add('REFUND_FEE_MISMATCH'); matched += 1; }
        else { refund(refundAmount, rfee); matched += 1; }
      }
    }
    for (let k = 0; k < extras; k += 1) {
      records.push({ kind: 'payment', payOrderId: `${ifCode}-X${k}`, channelOrderNo: `CX${k}`, refundOrderId: null, channelRefundNo: null, amountFen: 100n, feeE5: 1000n, status: 'SUCCESS', time: `${DAY} 12:00:00` });
      add('PLATFORM_MISSING');
    }
    // shuffle-free but interleaved: the classification must not depend on order
    records.reverse();
    const s = await recon.runDay({ channel: 'p', billDate: DAY, reader: async (onRecord) => { for (const r of records) await onRecord(r); } });
    const sorted = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).sort());
    assert.deepEqual(sorted(s.mistakes), sorted(expected));
    assert.equal(s.matched, matched);
    assert.equal(s.poolAdded, pooled);
    assert.equal(s.channelRecords, records.length);
    const behind = plats.filter((p) => !p.paid && p.perturb !== 'drop' && p.perturb !== 'revoked');
    // only equal-amount status-behind rows go to the success path
    assert.equal(fixedToPaid.length, behind.filter((p) => p.perturb !== 'amount_up' && p.perturb !== 'amount_down').length);
  }), { numRuns: 25 });
});
